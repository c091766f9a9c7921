"""Workflow: the user-facing task graph of an experiment -- run, submit, export, plot.

The tasks and their state come from :class:`mempamal.graph.TaskGraph`; the
compact ``tasks.json`` and the :class:`Task` records it stands for from
:mod:`mempamal.tasktable`.
"""

import warnings

from . import integrity, store
from .graph import TaskGraph, find_results_problem
from .lock import WorkdirLock
from .backends.tracker import BLOCKED_MESSAGE
from .tasktable import Task  # noqa: F401 (mp.Task)


class WorkflowError(RuntimeError):
    """Some tasks failed; ``failed`` maps their ids to the error messages.

    The tasks are counted as ``mempamal status`` counts them afterwards:
    failed (an error log), ``blocked`` by a failure, or ``not_run``: stopped
    by a full disk (:data:`mempamal.store.DISK_FULL_NOT_RUN`: neither their
    output nor an error log could be written) or waiting on such a task,
    which stay pending.

    Examples
    --------
    >>> error = WorkflowError({"fit-o0-i0-c0": "ValueError: bad"}, "runs/iris")
    >>> error.failed
    {'fit-o0-i0-c0': 'ValueError: bad'}
    >>> str(WorkflowError({"fit-o0-i0-c0": "Task 'fit-o0-i0-c0' not run to the end (disk full): ...",
    ...                    "select-o0": "not run: depends on failed task 'fit-o0-i0-c0'"}, "wd"))[:60]
    '0 task(s) failed, 2 not run because the disk is full in wd; '
    """

    def __init__(self, failed, workdir=None):
        self.failed = dict(failed)
        stopped = {i for i, message in self.failed.items() if store.DISK_FULL_NOT_RUN in message}
        # A dependent of a task the full disk stopped is pending, as that task is.
        waiting = {f"{BLOCKED_MESSAGE} {task_id!r}" for task_id in stopped}
        self.not_run = sorted(i for i, message in self.failed.items() if i in stopped or message in waiting)
        # The backends report the dependents of a failed task as "not run:
        # depends on failed task ...": counted apart, as `mempamal status` does.
        self.blocked = sorted(i for i, message in self.failed.items()
                              if message.startswith(BLOCKED_MESSAGE) and message not in waiting)
        errors = [(i, message) for i, message in self.failed.items()
                  if not message.startswith(BLOCKED_MESSAGE) and i not in stopped]
        first_id, first_message = (errors or [(i, self.failed[i]) for i in sorted(stopped)]
                                   or list(self.failed.items()))[0]
        blocked = f", {len(self.blocked)} blocked by a failure" if self.blocked else ""
        not_run = f", {len(self.not_run)} not run because the disk is full" if self.not_run else ""
        advice = (" The tasks not run could not write their output or error log; they stay pending "
                  "(as `mempamal status` counts them): free some space and run again." if self.not_run else "")
        super().__init__(
            f"{len(errors)} task(s) failed{blocked}{not_run} in {workdir}; first {first_id!r}: {first_message}"
            f"{advice}"
        )


class Workflow(TaskGraph):
    """The task graph stored in a workdir, ready to run.

    Get one from :meth:`mempamal.Experiment.build` or :meth:`Workflow.open`.

    Examples
    --------
    >>> wf = exp.build(X, y, workdir="runs/iris")      # doctest: +SKIP
    >>> len(wf.tasks), wf.status()["pending"]           # doctest: +SKIP
    (81, 81)
    >>> res = wf.run(n_jobs=2)                          # doctest: +SKIP
    """

    # -------------------------------------------------------------- run
    def run(self, backend="local", n_jobs=None, progress=True, stop=None, wait=False, **options):
        """Run every unfinished task and return the :class:`mempamal.Results`.

        ``backend`` is a registered name (``"local"``, ``"ipyparallel"``,
        ``"soma-workflow"``) or a :class:`mempamal.Backend`;
        ``n_jobs`` counts workers like scikit-learn (-1 = all cores).
        Finished tasks are never run again.  ``stop`` (a
        :class:`threading.Event`) cancels the run from another thread: the
        backend aborts and :class:`mempamal.RunCancelled` is raised.  This is
        ``submit(...).wait()``: Ctrl-C cancels the run and finished outputs stay.

        One runner at a time: the run holds the workdir's lock
        (:mod:`mempamal.lock`).  When another live process holds it, the run
        is refused with :class:`mempamal.lock.WorkdirLocked` naming it, or
        waits for it with ``wait=True`` (or at most ``wait`` seconds).  A lock
        left by a killed runner is taken over.  A missing or corrupt
        ``results.json`` of a finished workdir is written again.

        Examples
        --------
        >>> res = wf.run(backend="local", n_jobs=2)         # doctest: +SKIP
        >>> res = wf.run(n_jobs=2, wait=600)   # queue behind a running run  # doctest: +SKIP
        """
        return self.submit(backend, n_jobs=n_jobs, progress=progress, stop=stop, wait=wait, **options).wait()

    def submit(self, backend="local", n_jobs=None, progress=False, stop=None, wait=False, **options):
        """Start running the unfinished tasks in a background thread; return a :class:`mempamal.Run` at once.

        Same arguments as :meth:`run`.  The caller stays free (a notebook
        kernel keeps executing cells); ``run.status()``, ``run.results()``
        (finished outer folds), ``run.cancel()`` and ``run.wait()`` follow it.
        Bad arguments raise here, before anything starts, and so does
        :class:`mempamal.lock.WorkdirLocked` unless ``wait`` asks to queue
        behind the current runner (then the driver thread waits), and so does
        a workdir other users could write to
        (:func:`mempamal.store.check_workdir_is_safe`: one
        :class:`mempamal.WorkdirError` naming the path, nothing dispatched).

        Examples
        --------
        >>> run = wf.submit(backend="local", n_jobs=2)      # doctest: +SKIP
        >>> run.done(), run.status()["done"]                # doctest: +SKIP
        (False, 3)
        >>> res = run.wait()                                # doctest: +SKIP
        """
        from .backends.base import effective_n_jobs, get_backend
        from .run import Run

        runner = get_backend(backend, **options)
        if n_jobs is not None:
            effective_n_jobs(n_jobs)  # the argument check, raised in the caller's thread
        name = backend if isinstance(backend, str) else (runner.name or type(runner).__name__)
        # Once, naming the path, before the lock or any task: each task
        # would refuse it anyway, one failure per task dispatched.
        store.check_workdir_is_safe(self.workdir)
        self.table  # verifies tasks.json before anything runs
        lock = WorkdirLock(self.workdir, purpose="run", wait=wait)
        if not wait:
            lock.acquire()  # refused here, in the caller's thread

        def execute(stop_event):
            return self._execute(runner, n_jobs, progress, stop_event, lock)

        try:
            # A backend that can attach to its own submissions runs jobs that outlive this process.
            outlives = getattr(runner, "outlives_driver", hasattr(runner, "attach"))
            return Run(self, execute, backend_name=name, stop=stop, outlives_driver=outlives)
        except BaseException:
            lock.release()
            raise

    def _execute(self, runner, n_jobs, progress, stop, lock):
        """Run the pending tasks with ``runner`` under ``lock`` (in the driver thread); the Results."""
        try:
            if not lock.holds():
                lock.acquire(stop=stop)
            # One clear error here rather than the same one from every task.
            integrity.verify_build_files(self.workdir, self.manifest)
            done, untrusted = self.check_outputs()
            _report_untrusted(untrusted)
            pending = [task_id for task_id in self.table.ids() if task_id not in done]
            if not pending and not self._results_ok():
                # Finished workdir, lost results: the final task rewrites them.
                pending, untrusted = ["final"], {**untrusted, "final": "results.json lost"}
            self._remove_outputs(untrusted)
            if pending:
                extra = {"stop": stop} if stop is not None and _accepts_stop(runner) else {}
                failed = runner.run(self, pending, n_jobs=n_jobs, progress=progress, **extra)
                # Validate the new outputs once, now, into the done-index: the
                # next status (maybe another process's) reads only what changes after.
                self.scan_outputs()
                options = dict(n_jobs=n_jobs, progress=progress, **extra)
                failed = self._run_removed_inputs_again(runner, failed, options)
                if failed:
                    # error_score="raise": the estimator's own exception, as scikit-learn raises it.
                    from .engine.tasks import raise_estimator_error

                    error = WorkflowError(failed, self.workdir)
                    raise_estimator_error(failed, cause=error)  # its __cause__ lists every failed task
                    raise error
            return self.results()
        finally:
            lock.release()

    def _run_removed_inputs_again(self, runner, failed, options, rounds=2):
        """Run again the tasks that found a dependency's output corrupt, after that dependency.

        Such a task removed the output it refused
        (:data:`mempamal.integrity.REMOVED_TO_RUN_AGAIN`: it was damaged
        after this run's scan, or edited in place keeping its size and
        mtime): its producer, the task and the tasks it blocked run again,
        at most ``rounds`` times.  Returns the failures left.
        """
        for _ in range(rounds):
            refused = {i for i, message in failed.items() if integrity.REMOVED_TO_RUN_AGAIN in message}
            if not refused:
                break
            done = self.scan_outputs()
            again = set(refused)
            again.update(dep for task_id in refused for dep in self.table.task(task_id).deps if dep not in done)
            waiting = {f"{BLOCKED_MESSAGE} {task_id!r}" for task_id in refused}
            again.update(i for i, message in failed.items() if message in waiting)
            failed = {i: message for i, message in failed.items() if i not in again}
            failed.update(runner.run(self, [i for i in self.table.ids() if i in again], **options))
            self.scan_outputs()
        return failed

    def _remove_outputs(self, task_ids):
        """Delete these tasks' outputs before they run again (they would only be reported twice).

        Never through a folder someone else could control (e.g. ``outputs/``
        replaced by a link to a shared folder): the tasks refuse such a
        workdir themselves and say why; its files are not ours to delete.
        """
        if not task_ids:
            return
        try:
            store.check_workdir_is_safe(self.workdir)
        except store.WorkdirError:
            return
        for task_id in task_ids:
            store.output_path(self.workdir, task_id).unlink(missing_ok=True)

    def _results_ok(self):
        return find_results_problem(self.workdir, self.manifest["build_id"]) is None

    def results(self):
        """The :class:`mempamal.Results` of this finished workdir.

        Examples
        --------
        >>> mp.Workflow.open("runs/iris").results()        # doctest: +SKIP
        """
        from .results import Results

        return Results.load(self.workdir)

    def attach(self, progress=False):
        """Follow a run of this workdir started elsewhere (e.g. before a kernel restart).

        When another live process holds the workdir's run lock (the driver
        is alive), the returned :class:`mempamal.Run` only watches the
        files.  Otherwise a job-based backend that recorded its submission
        in ``WORKDIR/submissions/<backend>.json`` (slurm, soma-workflow with
        a ``resource_id``) follows the jobs again with its ``attach`` method,
        from a driver thread holding the run lock, as :meth:`submit` does.
        Returns None when nothing is running.

        Examples
        --------
        >>> run = mp.Workflow.open("runs/bc").attach()      # doctest: +SKIP
        >>> run.status()                                    # doctest: +SKIP
        """
        from .run import Run
        from .submissions import live_runner, recorded_submission

        holder = live_runner(self.workdir)
        submission = recorded_submission(self.workdir)
        # A live driver still follows its own jobs (a second soma-workflow
        # engine would submit them twice): then only watch the files.
        if holder is None and submission is not None and self.pending_ids():  # a finished submission is history
            from .backends.base import get_backend

            runner = get_backend(submission["backend"])
            lock = WorkdirLock(self.workdir, purpose="attach")
            lock.acquire()  # the dead driver's lock is taken over; a new runner's refuses us here

            def execute(stop_event):
                try:
                    failed = runner.attach(self, stop=stop_event, progress=progress)
                    return self._results_or_error(failed)
                finally:
                    lock.release()

            try:
                return Run(self, execute, backend_name=submission["backend"], outlives_driver=True)
            except BaseException:
                lock.release()
                raise
        if holder is None:
            return None

        def watch(stop_event):
            # Another process drives the run: follow its files until it lets go of the lock.
            while live_runner(self.workdir) is not None:
                if stop_event.wait(1.0):
                    from .backends.base import RunCancelled

                    raise RunCancelled("stopped watching (the run itself goes on)")
            return self._results_or_error(None)

        return Run(self, watch, backend_name=f"pid {holder.get('pid')} on {holder.get('host')}", drives=False)

    def _results_or_error(self, failed):
        """The Results once a run has ended, else the failures (or what is left) as an error."""
        from .results import Results

        failed = dict(failed or {}) or {task_id: f"failed (see {store.log_path(self.workdir, task_id)})"
                                        for task_id in self.failed_ids()}
        if failed:
            raise WorkflowError(failed, self.workdir)
        if not (self.workdir / store.RESULTS).exists():
            status = self.status()
            raise RuntimeError(f"The run of {self.workdir} ended with {status['total'] - status['done']} of "
                               f"{status['total']} "
                               "tasks unfinished; run it again to resume.")
        return Results.load(self.workdir)

    def finished_folds(self):
        """Outer folds finished so far, shaped like ``Results.to_frame()`` (partial results).

        Examples
        --------
        >>> wf.finished_folds()                             # doctest: +SKIP
        """
        from .results import finished_folds

        return finished_folds(self)

    def export(self, path, format="commands", **options):
        """Write the graph for another runner: ``commands``, ``shell``,
        ``makefile`` or ``soma-workflow`` (see :mod:`mempamal.backends.export`).

        Examples
        --------
        >>> wf.export("Makefile", format="makefile")                          # doctest: +SKIP
        PosixPath('Makefile')
        >>> wf.export("wf-soma.json", format="soma-workflow")                # doctest: +SKIP
        PosixPath('wf-soma.json')
        """
        from .backends.export import export_workflow

        return export_workflow(self, path, format=format, **options)

    # ----------------------------------------------------------- display
    def plot(self, ax=None):
        """Draw the dependency graph (tasks layered fit → select → final).

        Examples
        --------
        Returns the :class:`~mempamal.display.GraphDisplay` (``ax_``,
        ``figure_``, ``positions_``, ``aggregated_``).

        >>> disp = wf.plot()                                                  # doctest: +SKIP
        >>> disp.ax_.get_title()                                              # doctest: +SKIP
        '4 tasks: 3 score, 1 final'
        """
        from .display import GraphDisplay

        return GraphDisplay.from_workflow(self, ax=ax)

    def _repr_html_(self):
        from .display import workflow_html

        return workflow_html(self)

    def __repr__(self):
        status = self.status()
        return f"<Workflow {self.workdir}: {status['total']} tasks, {status['done']} done>"


def _report_untrusted(untrusted, limit=5):
    """Warn about outputs that will run again: each one, or a summary when many."""
    problems = [untrusted[task_id] for task_id in sorted(untrusted)]
    if len(problems) <= limit:
        for problem in problems:
            warnings.warn(f"Not trusting an output: {problem}; its task will run again.", stacklevel=3)
        return
    examples = "; ".join(problems[:limit])
    warnings.warn(f"Not trusting {len(problems)} outputs, which will run again; e.g. {examples}", stacklevel=3)


def _accepts_stop(runner):
    """False for backends written before ``run(..., stop=)`` existed: they get no ``stop``."""
    import inspect

    parameters = inspect.signature(runner.run).parameters.values()
    return any(p.name == "stop" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
