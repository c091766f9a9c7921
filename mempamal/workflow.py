"""Task and Workflow: the graph of an experiment, its status, run and export.

The graph (docs/architecture.md)::

    fit-o<k>-i<j>-c<c>  ->  select-o<k>  -\\
                            score-o<k>   ---> final
    perm-<m>-...        (same shape)     -/

Ids are stable: the same experiment, data and chunking give the same ids, so
a rebuilt workdir resumes where it stopped.
"""

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import integrity, store
from .lock import WorkdirLock, describe_holder, read_holder
from .splits import MAIN, permutation_name


class WorkflowError(RuntimeError):
    """Some tasks failed; ``failed`` maps their ids to the error messages."""

    def __init__(self, failed, workdir=None):
        self.failed = dict(failed)
        first_id, first_message = next(iter(self.failed.items()))
        more = f" (and {len(self.failed) - 1} more)" if len(self.failed) > 1 else ""
        super().__init__(
            f"{len(self.failed)} task(s) failed in {workdir}{more}; first {first_id!r}: {first_message}"
        )


@dataclass(frozen=True)
class Task:
    """One unit of work: ``python -m mempamal task WORKDIR <id>``.

    Examples
    --------
    >>> wf = mp.Workflow.open("runs/iris")          # doctest: +SKIP
    >>> wf.tasks[0]                                  # doctest: +SKIP
    Task(id='fit-o0-i0-c0', kind='fit', deps=(), ...)
    """

    id: str
    kind: str
    deps: tuple
    command: tuple = field(repr=False)
    split_set: str = MAIN
    outer: int = None
    inner: int = None
    points: tuple = field(default=None, repr=False)

    @property
    def permutation(self):
        """Index of the permutation this task belongs to, or None."""
        if self.split_set == MAIN:
            return None
        return int(self.split_set.split("-", 1)[1])


def make_task_table(split_set_info, chunks, nested):
    """The task rows of ``tasks.json``: ``[id, kind, deps, split_set, outer, inner, chunk]``.

    ``split_set_info`` maps each split set name (``main``, ``perm-<m>``, in
    order) to ``{"n_outer": K, "n_inner": [J_0, ..., J_K-1]}``.
    """
    rows, final_deps = [], []
    for split_set, info in split_set_info.items():
        prefix = "" if split_set == MAIN else f"{split_set}-"
        for outer in range(info["n_outer"]):
            if not nested:
                task_id = f"{prefix}score-o{outer}"
                rows.append([task_id, "score", [], split_set, outer, None, None])
                final_deps.append(task_id)
                continue
            fit_ids = []
            for inner in range(info["n_inner"][outer]):
                for chunk in range(len(chunks)):
                    task_id = f"{prefix}fit-o{outer}-i{inner}-c{chunk}"
                    rows.append([task_id, "fit", [], split_set, outer, inner, chunk])
                    fit_ids.append(task_id)
            select_id = f"{prefix}select-o{outer}"
            rows.append([select_id, "select", fit_ids, split_set, outer, None, None])
            final_deps.append(select_id)
    rows.append(["final", "final", final_deps, None, None, None, None])
    return rows


def task_command(workdir, task_id, python=None):
    """The command line that runs one task anywhere the workdir is mounted."""
    return (python or sys.executable, "-m", "mempamal", "task", str(workdir), task_id)


class Workflow:
    """The task graph stored in a workdir.

    Get one from :meth:`mempamal.Experiment.build` or :meth:`Workflow.open`.

    Examples
    --------
    >>> wf = exp.build(X, y, workdir="runs/iris")      # doctest: +SKIP
    >>> len(wf.tasks), wf.status()["pending"]           # doctest: +SKIP
    (81, 81)
    >>> res = wf.run(n_jobs=2)                          # doctest: +SKIP
    """

    def __init__(self, workdir):
        self.workdir = Path(workdir).absolute()
        self.manifest = store.read_json(self.workdir / store.MANIFEST)
        self._tasks = None
        self._by_id = None
        self._scan_cache = {}

    @classmethod
    def open(cls, workdir):
        """Reopen a built workdir (e.g. after a crash) to inspect, run or export it."""
        workdir = Path(workdir)
        if not (workdir / store.MANIFEST).exists():
            if store.is_workdir(workdir):
                raise store.WorkdirError(
                    f"{workdir} holds an incomplete build (no {store.MANIFEST}); build it again."
                )
            raise store.WorkdirError(f"{workdir} is not a mempamal workdir (no {store.MANIFEST}).")
        return cls(workdir)

    # ------------------------------------------------------------ graph
    @property
    def tasks(self):
        """All tasks, in an order where every task comes after its dependencies."""
        if self._tasks is None:
            # Straight from the rows (a graph can have 100,000 tasks): one
            # shared tuple per chunk, the command prefix computed once.
            table = store.read_json(self.workdir / store.TASKS)
            integrity.check_tasks_digest(self.workdir, table, self.manifest)
            chunks = [tuple(chunk) for chunk in table["chunks"]]
            command = task_command(self.workdir, "", self.manifest.get("python"))[:-1]
            self._tasks = [
                Task(task_id, kind, tuple(deps), command + (task_id,), split_set or MAIN, outer, inner,
                     None if chunk is None else chunks[chunk])
                for task_id, kind, deps, split_set, outer, inner, chunk in table["tasks"]
            ]
        return self._tasks

    def _tasks_by_id(self):
        if self._by_id is None:
            self._by_id = {task.id: task for task in self.tasks}
        return self._by_id

    def task(self, task_id):
        """The :class:`Task` with id ``task_id``."""
        try:
            return self._tasks_by_id()[task_id]
        except KeyError:
            raise KeyError(f"No task {task_id!r} in {self.workdir}.") from None

    def _definition(self, task_id):
        task = self._tasks_by_id().get(task_id)
        if task is None:
            return None  # a file that is no task's output: not counted
        return integrity.task_definition_digest(task.id, task.kind, task.deps, task.split_set,
                                                task.outer, task.inner, task.points)

    def check_outputs(self):
        """``(done, untrusted)``: ids with a trusted output, and ``{id: why not}``.

        An output is trusted when it is complete JSON stamped with its task
        id, this build's id and the task's current definition; the others
        (truncated, copied from another task, left by a run of an earlier
        build) count as not done and are run again.
        """
        if len(self._scan_cache) > 2 * len(self.tasks):
            self._scan_cache.clear()  # entries of files since rewritten
        return integrity.scan_outputs(self.workdir, self.manifest["build_id"], self._definition, self._scan_cache)

    def done_ids(self):
        """Ids of the tasks whose output exists and is trusted."""
        return self.check_outputs()[0]

    def pending_ids(self):
        """Ids still to run (no trusted output), in dependency order."""
        done = self.done_ids()
        return [task.id for task in self.tasks if task.id not in done]

    def failed_ids(self):
        """Ids that failed last time they ran (an error log and no output)."""
        done = self.done_ids()
        logs = Path(self.workdir) / store.LOGS_DIR
        names = {p.name[:-4] for p in logs.glob("*.err")} if logs.exists() else set()
        return sorted(names - done)

    def status(self):
        """Counts of tasks: total, done, pending, failed, untrusted, and done/total per kind.

        ``untrusted`` maps each output file that exists but is not counted
        as done to the reason (corrupt, another task's, another build's);
        ``running`` names the process holding the workdir's lock, if any;
        ``results`` says what is wrong with ``results.json`` when every task
        is done but it cannot be read (``run`` writes it again), else None.

        Examples
        --------
        >>> wf.status()                                     # doctest: +SKIP
        {'total': 81, 'done': 12, 'pending': 69, 'failed': 0, 'untrusted': {}, 'by_kind': {...}}
        """
        done, untrusted = self.check_outputs()
        by_kind = {}
        for task in self.tasks:
            counts = by_kind.setdefault(task.kind, {"done": 0, "total": 0})
            counts["total"] += 1
            counts["done"] += task.id in done
        n_done = sum(c["done"] for c in by_kind.values())
        holder = read_holder(self.workdir)
        results_problem = None
        if n_done == len(self.tasks):
            from .results import results_problem as problem_of

            results_problem = problem_of(self.workdir, self.manifest["build_id"])
        return {
            "total": len(self.tasks), "done": n_done, "pending": len(self.tasks) - n_done,
            "failed": len(self.failed_ids()), "untrusted": untrusted, "by_kind": by_kind,
            "running": None if holder is None else describe_holder(holder),
            "results": results_problem,
        }

    # -------------------------------------------------------------- run
    def run(self, backend="local", n_jobs=None, progress=True, stop=None, wait=False, **options):
        """Run every unfinished task and return the :class:`mempamal.Results`.

        ``backend`` is a registered name (``"local"``, ``"ipyparallel"``,
        ``"soma-workflow"``) or a :class:`mempamal.backends.Backend`;
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
        behind the current runner (then the driver thread waits).

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
        self.tasks  # verifies tasks.json before anything runs
        lock = WorkdirLock(self.workdir, purpose="run", wait=wait)
        if not wait:
            lock.acquire()  # refused here, in the caller's thread

        def execute(stop_event):
            return self._execute(runner, n_jobs, progress, stop_event, lock)

        try:
            # A backend that can attach to its own submissions runs jobs that outlive this process.
            return Run(self, execute, backend_name=name, stop=stop, outlives_driver=hasattr(runner, "attach"))
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
            pending = [task.id for task in self.tasks if task.id not in done]
            if not pending and not self._results_ok():
                # Finished workdir, lost results: the final task rewrites them.
                pending, untrusted = ["final"], {**untrusted, "final": "results.json lost"}
            self._remove_outputs(untrusted)
            if pending:
                extra = {"stop": stop} if stop is not None and _accepts_stop(runner) else {}
                failed = runner.run(self, pending, n_jobs=n_jobs, progress=progress, **extra)
                if failed:
                    raise WorkflowError(failed, self.workdir)
            return self.results()
        finally:
            lock.release()

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
        from .results import results_problem

        return results_problem(self.workdir, self.manifest["build_id"]) is None

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

        A job-based backend records its submission in
        ``WORKDIR/submissions/<backend>.json``; its ``attach`` method then
        follows the jobs from a driver thread, as :meth:`submit` does.
        Otherwise, when another live process holds the workdir's run lock,
        the returned :class:`mempamal.Run` only watches the files.  Returns
        None when nothing is running.

        Examples
        --------
        >>> run = mp.Workflow.open("runs/bc").attach()      # doctest: +SKIP
        >>> run.status()                                    # doctest: +SKIP
        """
        from .run import Run
        from .submissions import live_runner, recorded_submission

        submission = recorded_submission(self.workdir)
        if submission is not None and self.pending_ids():  # a finished submission's record is history
            from .backends.base import get_backend

            runner = get_backend(submission["backend"])

            def execute(stop_event):
                failed = runner.attach(self, stop=stop_event, progress=progress)
                return self._results_or_error(failed)

            return Run(self, execute, backend_name=submission["backend"], outlives_driver=True)
        holder = live_runner(self.workdir)
        if holder is None:
            return None

        def watch(stop_event):
            # Another process drives the run: follow its files until it lets go of the lock.
            while live_runner(self.workdir) is not None:
                if stop_event.wait(1.0):
                    from .backends.base import RunCancelled

                    raise RunCancelled("stopped watching (the run itself goes on)")
            return self._results_or_error(None)

        return Run(self, watch, backend_name=f"pid {holder.get('pid')} on {holder.get('host')}")

    def _results_or_error(self, failed):
        """The Results once a run has ended, else the failures (or what is left) as an error."""
        from .results import Results

        failed = dict(failed or {}) or {task_id: f"failed (see {store.log_path(self.workdir, task_id)})"
                                        for task_id in self.failed_ids()}
        if failed:
            raise WorkflowError(failed, self.workdir)
        if not (self.workdir / store.RESULTS).exists():
            status = self.status()
            raise RuntimeError(f"The run of {self.workdir} ended with {status['pending']} of {status['total']} "
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
        ``makefile`` or ``soma-workflow`` (see :mod:`mempamal.backends.export`)."""
        from .backends.export import export_workflow

        return export_workflow(self, path, format=format, **options)

    # ----------------------------------------------------------- display
    def plot(self, ax=None):
        """Draw the dependency graph (tasks layered fit → select → final)."""
        from .display import GraphDisplay

        return GraphDisplay.from_workflow(self).plot(ax=ax)

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
