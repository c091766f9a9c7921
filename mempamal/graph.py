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

from . import doneindex, integrity, store, taskfile, tasktable
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
        self._table = None
        self._tasks = None

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
    def table(self):
        """The :class:`~mempamal.tasktable.TaskTable`: tasks computed on demand, counts by arithmetic.

        What the hot paths use (status, scans, the dependency tracker): a
        graph of a million tasks never builds a million records for them.

        Examples
        --------
        >>> wf.table.counts_by_kind()                                       # doctest: +SKIP
        {'score': 3, 'final': 1}
        """
        if self._table is None:
            table = taskfile.read_table(self.workdir, self.manifest)
            self._table = tasktable.TaskTable(table, self.workdir, self.manifest.get("python"))
        return self._table

    @property
    def tasks(self):
        """All tasks, in an order where every task comes after its dependencies.

        A list of every record, built on first use (and kept); the api's
        own counting goes through :attr:`table`, which does not build them.

        Examples
        --------
        >>> wf = mp.Experiment(SVC(), cv=3).build(X, y, workdir="runs/cv")     # doctest: +SKIP
        >>> [task.id for task in wf.tasks]                                    # doctest: +SKIP
        ['score-o0', 'score-o1', 'score-o2', 'final']
        """
        if self._tasks is None:
            self._tasks = list(self.table)
        return self._tasks

    def task(self, task_id):
        """The :class:`~mempamal.Task` with id ``task_id``.

        Examples
        --------
        >>> wf.task("final").deps                                             # doctest: +SKIP
        ('score-o0', 'score-o1', 'score-o2')
        """
        try:
            return self.table.task(task_id)
        except KeyError:
            raise KeyError(f"No task {task_id!r} in {self.workdir}.") from None

    def scan_outputs(self):
        """The :class:`~mempamal.doneindex.OutputScan` of ``outputs/`` (through the done-index).

        Examples
        --------
        >>> wf.scan_outputs().counts_by_kind()                                # doctest: +SKIP
        {'score': 3}
        """
        return doneindex.scan(self.workdir, self.manifest["build_id"], self.manifest["tasks_digest"], self.table)

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
        scan = self.scan_outputs()
        return scan.done, scan.problems

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
        return [task_id for task_id in self.table.ids() if task_id not in done]

    def failed_ids(self, scan=None):
        """Ids that failed last time they ran (an error log and no output).

        ``scan``: the :meth:`scan_outputs` to judge "no output" by (one scan
        for several questions); a new one by default.

        Examples
        --------
        >>> wf.run(progress=False)                                             # doctest: +SKIP
        >>> wf.failed_ids()                                                   # doctest: +SKIP
        ['score-o2']
        """
        scan = self.scan_outputs() if scan is None else scan
        logs = Path(self.workdir) / store.LOGS_DIR
        names = {p.name[:-4] for p in logs.glob("*.err")} if logs.exists() else set()
        # One shard's ids per question, not the set of every done id.
        return sorted(name for name in names if name not in scan)

    def blocked_ids(self, done=None, failed=None):
        """Ids that cannot run because a task they depend on (directly or not) failed.

        A blocked task is neither done nor failed itself: it runs once the
        failure is fixed and the workdir is run again.  ``done`` is a set of
        ids or a :meth:`scan_outputs` (anything answering ``in``); both
        default to the workdir's state now.

        Examples
        --------
        >>> wf.blocked_ids()[:1]                            # doctest: +SKIP
        ['select-o0']
        """
        done = self.scan_outputs() if done is None else done
        failed = set(self.failed_ids(done if isinstance(done, doneindex.OutputScan) else None)
                     if failed is None else failed)
        # Every task has at most one dependent: the tasks blocked by a failure
        # are the chain of dependents above it, up to a done or failed one
        # (which stops it: a done task blocks nothing, a failed one is its
        # own chain).  A few positions per failure, no record built.
        table, blocked = self.table, set()
        for task_id in failed:
            position = table.position(task_id)
            position = -1 if position is None else table.dependent_of(position)
            while position >= 0 and position not in blocked:
                dependent = table.id_at(position)
                if dependent in done or dependent in failed:
                    break
                blocked.add(position)
                position = table.dependent_of(position)
        return sorted(table.id_at(position) for position in blocked)

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
        # Counts, not records: totals from the table's arithmetic, done per
        # kind from the scan (a million-task graph answers in well under a second).
        scan = self.scan_outputs()
        done_by_kind = scan.counts_by_kind()
        by_kind = {kind: {"done": done_by_kind.get(kind, 0), "total": total}
                   for kind, total in self.table.counts_by_kind().items()}
        n_done, n_total = scan.n_done, len(self.table)
        failed = self.failed_ids(scan)
        n_blocked = len(self.blocked_ids(scan, failed)) if failed else 0
        holder = read_holder(self.workdir)
        results_problem = None
        if n_done == n_total:
            results_problem = find_results_problem(self.workdir, self.manifest["build_id"])
        return {
            "total": n_total, "done": n_done, "failed": len(failed), "blocked": n_blocked,
            "pending": n_total - n_done - len(failed) - n_blocked,
            "untrusted": scan.problems, "by_kind": by_kind,
            "running": None if holder is None else describe_holder(holder),
            "results": results_problem,
            "jobs": recorded_jobs(self.workdir) if n_done < n_total else None,
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
    output, problem = integrity.load_output(final)  # its digest checked: an edited output vouches for nothing
    if problem is not None:
        return problem
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        return f"{path} is missing"
    if output.get("build") != build_id:
        return f"{final} was written by another build"
    if hashlib.sha256(payload).hexdigest() != output.get("results_sha256"):
        return f"{path} does not match the digest its final task recorded (truncated, edited or replaced)"
    return None
