"""One status model: the state of a task, and the counts every view shows.

Every task is in exactly one :class:`TaskState`; a :class:`StatusCounts`
counts them for a whole workdir and per kind of task.  ``Workflow.status()``,
``Run.status()``, ``mempamal status``, the run panel and the HTML summaries
all read this one record, so the same words mean the same thing everywhere:

- ``done``: its output exists and is trusted;
- ``running``: executing now in a run this process drives (or, for a run
  that only watches another process, ready: every dependency done);
- ``failed``: its last run failed (``logs/<id>.err``, no output);
- ``blocked``: not run because a task it depends on failed;
- ``pending``: not run yet, nothing stops it.

so ``done + running + failed + blocked + pending == total``.

Examples
--------
>>> TaskState.DONE == "done", [state.value for state in TaskState]
(True, ['done', 'running', 'pending', 'failed', 'blocked'])
>>> counts = StatusCounts(total=5, done=1, running=1, pending=3)
>>> counts.done, counts["pending"]
(1, 3)
>>> counts
StatusCounts(total=5, done=1, running=1, pending=3, failed=0, blocked=0)
"""

import dataclasses
import enum
from collections.abc import Mapping

from ..store.tasktable import MAIN


class TaskState(str, enum.Enum):
    """The state of one task; a ``str``, so ``TaskState.DONE == "done"``.

    Examples
    --------
    >>> TaskState("failed") is TaskState.FAILED, str(TaskState.BLOCKED)
    (True, 'blocked')
    """

    DONE = "done"
    RUNNING = "running"
    PENDING = "pending"
    FAILED = "failed"
    BLOCKED = "blocked"

    def __str__(self):
        return self.value


#: The states in the order every view lists them.
STATES = tuple(state.value for state in TaskState)


class _RecordMapping(Mapping):
    """A frozen dataclass also read as a mapping (``counts["done"]``, ``dict(counts)``, JSON)."""

    def __getitem__(self, key):
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self._keys())

    def __len__(self):
        return len(self._keys())

    @classmethod
    def _keys(cls):
        return tuple(field.name for field in dataclasses.fields(cls))


@dataclasses.dataclass(frozen=True, eq=False)  # compared as mappings
class _StateCounts(_RecordMapping):
    """The total and the count of each :class:`TaskState` (declared once for both records)."""

    total: int = 0
    done: int = 0
    running: int = 0
    pending: int = 0
    failed: int = 0
    blocked: int = 0


@dataclasses.dataclass(frozen=True, eq=False)  # compared as mappings
class KindCounts(_StateCounts):
    """The counts of one kind of task (``fit``, ``select``, ...); ``*_main`` count the unpermuted ones.

    Examples
    --------
    >>> KindCounts(total=4, done=2, pending=2)["done"]
    2
    """

    done_main: int = 0
    total_main: int = 0


@dataclasses.dataclass(frozen=True, eq=False)  # compared as mappings
class StatusCounts(_StateCounts):
    """Task counts of a workdir in the five :class:`TaskState` words, per kind too.

    Also read as a mapping (``status["done"]``, ``dict(status)``) and dumped
    as JSON by ``mempamal status --json`` (:meth:`to_dict`).

    Attributes
    ----------
    total, done, running, pending, failed, blocked : int
        Each task counted once: ``done + running + pending + failed + blocked == total``.
    by_kind : dict
        ``{kind: KindCounts}`` in the order kinds appear in the graph.
    untrusted : dict
        Output files that exist but are not counted as done -> the reason.
    runner : str or None
        The process holding the workdir's lock (who runs it), if any.
    results : str or None
        What is wrong with ``results.json`` when every task is done but it
        cannot be read (``run`` writes it again).
    jobs : dict or None
        The scheduler's view of a recorded job submission while tasks are
        unfinished (``{"backend": "slurm", "pending": 3, ...}``).
    kept : int
        Tasks whose output the build kept from a previous build
        (``build(..., reuse=True)``); 0 otherwise.
    reused : dict or None
        What that build kept and why not more: ``{"from_build", "kept_tasks",
        "kept_points"`` (inner fits kept, also in fit tasks that run only
        their other points), ``"changed"`` (what differs from the previous
        build)``}``; None for a build that kept nothing of another.
    mixed_versions : dict
        Outputs that ran under other library versions than the build's
        (``allow_version_mismatch=True``): ``{"scikit-learn": {"build":
        "1.9.1", "outputs": {"1.6.1": 3}}}``; empty when every output ran
        with the build's.

    Examples
    --------
    >>> status = StatusCounts(total=3, done=3)
    >>> status.to_dict()["done"], status.finished
    (3, True)
    """

    by_kind: dict = dataclasses.field(default_factory=dict, repr=False)
    untrusted: dict = dataclasses.field(default_factory=dict, repr=False)
    runner: object = dataclasses.field(default=None, repr=False)
    results: object = dataclasses.field(default=None, repr=False)
    jobs: object = dataclasses.field(default=None, repr=False)
    kept: int = dataclasses.field(default=0, repr=False)
    reused: object = dataclasses.field(default=None, repr=False)
    mixed_versions: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def finished(self):
        """True when every task is done.

        Examples
        --------
        >>> StatusCounts(total=2, done=1, pending=1).finished
        False
        """
        return self.done == self.total

    def with_details(self, **details):
        """A copy with ``untrusted``, ``runner``, ``results``, ``jobs``, ``kept``, ``reused`` or ``mixed_versions`` set.

        Examples
        --------
        >>> StatusCounts(total=1, pending=1).with_details(runner="pid 12 on host-a").runner
        'pid 12 on host-a'
        """
        return dataclasses.replace(self, **details)

    def to_dict(self):
        """Plain values (for ``--json``): the kinds' counts as dicts too.

        Examples
        --------
        >>> StatusCounts(total=1, done=1, by_kind={"final": KindCounts(total=1, done=1)}).to_dict()["by_kind"]
        {'final': {'total': 1, 'done': 1, 'running': 0, 'pending': 0, 'failed': 0, 'blocked': 0, 'done_main': 0, 'total_main': 0}}
        """
        plain = {key: getattr(self, key) for key in self._keys()}
        plain["by_kind"] = {kind: dict(counts) for kind, counts in self.by_kind.items()}
        return plain

    def line(self):
        """``'6/16 tasks done, 6 failed, 4 blocked by a failure, 0 pending'``: the words of every command.

        Running tasks are named only when there are some.

        Examples
        --------
        >>> StatusCounts(total=16, done=6, failed=6, blocked=4).line()
        '6/16 tasks done, 6 failed, 4 blocked by a failure, 0 pending'
        >>> StatusCounts(total=5, done=1, running=2, pending=2).line()
        '1/5 tasks done, 2 running, 0 failed, 0 blocked by a failure, 2 pending'
        """
        running = f", {self.running} running" if self.running else ""
        return (f"{self.done}/{self.total} tasks done{running}, {self.failed} failed, "
                f"{self.blocked} blocked by a failure, {self.pending} pending")


def mixed_versions(built, seen):
    """``{name: {"build": version, "outputs": {version: count}}}`` of the outputs that differ from the build.

    ``built`` is the build's ``{name: version}``; ``seen`` what
    :meth:`mempamal.store.doneindex.OutputScan.versions_seen` counted.

    Examples
    --------
    >>> mixed_versions({"numpy": "2.0", "scipy": "1.1"}, {'{"numpy": "1.24", "scipy": "1.1"}': 3,
    ...                                                  '{"numpy": "2.0", "scipy": "1.1"}': 5})
    {'numpy': {'build': '2.0', 'outputs': {'1.24': 3}}}
    """
    import json

    mixed = {}
    for key, count in seen.items():
        versions = json.loads(key)
        for name, built_version in built.items():
            here = versions.get(name, built_version)
            if here != built_version:
                entry = mixed.setdefault(name, {"build": built_version, "outputs": {}})
                entry["outputs"][here] = entry["outputs"].get(here, 0) + count
    return mixed


def describe_mixed_versions(mixed):
    """One line per package: ``'3 outputs ran with scikit-learn 1.6.1 (built with 1.9.1)'``.

    Examples
    --------
    >>> describe_mixed_versions({"numpy": {"build": "2.0", "outputs": {"1.24": 3}}})
    ['3 outputs ran with numpy 1.24 (built with 2.0)']
    """
    return [f"{count} output{'s' if count != 1 else ''} ran with {name} {version} (built with {entry['build']})"
            for name, entry in mixed.items() for version, count in entry["outputs"].items()]


def task_counts(graph, executing=None, watching=False, scan=None):
    """:class:`StatusCounts` of ``graph`` (a :class:`~mempamal.graph.state.TaskGraph`) from its files.

    ``executing`` are the ids of the tasks executing now in a run this
    process drives (None when it drives none); with ``watching=True`` and no
    ``executing``, the tasks whose dependencies are all done count as
    running (a run watching another process cannot see its workers).
    ``untrusted`` is filled in; ``runner``, ``results`` and ``jobs`` are left
    to the caller (:meth:`~mempamal.graph.state.TaskGraph.status`).  ``scan``: the
    graph's output scan when the caller has one already.

    Examples
    --------
    >>> task_counts(wf).by_kind["final"].total
    1
    """
    # Counts, not records (a million-task graph answers in well under a
    # second): one scan; the fits done per block from the shards' id strings;
    # positions only for the few tasks that are not fits (a block's select,
    # score or select-all, and final) and for the failed, blocked and
    # executing ones.  tests/test_task_counts.py holds it to a count over
    # every record.
    table, scan = graph.table, scan if scan is not None else graph.scan_outputs()
    failed_ids = graph.failed_ids(scan)
    failed = {p for p in map(table.position, failed_ids) if p is not None}
    blocked = set(map(table.position, graph.blocked_ids(scan, failed_ids))) if failed_ids else set()
    running = set() if executing is None else {p for p in map(table.position, executing) if p is not None}
    running -= failed | blocked
    ready = watching and executing is None
    tally = _Tally(table, scan, failed, blocked, running, executing is not None, ready)
    by_kind = tally.count()
    totals = {state: sum(counts[state] for counts in by_kind.values()) for state in STATES}
    return StatusCounts(total=len(table), **totals, by_kind=by_kind, untrusted=scan.problems)


class _Tally:
    """Counts per kind, block by block (fits from the scan's strings, the others one by one)."""

    def __init__(self, table, scan, failed, blocked, running, knows_running, ready):
        self.table, self.scan = table, scan
        self.failed, self.blocked, self.running = failed, blocked, running
        self.knows_running, self.ready = knows_running, ready
        self.counts = {kind: dict.fromkeys(KindCounts._keys(), 0) for kind in table.counts_by_kind()}
        for kind, total in table.counts_by_kind().items():
            self.counts[kind]["total"] = total

    def add(self, kind, main, n_total, n_done, n_failed, n_blocked, n_running):
        counts = self.counts[kind]
        counts["done"] += n_done
        counts["failed"] += n_failed
        counts["blocked"] += n_blocked
        counts["running"] += n_running
        if main:
            counts["total_main"] += n_total
            counts["done_main"] += n_done

    def one(self, kind, main, position, task_id, deps_done):
        """Count one task that is not a fit; True when it is done."""
        if task_id in self.scan:
            self.add(kind, main, 1, 1, 0, 0, 0)
            return True
        idle = position not in self.failed and position not in self.blocked
        running = idle and (position in self.running if self.knows_running else self.ready and deps_done)
        self.add(kind, main, 1, 0, position in self.failed, position in self.blocked, running)
        return False

    def per_block(self, positions, blocks):
        """``{block index: how many of positions are fits of that block}``."""
        found = {}
        for position in positions:
            index = self.table.block_at(position)
            if index is not None and position < blocks[index].gather:
                found[index] = found.get(index, 0) + 1
        return found

    def count(self):
        table = self.table
        blocks, fits_done = table.blocks(), self.scan.fits_by_block(table)
        # Fits have no dependency: never blocked.
        failed_fits, running_fits = self.per_block(self.failed, blocks), self.per_block(self.running, blocks)
        all_gathered = True
        for index, block in enumerate(blocks):
            main = block.split_set == MAIN
            n_fits = block.gather - block.first
            if n_fits:
                n_done, n_failed = fits_done[index], failed_fits.get(index, 0)
                n_running = running_fits.get(index, 0) if self.knows_running else (
                    n_fits - n_done - n_failed if self.ready else 0)
                self.add(block.fit_kind, main, n_fits, n_done, n_failed, 0, n_running)
            all_gathered &= self.one(block.gather_kind, main, block.gather, block.gather_id,
                                     fits_done[index] == n_fits)
        self.one("final", True, len(table) - 1, "final", all_gathered)
        by_kind = {}
        for kind, counts in self.counts.items():
            counts["pending"] = (counts["total"] - counts["done"] - counts["failed"] - counts["blocked"]
                                 - counts["running"])
            by_kind[kind] = KindCounts(**counts)
        return by_kind
