"""TaskGraph: the tasks of a workdir and their state, read from the files.

The graph layer: what the api (``Workflow``, ``Results``, ``Run``) and the
displays ask of a workdir -- its tasks, which are done (trusted outputs),
failed, blocked by a failure or pending, whether ``results.json`` can be used -- without running
anything.  It never imports the api.

Examples
--------
>>> graph = TaskGraph.open("runs/iris")
>>> graph.status()["done"], len(graph.tasks)
(29, 29)
"""

import hashlib
import weakref
from pathlib import Path

from ..store import doneindex, integrity, taskfile, tasktable
from .. import store
from ..store.lock import describe_holder, read_holder
from ..store.records import FinalRecord, TaskOutput
from .status import mixed_versions, task_counts
from .submissions import recorded_jobs


class TaskGraph:
    """The task graph stored in a workdir, and the state of each task.

    :class:`mempamal.Workflow` adds running, exporting and plotting to it.

    Examples
    --------
    >>> graph = TaskGraph.open(exp.build(X, y, workdir="runs/new").workdir)
    >>> graph.pending_ids()[:2]
    ['fit-o0-i0-c0', 'fit-o0-i0-c1']
    """

    def __init__(self, workdir):
        self.workdir = Path(workdir).absolute()
        self.manifest = store.read_json(self.workdir / store.MANIFEST)
        self._table = None
        self._tasks = None
        # The observers of the runs this object started (Workflow.submit):
        # what they execute now is ``running`` in status(); weak, so an
        # ended run's observer goes with it.
        self._observers = weakref.WeakSet()

    @classmethod
    def open(cls, workdir):
        """Reopen a built workdir (e.g. after a crash) to inspect, run or export it.

        Examples
        --------
        >>> mp.Workflow.open("runs/iris").status()["total"]
        29
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
        """The :class:`~mempamal.store.tasktable.TaskTable`: tasks computed on demand, counts by arithmetic.

        What the hot paths use (status, scans, the dependency tracker): a
        graph of a million tasks never builds a million records for them.

        Examples
        --------
        >>> wf.table.counts_by_kind()
        {'fit': 18, 'select': 3, 'fit-all': 6, 'select-all': 1, 'final': 1}
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
        >>> wf = mp.Experiment(estimator, cv=3).build(X, y, workdir="runs/cv")
        >>> [task.id for task in wf.tasks]
        ['score-o0', 'score-o1', 'score-o2', 'select-all', 'final']
        """
        if self._tasks is None:
            self._tasks = list(self.table)
        return self._tasks

    def task(self, task_id):
        """The :class:`~mempamal.Task` with id ``task_id``.

        Examples
        --------
        >>> wf.task("final").deps
        ('select-o0', 'select-o1', 'select-o2', 'select-all')
        """
        try:
            return self.table.task(task_id)
        except KeyError:
            raise KeyError(f"No task {task_id!r} in {self.workdir}.") from None

    def scan_outputs(self):
        """The :class:`~mempamal.store.doneindex.OutputScan` of ``outputs/`` (through the done-index).

        Examples
        --------
        >>> wf.scan_outputs().counts_by_kind()
        {'fit': 18, 'fit-all': 6, 'final': 1, 'select': 3, 'select-all': 1}
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
        >>> done, untrusted = wf.check_outputs()
        >>> untrusted
        {}
        >>> import os, shutil
        >>> from mempamal.store import output_path
        >>> copy = output_path(wf.workdir, "select-o1").with_suffix(".copy")
        >>> _ = shutil.copy(output_path(wf.workdir, "select-o0"), copy)
        >>> os.replace(copy, output_path(wf.workdir, "select-o1"))   # replaced by rename, as a task writes
        >>> done, untrusted = wf.check_outputs()
        >>> untrusted
        {'select-o1': "...select-o1.json is the output of task 'select-o0', not of 'select-o1' (copied or renamed)"}
        """
        scan = self.scan_outputs()
        return scan.done, scan.problems

    def done_ids(self):
        """Ids of the tasks whose output exists and is trusted.

        Examples
        --------
        >>> wf = mp.Experiment(estimator, cv=3).build(X, y, workdir="runs/cv")
        >>> mp.run_task(wf.workdir, "score-o0"); wf.done_ids()
        'done'
        {'score-o0'}
        """
        return self.check_outputs()[0]

    def pending_ids(self):
        """Ids still to run (no trusted output), in dependency order.

        Examples
        --------
        >>> wf = mp.Experiment(estimator, cv=3).build(X, y, workdir="runs/cv")
        >>> wf.pending_ids()
        ['score-o0', 'score-o1', 'score-o2', 'select-all', 'final']
        """
        done = self.done_ids()
        return [task_id for task_id in self.table.ids() if task_id not in done]

    def failed_ids(self, scan=None):
        """Ids that failed last time they ran (an error log and no output).

        ``scan``: the :meth:`scan_outputs` to judge "no output" by (one scan
        for several questions); a new one by default.

        Examples
        --------
        >>> res = wf.run(progress=False)
        >>> wf.failed_ids()
        []
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
        >>> wf.blocked_ids()[:1]
        []
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

    def _executing(self, done):
        """What the runs started from this object execute now (None: none is going)."""
        return _union_of_executing(self._observers, done)

    def status(self, *, scheduler=True):
        """Task counts in the five words of :class:`~mempamal.graph.status.TaskState`, per kind too.

        Returns a :class:`~mempamal.graph.status.StatusCounts` (also read as
        a mapping, ``status["done"]``): every task in exactly one state --
        ``done``, ``running`` (executing now in a run this process drives),
        ``failed``, ``blocked`` (a task it depends on failed) or ``pending``
        -- so they add up to ``total``; the same record ``Run.status()``,
        ``mempamal status`` and the displays show.  ``by_kind`` gives the
        counts per kind of task; ``untrusted`` maps each output file that
        exists but is not counted as done to the reason (corrupt, another
        task's, another build's); ``runner`` names the process holding the
        workdir's lock, if any; ``results`` says what is wrong with
        ``results.json`` when every task is done but it cannot be read
        (``run`` writes it again), else None.  ``jobs`` is the scheduler's
        view of a job submission recorded in ``WORKDIR/submissions/`` while
        tasks are unfinished (``{"backend": "slurm", "pending": 3,
        "running": 2, "finished": 4}``, or with ``"error"`` when the
        scheduler does not answer), else None.  ``mixed_versions`` names the
        outputs that ran under other library versions than the build's
        (allowed with ``allow_version_mismatch=True``), per package.

        Reads the workdir once; ``scheduler=False`` leaves ``jobs`` out (no
        scheduler is asked: what reprs and HTML summaries use).

        Examples
        --------
        >>> status = wf.status()
        >>> status.total == status.done + status.running + status.pending + status.failed + status.blocked
        True
        >>> sorted(status.by_kind)
        ['final', 'fit', 'fit-all', 'select', 'select-all']
        """
        scan = self.scan_outputs()
        counts = task_counts(self, executing=self._executing(scan), scan=scan)
        holder = read_holder(self.workdir)
        results_problem = None
        if counts.finished:
            results_problem = find_results_problem(self.workdir, self.manifest["build_id"])
        return counts.with_details(
            runner=None if holder is None else describe_holder(holder),
            results=results_problem,
            jobs=recorded_jobs(self.workdir) if scheduler and not counts.finished else None,
            # What the build kept of a previous one (build(..., reuse=True)).
            kept=(self.manifest.get("reuse") or {}).get("kept_tasks", 0), reused=self.manifest.get("reuse"),
            mixed_versions=mixed_versions(self.manifest.get("environment", {}).get("versions", {}),
                                          scan.versions_seen()),
        )


def _union_of_executing(observers, done):
    """Ids executing now in any of ``observers`` (None when there is none)."""
    found = None
    for observer in list(observers):
        found = (found or set()) | set(observer.executing(done))
    return found


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
        output = TaskOutput.from_json(output)
    except store.WorkdirError as exc:  # another record version
        return str(exc)
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        return f"{path} is missing"
    if output.build != build_id:
        return f"{final} was written by another build"
    if not isinstance(output.record, FinalRecord) or hashlib.sha256(payload).hexdigest() != output.record.results_sha256:
        return f"{path} does not match the digest its final task recorded (truncated, edited or replaced)"
    return None
