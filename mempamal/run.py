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
import numbers
import threading
import time

from ._constraints import Interval, validate_params
from .graph.status import task_counts
from .store.taskids import FOLD_KINDS

#: The options of Run.cancel and Run.wait.
CANCEL_CONSTRAINTS = {
    "wait": ["boolean"],
    "timeout": [Interval(numbers.Real, 0, None, closed="left"), None],
}



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
    >>> wf = mp.Experiment(estimator, cv=3).build(X, y, workdir="runs/cv")
    >>> run = wf.submit(backend="local", n_jobs=1)
    >>> res = run.wait()
    >>> run.state, dict(run.status()["by_kind"]["score"])
    ('finished', {'total': 3, 'done': 3, 'running': 0, 'pending': 0, 'failed': 0, 'blocked': 0, 'done_main': 3, 'total_main': 3})
    >>> run.results()["test_score"].tolist() == res.test_scores["score"].tolist()
    True
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
        >>> run = exp.build(X, y, workdir="runs/new").submit(n_jobs=1)   # 29 tasks to run
        >>> run.done()
        False
        >>> run.cancel(); run.done()
        True
        """
        return self._finished.is_set()

    def join(self, timeout=None):
        """Block until the run ends or ``timeout`` seconds pass; True when it has ended.

        Unlike :meth:`wait`, never raises what ended the run.

        Examples
        --------
        >>> run = exp.build(X, y, workdir="runs/new").submit(n_jobs=1)   # 29 tasks to run
        >>> run.join(timeout=0.01)   # 29 tasks take longer than that
        False
        >>> run.cancel(); run.join(timeout=1.0)
        True
        """
        return self._finished.wait(timeout)

    @property
    def state(self):
        """``"running"``, ``"finished"``, ``"failed"`` or ``"cancelled"``.

        Examples
        --------
        >>> run = exp.build(X, y, workdir="runs/new").submit(n_jobs=1)   # 29 tasks to run
        >>> run.state
        'running'
        >>> run.cancel(); run.state
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
        >>> run = wf.submit(n_jobs=1); res = run.wait()   # runs/iris: finished already
        >>> run.error is None
        True
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
        >>> run = wf.submit(n_jobs=1); res = run.wait()   # runs/iris: finished already
        >>> run.status()["done"], run.status()["running"]
        (29, 0)
        """
        if self.done():
            return task_counts(self.workflow)
        scan = self.workflow.scan_outputs()
        # What the backend driving this run told its observer (None: the run only watches).
        executing = self.observer.executing(scan) if self.observer is not None else None
        return task_counts(self.workflow, executing=executing, watching=True, scan=scan)

    def elapsed(self):
        """Seconds since submission (until the end when the run has ended).

        Examples
        --------
        >>> run = wf.submit(n_jobs=1); res = run.wait()   # runs/iris: finished already
        >>> 0 <= run.elapsed() < 600
        True
        """
        return (self.ended or time.time()) - self.started

    def eta(self, counts=None):
        """Estimated seconds left from the rate of tasks finished by this run, or None.

        Examples
        --------
        >>> run = wf.submit(n_jobs=1); res = run.wait()   # runs/iris: finished already
        >>> run.eta()
        0.0
        """
        counts = self.status() if counts is None else counts
        finished_here = counts["done"] - self._done_at_start
        left = counts["total"] - counts["done"] - counts["failed"] - counts["blocked"]
        if self.done() or finished_here <= 0:
            return None if not self.done() else 0.0
        return self.elapsed() / finished_here * left

    def results(self):
        """Outer folds finished so far: a DataFrame shaped like ``Results.to_frame()``.

        Examples
        --------
        >>> run = wf.submit(n_jobs=1); res = run.wait()   # runs/iris: finished already
        >>> run.results()[["test_accuracy", "param_clf__C"]]
                    test_accuracy  param_clf__C
        outer_fold
        0                    1.00          10.0
        1                    0.96          10.0
        2                    0.96          10.0
        """
        return self.workflow.finished_folds()

    # ---------------------------------------------------------- control
    def cancel(self, *, wait=True, timeout=60):
        """Stop the run: nothing new starts, running tasks are aborted; finished outputs stay.

        With ``wait`` (keyword-only, as every option), block at most
        ``timeout`` seconds (None: until it has stopped) for the driver to stop.

        Examples
        --------
        >>> run = exp.build(X, y, workdir="runs/new").submit(n_jobs=1)   # 29 tasks to run
        >>> run.cancel()
        >>> run.state
        'cancelled'
        """
        validate_params({"wait": wait, "timeout": timeout}, CANCEL_CONSTRAINTS, "Run.cancel")
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
        >>> run = wf.submit(n_jobs=1)
        >>> res = run.wait()
        """
        validate_params({"timeout": timeout}, CANCEL_CONSTRAINTS, "Run.wait")
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            # Short waits in a loop: an Event.wait() without timeout would not
            # let the main thread see Ctrl-C on every platform.
            while not self._finished.wait(0.2):
                if deadline is not None and time.monotonic() >= deadline:
                    from .exceptions import RunTimeout

                    raise RunTimeout(f"the run of {self.workflow.workdir} is still going after {timeout} s")
        except KeyboardInterrupt:
            self.cancel()
            raise
        if self._error is not None:
            raise self._error
        return self._outcome

    # ---------------------------------------------------------- display
    def summary_line(self, counts=None):
        """One line: state, tasks done, elapsed, ETA.

        Examples
        --------
        While a run goes on it reads e.g. ``'running on local: 40/81 tasks
        done, 2/5 outer folds, 12 s elapsed, ~10 s left'``; once it ended:

        >>> run = wf.submit(n_jobs=1); res = run.wait()   # runs/iris: finished already
        >>> run.summary_line()
        'finished on local: 29/29 tasks done, 3/3 outer folds, ... s elapsed'
        """
        counts = self.status() if counts is None else counts  # read the workdir once per line
        folds = sum(counts["by_kind"].get(kind, {}).get("done_main", 0) for kind in FOLD_KINDS)
        n_folds = sum(counts["by_kind"].get(kind, {}).get("total_main", 0) for kind in FOLD_KINDS)
        text = (f"{self.state} on {self.backend_name}: {counts['done']}/{counts['total']} tasks done, "
                f"{folds}/{n_folds} outer folds, {format_seconds(self.elapsed())} elapsed")
        if counts["failed"]:
            text += f", {counts['failed']} failed"
        if counts["blocked"]:
            text += f", {counts['blocked']} blocked by a failure"
        eta = self.eta(counts)
        if not self.done() and eta is not None:
            text += f", ~{format_seconds(eta)} left"
        return text

    def plot_search(self, ax=None, metric=None):
        """The inner search filled in so far (a SearchDisplay), from the workdir's outputs.

        Call it again to see more cells: fits that finished since are read,
        never the workers (any backend, also after ``attach()``).

        Examples
        --------
        >>> run = wf.submit(n_jobs=1); res = run.wait()
        >>> int(run.plot_search().n_done.sum())   # 3 candidates x 3 outer x 2 inner folds
        18
        """
        return self.workflow.plot_search(ax=ax, metric=metric)

    def _repr_html_(self):
        from .display import run_html

        return run_html(self)

    def __repr__(self):
        return f"<Run {self.workflow.workdir}: {self.summary_line()}>"  # one read of the workdir


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
