"""Workflow: the user-facing task graph of an experiment -- run, submit, export, plot.

The tasks and their state come from :class:`mempamal.graph.state.TaskGraph`; the
compact ``tasks.json`` and the :class:`Task` records it stands for from
:mod:`mempamal.store.tasktable`.
"""

import numbers
import warnings

from .store import integrity
from . import store
from .graph.state import TaskGraph, find_results_problem
from .store.lock import WorkdirLock
from .exceptions import BLOCKED_MESSAGE, WorkflowError  # noqa: F401 (mp.WorkflowError)
from .store.tasktable import Task  # noqa: F401 (mp.Task)
from ._constraints import HasMethods, Interval, validate_params

#: The options of run and submit (``backend`` and its options: the backend;
#: ``n_jobs``: backends.base.N_JOBS_CONSTRAINTS).
RUN_CONSTRAINTS = {
    "progress": ["boolean"],
    "stop": [HasMethods(["is_set", "wait"]), None],
    "wait": ["boolean", Interval(numbers.Real, 0, None, closed="left")],
    "allow_version_mismatch": ["boolean"],
}


class Workflow(TaskGraph):
    """The task graph stored in a workdir, ready to run.

    Get one from :meth:`mempamal.Experiment.build` or :meth:`Workflow.open`.

    Examples
    --------
    >>> wf = exp.build(X, y, workdir="runs/iris")   # this workdir holds exp, finished: reused
    >>> len(wf.tasks), wf.status()["pending"]
    (29, 0)
    >>> res = wf.run(n_jobs=1, progress=False)   # finished already: nothing to run
    """

    # -------------------------------------------------------------- run
    #: True while a run started with ``allow_version_mismatch=True`` goes on
    #: (one runner per workdir: the lock); backends carry it to their tasks.
    allow_version_mismatch = False

    def run(self, *, backend="local", n_jobs=None, progress=False, stop=None, wait=False,
            allow_version_mismatch=False, **options):
        """Run every unfinished task and return the :class:`mempamal.Results`.

        Every argument is keyword-only, as scikit-learn's options.
        ``backend`` is a registered name (``"local"``, ``"ipyparallel"``,
        ``"soma-workflow"``) or a :class:`mempamal.Backend`;
        ``n_jobs`` counts workers like scikit-learn (-1 = all cores, -2 = all
        but one); ``n_jobs=None`` takes the ``n_jobs`` of an active
        ``joblib.parallel_config`` (as scikit-learn does) and means all cores
        without one (scikit-learn's 1 would make every plain run serial).
        ``progress=True`` shows a tqdm bar; off by default in ``run`` and
        ``submit`` alike, as scikit-learn's ``verbose=0``.
        Finished tasks are never run again.  ``stop`` (a
        :class:`threading.Event`) cancels the run from another thread: the
        backend aborts and :class:`mempamal.RunCancelled` is raised.  This is
        ``submit(...).wait()``: Ctrl-C cancels the run and finished outputs stay.

        One runner at a time: the run holds the workdir's lock
        (:mod:`mempamal.store.lock`).  When another live process holds it, the run
        is refused with :class:`mempamal.WorkdirLocked` naming it, or
        waits for it with ``wait=True`` (or at most ``wait`` seconds).  A lock
        left by a killed runner is taken over.  A missing or corrupt
        ``results.json`` of a finished workdir is written again.

        Every task refuses to run under other Python or library versions
        than the build's (:class:`mempamal.VersionMismatchError` naming each
        package and both versions: "same answer everywhere" needs the same
        libraries); ``allow_version_mismatch=True`` runs them anyway, and
        each output records the mismatch (``status()["mixed_versions"]``).

        Examples
        --------
        >>> res = wf.run(backend="local", n_jobs=2, progress=False)
        >>> res = wf.run(n_jobs=2, wait=600, progress=False)   # queue behind a running run
        """
        return self.submit(backend=backend, n_jobs=n_jobs, progress=progress, stop=stop, wait=wait,
                           allow_version_mismatch=allow_version_mismatch, **options).wait()

    def submit(self, *, backend="local", n_jobs=None, progress=False, stop=None, wait=False,
               allow_version_mismatch=False, **options):
        """Start running the unfinished tasks in a background thread; return a :class:`mempamal.Run` at once.

        Same arguments as :meth:`run`.  The caller stays free (a notebook
        kernel keeps executing cells); ``run.status()``, ``run.results()``
        (finished outer folds), ``run.cancel()`` and ``run.wait()`` follow it.
        Bad arguments raise here, before anything starts, and so does
        :class:`mempamal.WorkdirLocked` unless ``wait`` asks to queue
        behind the current runner (then the driver thread waits), and so does
        a workdir other users could write to
        (:func:`mempamal.store.check_workdir_is_safe`: one
        :class:`mempamal.WorkdirError` naming the path, nothing dispatched).

        Examples
        --------
        >>> wf = mp.Experiment(estimator, cv=3).build(X, y, workdir="runs/cv")
        >>> run = wf.submit(backend="local", n_jobs=1)
        >>> run.state in ("running", "done")
        True
        >>> res = run.wait(); run.done(), run.status()["done"]
        (True, 5)
        """
        from .backends.base import RunObserver, check_backend, check_n_jobs, joblib_n_jobs
        from .run import Run

        check_n_jobs(n_jobs, "Workflow.run")
        check_run_options(progress=progress, stop=stop, wait=wait, allow_version_mismatch=allow_version_mismatch)
        # Refused in the caller's thread: a wrong backend or option, a script
        # whose spawned workers would start the run again.
        runner = check_backend(backend, None, options)
        # A backend made here from its name is this run's alone: closed when
        # the run ends (its workers go with it).  An instance is the caller's.
        owned = isinstance(backend, str)
        observer = RunObserver()
        # joblib's parallel_config is per thread: read it here, not in the driver thread.
        n_jobs = joblib_n_jobs(n_jobs)
        check_n_jobs(n_jobs, "Workflow.run")
        name = backend if isinstance(backend, str) else (runner.name or type(runner).__name__)
        # Once, naming the path, before the lock or any task: each task
        # would refuse it anyway, one failure per task dispatched.
        store.check_workdir_is_safe(self.workdir)
        self.table  # verifies tasks.json before anything runs
        lock = WorkdirLock(self.workdir, purpose="run", wait=wait)
        if not wait:
            lock.acquire()  # refused here, in the caller's thread
        if owned:  # the workers an estimate's sample started, for the same backend: KeptRunner
            runner = self._kept_runner.take(backend, options) or runner

        def execute(stop_event):
            try:
                return self._execute(runner, n_jobs, progress, stop_event, lock, observer=observer,
                                     allow_version_mismatch=allow_version_mismatch)
            finally:
                if owned:
                    runner.close()

        try:
            # Declared by the backend (JobBackend: jobs that outlive this process).
            run = Run(self, execute, backend_name=name, stop=stop, outlives_driver=runner.outlives_driver,
                      observer=observer)
        except BaseException:
            lock.release()
            raise
        self._observers.add(observer)  # status() counts what this workflow's runs execute now
        return run

    def _execute(self, runner, n_jobs, progress, stop, lock, only=None, observer=None, allow_version_mismatch=False):
        """Run the pending tasks with ``runner`` under ``lock`` (in the driver thread); the Results.

        ``only``: run just these ids (those not done), return None.  ``observer``:
        the run's :class:`~mempamal.backends.base.RunObserver`, told what executes.
        """
        owned = False
        try:
            if not lock.holds():
                lock.acquire(stop=stop)
            # Under the lock (one run of this workdir at a time): read by the backends.
            self.allow_version_mismatch, owned = allow_version_mismatch, True
            # One clear error here rather than the same one from every task.
            integrity.verify_build_files(self.workdir, self.manifest)
            done, untrusted = self.check_outputs()
            _report_untrusted(untrusted)
            pending = [task_id for task_id in (self.table.ids() if only is None else only) if task_id not in done]
            if only is None and not pending and not self._results_ok():
                # Finished workdir, lost results: the final task rewrites them.
                pending, untrusted = ["final"], {**untrusted, "final": "results.json lost"}
            self._remove_outputs(untrusted)
            if pending:
                # Each only to a backend that declares it (Backend.supports_*).
                extra = {name: value for name, value, declared in (("stop", stop, runner.supports_stop),
                                                                  ("observer", observer, runner.supports_observer))
                         if value is not None and declared}
                failed = runner.run(self, pending, n_jobs=n_jobs, progress=progress, **extra)
                # Validate the new outputs once, now, into the done-index: the
                # next status (maybe another process's) reads only what changes after.
                self.scan_outputs()
                options = dict(n_jobs=n_jobs, progress=progress, **extra)
                failed = self._run_removed_inputs_again(runner, failed, options)
                if failed:
                    # error_score="raise": the estimator's own exception, as scikit-learn raises it.
                    from .engine.failures import raise_estimator_error

                    error = WorkflowError(failed, self.workdir)
                    raise_estimator_error(failed, cause=error)  # its __cause__ lists every failed task
                    raise error
            return self.results() if only is None else None
        finally:
            if owned:
                self.allow_version_mismatch = False
            lock.release()

    def _predicted_seconds(self):
        """``{task_id: predicted wall seconds}`` from what was measured in this workdir, or None.

        What :meth:`estimate` predicts, without running anything: the job
        backends size their bundles and time limits from it once a sample
        (an estimate, or an earlier run) has left measured outputs.
        """
        from .cost_model import SplitSizes, read_costs, task_costs

        measured = read_costs(self, self.done_ids())
        if not measured:
            return None
        return {task_id: wall for task_id, (wall, _) in task_costs(self.tasks, SplitSizes(self), measured).items()}

    def estimate(self, n_jobs=None, backend="local", memory_available=None, cores=None, **options):
        """Run a small sample of the tasks, then predict the whole run: an :class:`mempamal.Estimate`.

        The sample (the first inner split's fit of each chunk of grid
        points, per family -- the data, the first permutation, the final
        search --, or the first ``score`` task for plain CV; a whole outer
        fold when it is cheap) runs on ``backend`` with ``n_jobs`` exactly
        as :meth:`run` would run it: its outputs are kept, and the next run
        does not repeat it.  The local backend's workers it started stay for
        this workflow's next :meth:`run` with the same backend name and
        options, which then does not start workers again (idle, they exit
        after five minutes, and with this process).  From what each sampled task cost (its output
        records wall time, CPU time and the worker's peak memory), every
        task's cost is extrapolated in proportion to its training rows and
        grid points, and the graph is scheduled on the workers as the
        backends do (:mod:`mempamal.cost_model` says how).

        ``memory_available`` (bytes; default: what the machine has free)
        and ``cores`` (default: ``os.cpu_count()``) are what the warnings
        compare with.  The estimate's ``warnings`` name ``n_jobs`` workers
        that would need more memory than that, or tasks whose threads
        (the estimator's ``n_jobs``, BLAS) times the workers exceed the
        cores; ``job_seconds`` is advice for job-based backends.

        Examples
        --------
        >>> est = wf.estimate(n_jobs=2)
        >>> est
        <Estimate: ~... of CPU, ~... on 2 workers, ≤ ... per worker (sample: ...)>
        >>> est.wall_seconds >= est.critical_path_seconds
        True
        """
        from .estimate import estimate_workflow

        return estimate_workflow(self, n_jobs=n_jobs, backend=backend, memory_available=memory_available,
                                 cores=cores, **options)

    @property
    def _kept_runner(self):  # the backend estimate() made from a name, for this object's next run
        from .backends.base import KeptRunner
        return self.__dict__.setdefault("_kept", KeptRunner())

    def _run_tasks(self, task_ids, backend="local", n_jobs=None, **options):
        """Run just ``task_ids`` (their dependencies done or among them) as :meth:`run` runs tasks, under the lock."""
        from .backends.base import check_backend

        runner = check_backend(backend, n_jobs, options)
        lock = WorkdirLock(self.workdir, purpose="estimate")
        lock.acquire()
        try:
            self._execute(runner, n_jobs, False, None, lock, only=list(task_ids))
        finally:
            if isinstance(backend, str):
                runner.close()  # made here from its name: its workers go with it

    def _run_removed_inputs_again(self, runner, failed, options, rounds=2):
        """Run again the tasks that found a dependency's output corrupt, after that dependency.

        Such a task removed the output it refused
        (:data:`mempamal.integrity.REMOVED_TO_RUN_AGAIN`: it was damaged
        after this run's scan, or edited in place keeping its size and
        mtime): its producer, the task and the tasks it blocked run again,
        at most ``rounds`` times.  Returns the failures left.
        """
        for _ in range(rounds):
            # A failure is a message or the TaskError a worker reported: its message says it.
            refused = {i for i, failure in failed.items() if integrity.REMOVED_TO_RUN_AGAIN in str(failure)}
            if not refused:
                break
            done = self.scan_outputs()
            again = set(refused)
            again.update(dep for task_id in refused for dep in self.table.task(task_id).deps if dep not in done)
            waiting = {f"{BLOCKED_MESSAGE} {task_id!r}" for task_id in refused}
            again.update(i for i, failure in failed.items() if str(failure) in waiting)
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
        >>> mp.Workflow.open("runs/iris").results()
        <Results ...runs/iris: 3 outer folds, accuracy=0.9733>
          experiment: Pipeline(steps=[('scale', StandardScaler()), ('clf', LogisticRegression())]), param_grid={'clf__C': [0.1, 1.0, 10.0]} (3 candidates)
          best_params (one per outer fold): [{'clf__C': 10.0}, {'clf__C': 10.0}, {'clf__C': 10.0}]
          final model: best_params_={'clf__C': 10.0} (the search on all the data), refit on all the data
        """
        from .results import Results

        return Results.load(self.workdir)

    def attach(self, *, progress=False):
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
        >>> run = mp.Workflow.open("runs/iris").attach()   # after a kernel restart
        >>> run is None   # this run had finished
        True
        """
        from .run import Run
        from .graph.submissions import live_runner, recorded_submission

        holder = live_runner(self.workdir)
        submission = recorded_submission(self.workdir)
        # A live driver still follows its own jobs (a second soma-workflow
        # engine would submit them twice): then only watch the files.
        if holder is None and submission is not None and self.pending_ids():  # a finished submission is history
            from .backends.base import JobBackend, RunObserver, get_backend

            runner = get_backend(submission["backend"])
            if not isinstance(runner, JobBackend):
                raise store.WorkdirError(f"{self.workdir}/submissions/ names the backend {submission['backend']!r}, "
                                         "which is no JobBackend: it cannot attach to jobs.")
            observer = RunObserver()
            lock = WorkdirLock(self.workdir, purpose="attach")
            lock.acquire()  # the dead driver's lock is taken over; a new runner's refuses us here

            def execute(stop_event):
                try:
                    extra = {"observer": observer} if runner.supports_observer else {}
                    failed = runner.attach(self, stop=stop_event, progress=progress, **extra)
                    return self._results_or_error(failed)
                finally:
                    lock.release()
                    runner.close()

            try:
                return Run(self, execute, backend_name=submission["backend"], outlives_driver=True,
                           observer=observer)
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
            raise store.WorkdirError(f"The run of {self.workdir} ended with {status['total'] - status['done']} "
                                     f"of {status['total']} tasks unfinished; run it again to resume.")
        return Results.load(self.workdir)

    def finished_folds(self):
        """Outer folds finished so far, shaped like ``Results.to_frame()`` (partial results).

        Examples
        --------
        >>> wf.finished_folds()[["test_accuracy", "param_clf__C"]]
                    test_accuracy  param_clf__C
        outer_fold
        0                    1.00          10.0
        1                    0.96          10.0
        2                    0.96          10.0
        """
        from .fold_table import finished_folds

        return finished_folds(self)

    def export(self, path, *, format="commands", **options):
        """Write the graph for another runner: ``commands``, ``shell``,
        ``makefile`` or ``soma-workflow`` (see :mod:`mempamal.backends.export`).

        Examples
        --------
        >>> wf.export("Makefile", format="makefile")
        PosixPath('Makefile')
        >>> wf.export("wf-soma.json", format="soma-workflow")
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

        >>> disp = wf.plot()
        >>> disp.ax_.get_title()
        '29 tasks: 18 fit, 3 select, 6 fit-all, 1 select-all, 1 final'
        """
        from .display import GraphDisplay

        return GraphDisplay.from_workflow(self, ax=ax)

    def plot_search(self, ax=None, metric=None):
        """The inner search as far as it got: candidate x outer fold heatmap (a SearchDisplay).

        Read from the trusted outputs of the finished fit tasks, so it works
        on any workdir, during a run on any backend or after it.

        Examples
        --------
        >>> disp = wf.plot_search()
        >>> disp.scores.shape, disp.best
        ((3, 3), [2, 2, 2])
        """
        from .display import SearchDisplay

        return SearchDisplay.from_workflow(self, metric=metric, ax=ax)

    def _repr_html_(self):
        from .display import workflow_html

        return workflow_html(self)

    def __repr__(self):
        status = self.status(scheduler=False)
        reused = status.reused or {}
        kept = (f" ({status.kept} tasks and {reused['kept_points']} inner fits kept from a previous build)"
                if reused.get("kept_points") or status.kept else "")
        return f"<Workflow {self.workdir}: {status['total']} tasks, {status['done']} done{kept}>"


def check_run_options(**options):
    """``progress``, ``stop`` and ``wait`` of ``run``/``submit``, before anything starts.

    Examples
    --------
    >>> check_run_options(progress="yes")
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'progress' parameter of Workflow.run must be a bool; got 'yes' instead.
    """
    validate_params(options, RUN_CONSTRAINTS, "Workflow.run")


def _report_untrusted(untrusted, limit=5):
    """Warn about outputs that will run again: each one, or a summary when many."""
    problems = [untrusted[task_id] for task_id in sorted(untrusted)]
    if len(problems) <= limit:
        for problem in problems:
            warnings.warn(f"Not trusting an output: {problem}; its task will run again.", stacklevel=3)
        return
    examples = "; ".join(problems[:limit])
    warnings.warn(f"Not trusting {len(problems)} outputs, which will run again; e.g. {examples}", stacklevel=3)
