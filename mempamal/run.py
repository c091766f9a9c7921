"""Run: a submitted run, driven from a background thread of this process.

``Workflow.submit`` starts a *driver thread* that calls the backend with a
``stop`` event and returns a :class:`Run` at once, so a notebook kernel stays
free while tasks run.  Everything a ``Run`` reports about progress comes from
the workdir files (they are the truth): a crashed driver, another process
running the same workdir or a cluster job all show up the same way.

What survives the death of the process that submitted (a notebook kernel):

- job-based backends (soma-workflow with a ``resource_id``, slurm): the jobs
  belong to the scheduler; ``Workflow.attach`` reconnects;
- ipyparallel on a cluster you started (``profile=`` / ``client=``): the
  engines finish the tasks already sent to them;
- the local backend and an auto-started ipyparallel cluster: their workers
  are children of the kernel and die with it.  Rerunning resumes.

At a clean interpreter exit (end of a script, kernel shutdown) a run still
going is cancelled, except on job-based backends (those with an ``attach``
method), whose jobs are left to finish: nothing is left running without a
driver that can be found again.
"""

import atexit
import contextvars
import threading
import time

from .tasktable import MAIN

#: Kinds whose outputs hold one outer fold's test scores.
FOLD_KINDS = ("select", "score")


class Run:
    """A run going on in a background thread; returned by ``Workflow.submit``.

    Parameters
    ----------
    workflow : Workflow
        The workflow being run.
    execute : callable
        ``execute(stop)`` runs the workflow to its end and returns the
        :class:`mempamal.Results`; it is called in the driver thread with the
        :class:`threading.Event` that :meth:`cancel` sets.
    backend_name : str
        Shown in reprs.
    stop : threading.Event, optional
        The event :meth:`cancel` sets (a new one by default): an event of the
        caller's cancels the run too.
    outlives_driver : bool
        True for job-based runs: left running at interpreter exit (they can
        be attached to again); other runs are cancelled then.
    drives : bool
        True (default) when ``execute`` drives the backend in this process,
        which then tells the run's observer the tasks executing now; False
        for a run that only watches another process.
    observer : RunObserver, optional
        The :class:`~mempamal.backends.base.RunObserver` the backend driving
        this run reports to (``execute`` hands it to ``Backend.run``); a new
        one by default.  The run's own: no other run reads or clears it.

    Examples
    --------
    >>> run = wf.submit(backend="local", n_jobs=2)    # doctest: +SKIP
    >>> run.status()["by_kind"]["select"]             # doctest: +SKIP
    {'done': 1, 'running': 1, 'pending': 3, 'failed': 0, 'total': 5}
    >>> run.results()                                 # doctest: +SKIP
    >>> res = run.wait()                              # doctest: +SKIP
    """

    def __init__(self, workflow, execute, backend_name="local", stop=None, outlives_driver=False, drives=True,
                 observer=None):
        self.workflow = workflow
        self.backend_name = backend_name
        self.started = time.time()
        self.ended = None
        self._stop = threading.Event() if stop is None else stop
        self._finished = threading.Event()
        self._outcome = None
        self._error = None
        self._done_at_start = workflow.scan_outputs().n_done  # a count: no set of every done id
        self.outlives_driver = outlives_driver
        # Not a daemon: an interpreter exiting with a run in flight waits for
        # the backend to stop cleanly (cancel() makes that quick).
        # In the caller's context: in a notebook whatever the backend prints
        # lands in the cell that submitted, not in whichever cell runs later.
        context = contextvars.copy_context()
        # A daemon thread: interpreter exit does not wait for it; _cancel_at_exit
        # stops it cleanly first (non-daemon threads are joined before atexit runs).
        self._thread = threading.Thread(target=context.run, args=(self._drive, execute),
                                        name=f"mempamal-run-{workflow.workdir.name}", daemon=True)
        if drives and observer is None:
            from .backends.base import RunObserver

            observer = RunObserver()  # nothing executes until the backend says so
        #: What executes now, as the backend driving this run says (None: it only watches).
        self.observer = observer if drives else None
        _LIVE_RUNS.add(self)
        self._thread.start()

    def _drive(self, execute):
        try:
            self._outcome = execute(self._stop)
        except BaseException as exc:  # handed to wait(): the caller's thread re-raises it
            self._error = exc
        finally:
            self.ended = time.time()
            self._finished.set()
            _LIVE_RUNS.discard(self)

    # ------------------------------------------------------------ state
    def done(self):
        """True once the driver has finished (successfully, failed or cancelled).

        Examples
        --------
        >>> run.done()                                    # doctest: +SKIP
        False
        """
        return self._finished.is_set()

    def join(self, timeout=None):
        """Block until the run ends or ``timeout`` seconds pass; True when it has ended.

        Unlike :meth:`wait`, never raises what ended the run.

        Examples
        --------
        >>> run.join(timeout=1.0)                         # doctest: +SKIP
        False
        """
        return self._finished.wait(timeout)

    @property
    def state(self):
        """``"running"``, ``"finished"``, ``"failed"`` or ``"cancelled"``.

        Examples
        --------
        >>> run.cancel(); run.state                       # doctest: +SKIP
        'cancelled'
        """
        if not self.done():
            return "running"
        if self._error is None:
            return "finished"
        from .backends.base import RunCancelled

        return "cancelled" if isinstance(self._error, RunCancelled) else "failed"

    @property
    def error(self):
        """The exception that ended the run, or None.

        Examples
        --------
        >>> run.join(); type(run.error).__name__          # doctest: +SKIP
        'WorkflowError'
        """
        return self._error

    def status(self):
        """Task counts read from the workdir: total, done, running, pending, failed, by kind.

        ``running`` counts the tasks executing now: one per batch on a
        worker (local, ipyparallel, dask: never more than the workers), per
        Slurm array element in state R, per soma-workflow job reported
        running -- as the backend that drives the run in this process tells
        the run's :class:`~mempamal.backends.base.RunObserver`.  A run that
        only watches another process (which holds the workdir's lock) cannot
        see its workers: it counts the tasks whose dependencies are done.  Once the run has ended nothing is running.

        Examples
        --------
        >>> run.status()["done"], run.status()["running"]     # doctest: +SKIP
        (12, 4)
        """
        return task_counts(self.workflow, active=not self.done(), observer=self.observer)

    def elapsed(self):
        """Seconds since submission (until the end when the run has ended).

        Examples
        --------
        >>> run.elapsed()                                 # doctest: +SKIP
        12.3
        """
        return (self.ended or time.time()) - self.started

    def eta(self):
        """Estimated seconds left from the rate of tasks finished by this run, or None.

        Examples
        --------
        >>> run.eta()                                     # doctest: +SKIP
        42.0
        """
        counts = self.status()
        finished_here = counts["done"] - self._done_at_start
        left = counts["total"] - counts["done"] - counts["failed"] - counts["blocked"]
        if self.done() or finished_here <= 0:
            return None if not self.done() else 0.0
        return self.elapsed() / finished_here * left

    def results(self):
        """Outer folds finished so far: a DataFrame shaped like ``Results.to_frame()``.

        Examples
        --------
        >>> run.results()                                 # doctest: +SKIP
                    test_accuracy  param_C  fit_time  score_time  error
        outer_fold
        0                0.966667      1.0  0.002       0.0003   None
        """
        return self.workflow.finished_folds()

    # ---------------------------------------------------------- control
    def cancel(self, wait=True, timeout=60):
        """Stop the run: nothing new starts, running tasks are aborted; finished outputs stay.

        Examples
        --------
        >>> run.cancel()                                  # doctest: +SKIP
        >>> run.state                                     # doctest: +SKIP
        'cancelled'
        """
        self._stop.set()
        if wait:
            self._finished.wait(timeout)

    def wait(self, timeout=None):
        """Block until the run ends; return its :class:`mempamal.Results`.

        Re-raises what ended the driver (``WorkflowError`` when tasks
        failed, ``RunCancelled`` after :meth:`cancel`); ``TimeoutError`` when
        ``timeout`` seconds pass first (the run goes on).  Ctrl-C while
        waiting cancels the run, then re-raises ``KeyboardInterrupt``.

        Examples
        --------
        >>> res = run.wait()                              # doctest: +SKIP
        """
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
            raise ValueError(f"The 'timeout' parameter of Run.wait must be a number >= 0 or None; "
                             f"got {timeout!r} instead.")
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            # Short waits in a loop: an Event.wait() without timeout would not
            # let the main thread see Ctrl-C on every platform.
            while not self._finished.wait(0.2):
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"the run of {self.workflow.workdir} is still going after {timeout} s")
        except KeyboardInterrupt:
            self.cancel()
            raise
        if self._error is not None:
            raise self._error
        return self._outcome

    # ---------------------------------------------------------- display
    def summary_line(self):
        """One line: state, tasks done, elapsed, ETA.

        Examples
        --------
        >>> run.summary_line()                            # doctest: +SKIP
        'running on local: 40/81 tasks done, 2/5 outer folds, 12 s elapsed, ~10 s left'
        """
        counts = self.status()
        folds = sum(counts["by_kind"].get(kind, {}).get("done_main", 0) for kind in FOLD_KINDS)
        n_folds = sum(counts["by_kind"].get(kind, {}).get("total_main", 0) for kind in FOLD_KINDS)
        text = (f"{self.state} on {self.backend_name}: {counts['done']}/{counts['total']} tasks done, "
                f"{folds}/{n_folds} outer folds, {format_seconds(self.elapsed())} elapsed")
        if counts["failed"]:
            text += f", {counts['failed']} failed"
        if counts["blocked"]:
            text += f", {counts['blocked']} blocked by a failure"
        eta = self.eta()
        if not self.done() and eta is not None:
            text += f", ~{format_seconds(eta)} left"
        return text

    def _repr_html_(self):
        from .display import run_html

        return run_html(self)

    def __repr__(self):
        return f"<Run {self.workflow.workdir}: {self.summary_line()}>"


#: The runs of this process still going, for :func:`_cancel_at_exit` only.
#: Module-level on purpose: interpreter exit is process-wide, and it must
#: find every run to cancel it.  It holds no worker and no state of a run:
#: each run adds itself when it starts and removes itself when its driver
#: ends, and nothing else reads it (``list()`` of a set is one step under the GIL).
_LIVE_RUNS = set()


@atexit.register
def _cancel_at_exit(timeout=30):
    """Stop the runs still going when the interpreter exits (see the module docstring)."""
    for run in list(_LIVE_RUNS):
        if not run.outlives_driver:
            run.cancel(wait=True, timeout=timeout)


def task_counts(workflow, active=True, observer=None):
    """Counts per kind from the workdir files: done, running, pending, failed, blocked.

    While a run is ``active``, ``running`` holds the tasks executing now as
    the backend driving it told its ``observer``
    (:meth:`mempamal.backends.base.RunObserver.executing`), or, without an
    observer (no backend of this process drives the run), the tasks whose
    dependencies are all done;
    ``blocked`` those waiting on a failed task (as in
    :meth:`mempamal.Workflow.status`).  ``done_main`` / ``total_main`` count
    the main split set only (not permutations), for "outer folds finished".

    Examples
    --------
    >>> task_counts(wf)["by_kind"]["fit"]             # doctest: +SKIP
    {'done': 8, 'running': 2, 'pending': 10, 'failed': 0, 'total': 20, ...}
    """
    # Counts, not records (a million-task graph answers in well under a
    # second): one scan; the fits done per block from the shards' id strings;
    # positions only for the few tasks that are not fits (a block's select,
    # score or select-all, and final) and for the failed, blocked and
    # executing ones.  tests/test_task_counts.py holds it to a count over
    # every record.
    table = workflow.table
    scan = workflow.scan_outputs()
    failed_ids = workflow.failed_ids(scan)
    failed = {p for p in map(table.position, failed_ids) if p is not None}
    blocked = set(map(table.position, workflow.blocked_ids(scan, failed_ids))) if failed_ids else set()
    executing = observer.executing(scan) if active and observer is not None else None
    # executing() skips done tasks already; a failed or blocked state comes first.
    running = set() if executing is None else {p for p in map(table.position, executing) if p is not None}
    running -= failed | blocked
    ready = active and executing is None  # watching another process: the tasks whose deps are done
    by_kind = {kind: {"done": 0, "running": 0, "pending": 0, "failed": 0, "blocked": 0, "total": total,
                      "done_main": 0, "total_main": 0} for kind, total in table.counts_by_kind().items()}

    def add(kind, main, n_total, n_done, n_failed, n_blocked, n_running):
        counts = by_kind[kind]
        counts["done"] += n_done
        counts["failed"] += n_failed
        counts["blocked"] += n_blocked
        counts["running"] += n_running
        if main:
            counts["total_main"] += n_total
            counts["done_main"] += n_done

    def one(kind, main, position, task_id, deps_done):
        """The state of one task that is not a fit, as the counts of ``add``."""
        if task_id in scan:
            add(kind, main, 1, 1, 0, 0, 0)
            return True
        add(kind, main, 1, 0, position in failed, position in blocked,
            position not in failed and position not in blocked
            and (position in running if executing is not None else ready and deps_done))
        return False

    blocks, fits_done = table.blocks(), scan.fits_by_block(table)
    # Failed and executing fits per block (fits have no dependency: never blocked).
    failed_fits, running_fits = {}, {}
    for positions, per_block in ((failed, failed_fits), (running, running_fits)):
        for position in positions:
            index = table.block_at(position)
            if index is not None and position < blocks[index].gather:
                per_block[index] = per_block.get(index, 0) + 1
    all_gathered = True
    for index, block in enumerate(blocks):
        main = block.split_set == MAIN
        n_fits = block.gather - block.first
        if n_fits:
            n_done, n_failed = fits_done[index], failed_fits.get(index, 0)
            n_running = running_fits.get(index, 0) if executing is not None else (
                n_fits - n_done - n_failed if ready else 0)
            add(block.fit_kind, main, n_fits, n_done, n_failed, 0, n_running)
        all_gathered &= one(block.gather_kind, main, block.gather, block.gather_id, fits_done[index] == n_fits)
    one("final", True, len(table) - 1, "final", all_gathered)
    totals = {"done": 0, "running": 0, "pending": 0, "failed": 0, "blocked": 0}
    for counts in by_kind.values():
        counts["pending"] = counts["total"] - counts["done"] - counts["failed"] - counts["blocked"] - counts["running"]
        for state in totals:
            totals[state] += counts[state]
    return {"total": len(table), **totals, "by_kind": by_kind}


def format_seconds(seconds):
    """``75`` -> ``'1 min 15 s'``; ``3700`` -> ``'1 h 01 min'``.

    Examples
    --------
    >>> format_seconds(75), format_seconds(3700), format_seconds(4.2)
    ('1 min 15 s', '1 h 01 min', '4 s')
    """
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
