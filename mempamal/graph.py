"""TaskGraph: the tasks of a workdir and their state, read from the files.

The graph layer: what the api (``Workflow``, ``Results``, ``Run``) and the
displays ask of a workdir -- its tasks, which are done (trusted outputs),
failed, blocked by a failure or pending, whether ``results.json`` can be used -- without running
anything.  It never imports the api.

Examples
--------
>>> graph = TaskGraph.open("runs/iris")                 # doctest: +SKIP
>>> graph.status()["done"], len(graph.tasks)            # doctest: +SKIP
(81, 81)
"""

import hashlib
from pathlib import Path

from . import integrity, store, tasktable
from .lock import describe_holder, read_holder
from .submissions import recorded_jobs


class TaskGraph:
    """The task graph stored in a workdir, and the state of each task.

    :class:`mempamal.Workflow` adds running, exporting and plotting to it.

    Examples
    --------
    >>> graph = TaskGraph.open("runs/iris")             # doctest: +SKIP
    >>> graph.pending_ids()[:2]                         # doctest: +SKIP
    ['fit-o0-i0-c0', 'fit-o0-i1-c0']
    """

    def __init__(self, workdir):
        self.workdir = Path(workdir).absolute()
        self.manifest = store.read_json(self.workdir / store.MANIFEST)
        self._tasks = None
        self._by_id = None
        self._scan_cache = {}

    @classmethod
    def open(cls, workdir):
        """Reopen a built workdir (e.g. after a crash) to inspect, run or export it.

        Examples
        --------
        >>> mp.Workflow.open("runs/iris").status()["total"]     # doctest: +SKIP
        81
        """
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
        """All tasks, in an order where every task comes after its dependencies.

        Examples
        --------
        >>> wf = mp.Experiment(SVC(), cv=3).build(X, y, workdir="runs/cv")     # doctest: +SKIP
        >>> [task.id for task in wf.tasks]                                    # doctest: +SKIP
        ['score-o0', 'score-o1', 'score-o2', 'final']
        """
        if self._tasks is None:
            # Straight from the rows (a graph can have 100,000 tasks): one
            # shared tuple per chunk, the command prefix computed once.
            table = tasktable.read_table(self.workdir, self.manifest)
            self._tasks = tasktable.tasks_of(table, self.workdir, self.manifest.get("python"))
        return self._tasks

    def _tasks_by_id(self):
        if self._by_id is None:
            self._by_id = {task.id: task for task in self.tasks}
        return self._by_id

    def task(self, task_id):
        """The :class:`~mempamal.Task` with id ``task_id``.

        Examples
        --------
        >>> wf.task("final").deps                                             # doctest: +SKIP
        ('score-o0', 'score-o1', 'score-o2')
        """
        try:
            return self._tasks_by_id()[task_id]
        except KeyError:
            raise KeyError(f"No task {task_id!r} in {self.workdir}.") from None

    def _definition(self, task_id):
        task = self._tasks_by_id().get(task_id)
        if task is None:
            return None  # a file that is no task's output: not counted
        return task.definition

    def check_outputs(self):
        """``(done, untrusted)``: ids with a trusted output, and ``{id: why not}``.

        An output is trusted when it is complete JSON stamped with its task
        id, this build's id and the task's current definition; the others
        (truncated, copied from another task, left by a run of an earlier
        build) count as not done and are run again.

        Examples
        --------
        >>> done, untrusted = wf.check_outputs()                              # doctest: +SKIP
        >>> untrusted                                                         # doctest: +SKIP
        {'score-o1': 'written by another build'}
        """
        if len(self._scan_cache) > 2 * len(self.tasks):
            self._scan_cache.clear()  # entries of files since rewritten
        return integrity.scan_outputs(self.workdir, self.manifest["build_id"], self._definition, self._scan_cache)

    def done_ids(self):
        """Ids of the tasks whose output exists and is trusted.

        Examples
        --------
        >>> mp.run_task(wf.workdir, "score-o0"); wf.done_ids()                # doctest: +SKIP
        {'score-o0'}
        """
        return self.check_outputs()[0]

    def pending_ids(self):
        """Ids still to run (no trusted output), in dependency order.

        Examples
        --------
        >>> wf.pending_ids()                                                   # doctest: +SKIP
        ['score-o1', 'score-o2', 'final']
        """
        done = self.done_ids()
        return [task.id for task in self.tasks if task.id not in done]

    def failed_ids(self):
        """Ids that failed last time they ran (an error log and no output).

        Examples
        --------
        >>> wf.run(progress=False)                                             # doctest: +SKIP
        >>> wf.failed_ids()                                                   # doctest: +SKIP
        ['score-o2']
        """
        done = self.done_ids()
        logs = Path(self.workdir) / store.LOGS_DIR
        names = {p.name[:-4] for p in logs.glob("*.err")} if logs.exists() else set()
        return sorted(names - done)

    def blocked_ids(self, done=None, failed=None):
        """Ids that cannot run because a task they depend on (directly or not) failed.

        A blocked task is neither done nor failed itself: it runs once the
        failure is fixed and the workdir is run again.

        Examples
        --------
        >>> wf.blocked_ids()[:1]                            # doctest: +SKIP
        ['select-o0']
        """
        done = self.done_ids() if done is None else done
        failed = set(self.failed_ids() if failed is None else failed)
        blocked = set()
        for task in self.tasks:  # dependencies come first: one pass sees every chain
            if task.id not in done and task.id not in failed and any(
                    dep in failed or dep in blocked for dep in task.deps):
                blocked.add(task.id)
        return sorted(blocked)

    def status(self):
        """Counts of tasks in one vocabulary: done, failed, blocked, pending.

        Every task is in exactly one of four states, the same words as
        ``mempamal run``, ``mempamal status`` and the displays use:

        - ``done``: its output exists and is trusted;
        - ``failed``: its last run failed (``logs/<id>.err``, no output);
        - ``blocked``: not run because a task it depends on failed;
        - ``pending``: not run yet (or running now), nothing stops it.

        so ``done + failed + blocked + pending == total``.  ``by_kind``
        gives ``done`` and ``total`` per kind of task; ``untrusted`` maps
        each output file that exists but is not counted as done to the
        reason (corrupt, another task's, another build's); ``running``
        names the process holding the workdir's lock, if any; ``results``
        says what is wrong with ``results.json`` when every task is done
        but it cannot be read (``run`` writes it again), else None.
        ``jobs`` is the scheduler's view of a job submission recorded in
        ``WORKDIR/submissions/`` while tasks are unfinished (``{"backend":
        "slurm", "pending": 3, "running": 2, "finished": 4}``, or with
        ``"error"`` when the scheduler does not answer), else None.

        Examples
        --------
        >>> wf.status()                                     # doctest: +SKIP
        {'total': 81, 'done': 12, 'failed': 0, 'blocked': 0, 'pending': 69, 'untrusted': {}, ...}
        """
        done, untrusted = self.check_outputs()
        by_kind = {}
        for task in self.tasks:
            counts = by_kind.setdefault(task.kind, {"done": 0, "total": 0})
            counts["total"] += 1
            counts["done"] += task.id in done
        n_done = sum(c["done"] for c in by_kind.values())
        failed = self.failed_ids()
        n_blocked = len(self.blocked_ids(done, failed)) if failed else 0
        holder = read_holder(self.workdir)
        results_problem = None
        if n_done == len(self.tasks):
            results_problem = find_results_problem(self.workdir, self.manifest["build_id"])
        return {
            "total": len(self.tasks), "done": n_done, "failed": len(failed), "blocked": n_blocked,
            "pending": len(self.tasks) - n_done - len(failed) - n_blocked,
            "untrusted": untrusted, "by_kind": by_kind,
            "running": None if holder is None else describe_holder(holder),
            "results": results_problem,
            "jobs": recorded_jobs(self.workdir) if n_done < len(self.tasks) else None,
        }


def find_results_problem(workdir, build_id):
    """Why ``results.json`` of ``workdir`` cannot be used (None if it can).

    The output of the ``final`` task, stamped with the build id, holds the
    digest of the ``results.json`` it wrote: a results file that is missing,
    truncated, edited or copied from another workdir does not match it.
    """
    workdir = Path(workdir)
    path = workdir / store.RESULTS
    final = store.output_path(workdir, "final")
    try:
        output = store.read_json(final)
        payload = path.read_bytes()
    except FileNotFoundError:
        return f"{path} is missing"
    except store.WorkdirError as exc:
        return str(exc).rstrip(".")
    if output.get("build") != build_id:
        return f"{final} was written by another build"
    if hashlib.sha256(payload).hexdigest() != output.get("results_sha256"):
        return f"{path} does not match the digest its final task recorded (truncated, edited or replaced)"
    return None
