"""The task table: what ``tasks.json`` holds and the :class:`~mempamal.store.tasktable.Task` records it stands for.

``tasks.json`` is compact: ``{"format": 2, "nested": bool, "chunks": [...],
"split_sets": {...}}`` -- the generators of the graph, not its rows.  The
graph is fully determined by them (the fold counts of each split set, the
chunks of grid points, nested or not), so a table of 1,000,000 tasks is a few
hundred kilobytes and :class:`TaskTable` computes any task, its position,
the counts per kind and the ids in order by arithmetic, creating
:class:`Task` records only for the tasks asked for.  That layout is known
here and nowhere else: the build writes :func:`make_table` and every reader
gets a :class:`TaskTable`.  The file itself (reading it, the digest the
manifest keeps, which tasks a rebuild changed) is :mod:`mempamal.store.taskfile`;
the tests hold :class:`TaskTable` to a row-by-row spelling of the same graph
(``tests/reference_rows.py``, the layout of the first ``tasks.json``
format).

This module sits in the store layer (it describes a workdir file), below the
engine that reads task records in every worker.

The graph (docs/architecture.md)::

    fit-o<k>-i<j>-c<c>  ->  select-o<k>  -\\
                            score-o<k>   ---> final
    fit-all-i<j>-c<c>   ->  select-all   --/   (final_fit: the search on all data)
    perm-<m>-...        (same shape)     -/

Ids are stable: the same experiment, data and chunking give the same ids, so
a rebuilt workdir resumes where it stopped.
"""

import bisect
import hashlib
import json
import sys
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import WorkdirError
from .taskids import (  # noqa: F401
    MAIN, TASK_ID as _ID, fit_id, fit_id_head, gather_id, id_prefix, permutation_index, permutation_name,
)
from .workdir import TASKS

@dataclass(frozen=True)
class Task:
    """One unit of work: ``python -m mempamal task WORKDIR <id>``.

    ``split_set`` is ``"main"`` or ``"perm-<m>"``; ``outer``/``inner`` are the
    fold indices (None where they do not apply); ``points`` are the indices
    of the grid points a ``fit`` task evaluates.

    Examples
    --------
    >>> task = Task("fit-o0-i1-c0", "fit", (), ("python", "-m", "mempamal", "task", "wd", "fit-o0-i1-c0"),
    ...             outer=0, inner=1, points=(0, 1))
    >>> task.kind, task.outer, task.inner, task.permutation
    ('fit', 0, 1, None)
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
        """Index of the permutation this task belongs to, or None.

        Examples
        --------
        >>> Task("fit-p3-o0-i0-c0", "fit", (), (), split_set="perm-3", outer=0, inner=0).permutation
        3
        >>> Task("score-o0", "score", (), (), outer=0).permutation is None
        True
        """
        return permutation_index(self.split_set)

    @property
    def definition(self):
        """Digest of what this task computes, stamped on its output.

        A rebuild that re-chunks the grid keeps the build id but changes
        some definitions; their old outputs must not be trusted.

        Examples
        --------
        >>> a = Task("fit-o0-i0-c0", "fit", (), (), outer=0, inner=0, points=(0, 1))
        >>> b = Task("fit-o0-i0-c0", "fit", (), (), outer=0, inner=0, points=(0, 2))
        >>> a.definition == b.definition
        False
        """
        fields = [self.id, self.kind, list(self.deps), self.split_set, self.outer, self.inner,
                  None if self.points is None else list(self.points)]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]


FORMAT = 2
"""Version of the ``tasks.json`` layout (1 was one JSON list of rows)."""


def make_table(split_set_info, chunks, nested):
    """The whole ``tasks.json`` content: the generators of the graph.

    Examples
    --------
    >>> table = make_table({"main": {"n_outer": 1, "n_inner": [0]}}, [], nested=False)
    >>> sorted(table)
    ['chunks', 'format', 'nested', 'split_sets']
    """
    return {"format": FORMAT, "nested": bool(nested), "chunks": [list(chunk) for chunk in chunks],
            "split_sets": split_set_info}


def task_command(workdir, task_id, python=None):
    """The command line that runs one task anywhere the workdir is mounted.

    Examples
    --------
    >>> task_command("/runs/iris", "final", python="python3")
    ('python3', '-m', 'mempamal', 'task', '/runs/iris', 'final')
    """
    return (python or sys.executable, "-m", "mempamal", "task", str(workdir), task_id)


Block = namedtuple("Block", "split_set outer first gather fit_kind gather_kind gather_id")
Block.__doc__ = """One block of a :class:`TaskTable`: fits at positions ``first`` to ``gather - 1``, then the task gathering them.

``outer`` is None for the final search; ``fit_kind`` is ``"fit"`` or
``"fit-all"``, ``gather_kind`` ``"select"``, ``"score"`` or ``"select-all"``.

Examples
--------
>>> Block("main", 0, 0, 2, "fit", "select", "select-o0").gather
2
"""

class TaskTable(Sequence):
    """The tasks of a compact table, computed on demand (a read-only sequence of :class:`Task`).

    The graph is a list of *blocks*, one per outer fold of each split set
    and one for the final search: ``n_inner * n_chunks`` fit tasks (inner
    fold major, chunk minor) then the task that gathers them (``select-o<k>``,
    ``score-o<k>`` or ``select-all``); ``final`` comes last.  Positions, ids
    and counts follow by arithmetic; ``table[i]`` builds one record.

    Examples
    --------
    >>> table = TaskTable(make_table({"main": {"n_outer": 2, "n_inner": [2, 1]}}, [[0], [1]], nested=True))
    >>> len(table), table.counts_by_kind()
    (9, {'fit': 6, 'select': 2, 'final': 1})
    >>> table.position("select-o1"), table[7].id, table.task("fit-o0-i1-c0").points
    (7, 'select-o1', (0,))
    >>> table.position("fit-o1-i1-c0") is None   # outer fold 1 has one inner fold
    True
    """

    def __init__(self, table, workdir="", python=None):
        if table.get("format") != FORMAT:
            raise WorkdirError(
                f"{Path(workdir) / TASKS} has the task table format {table.get('format', 1)!r} of another "
                f"version of mempamal (this one reads format {FORMAT}); build the workdir again."
            )
        self.nested = bool(table["nested"])
        self.chunks = [tuple(chunk) for chunk in table["chunks"]]
        self.split_sets = table["split_sets"]
        self._prefix = task_command(workdir, "", python)[:-1]
        n_chunks = len(self.chunks) if self.nested else 0
        # (split set, id prefix, outer or None for the final search, first position, n_inner)
        self._blocks, self._block_of, position = [], {}, 0
        for split_set, info in self.split_sets.items():
            prefix = id_prefix(split_set)
            folds = [(outer, info["n_inner"][outer] if self.nested else 0) for outer in range(info["n_outer"])]
            if "n_inner_all" in info:
                folds.append((None, info["n_inner_all"] if self.nested else 0))
            for outer, n_inner in folds:
                # The final search's fit-all ids carry no split set prefix (as in format 1).
                self._block_of[("" if outer is None else prefix, outer)] = len(self._blocks)
                self._blocks.append((split_set, prefix, outer, position, n_inner))
                position += n_inner * n_chunks + 1
        self._n_chunks = n_chunks
        self._starts = [block[3] for block in self._blocks]
        self._final = position

    def __len__(self):
        return self._final + 1

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._task_at(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"task index {index} out of range (the table has {len(self)} tasks)")
        return self._task_at(index)

    def __iter__(self):
        for position in range(len(self)):
            yield self._task_at(position)

    # ------------------------------------------------------------ layout
    def _locate(self, position):
        """``(block, offset in block)`` of a position before ``final``."""
        index = bisect.bisect_right(self._starts, position) - 1
        block = self._blocks[index]
        return block, position - block[3]

    @staticmethod
    def _gather_kind(block, nested):
        return "select-all" if block[2] is None else "select" if nested else "score"

    def _gather_id(self, block):
        _, prefix, outer, _, _ = block
        return gather_id(prefix, self._gather_kind(block, self.nested), outer)

    @staticmethod
    def _fit_id(block, inner, chunk):
        _, prefix, outer, _, _ = block
        return fit_id(prefix, outer, inner, chunk)

    def _block_ids(self, block):
        n_inner, n_chunks = block[4], self._n_chunks
        ids = [self._fit_id(block, inner, chunk) for inner in range(n_inner) for chunk in range(n_chunks)]
        ids.append(self._gather_id(block))
        return ids

    def id_at(self, position):
        """Id of the task at ``position`` (graph order), without building its record.

        Examples
        --------
        >>> TaskTable(make_table({"main": {"n_outer": 2, "n_inner": [0, 0]}}, [], nested=False)).id_at(1)
        'score-o1'
        """
        if position == self._final:
            return "final"
        block, offset = self._locate(position)
        if offset == block[4] * self._n_chunks:
            return self._gather_id(block)
        inner, chunk = divmod(offset, self._n_chunks)
        return self._fit_id(block, inner, chunk)

    def ids(self):
        """All task ids in graph order (strings only, no records).

        Examples
        --------
        >>> list(TaskTable(make_table({"main": {"n_outer": 1, "n_inner": [0]}}, [], nested=False)).ids())
        ['score-o0', 'final']
        """
        for block in self._blocks:
            yield from self._block_ids(block)
        yield "final"

    def _task_at(self, position):
        if position == self._final:
            deps = tuple(self._gather_id(block) for block in self._blocks)
            return Task("final", "final", deps, self._prefix + ("final",), MAIN)
        block, offset = self._locate(position)
        split_set, _, outer, _, n_inner = block
        if offset == n_inner * self._n_chunks:
            task_id = self._gather_id(block)
            deps = tuple(self._block_ids(block)[:-1])
            return Task(task_id, self._gather_kind(block, self.nested), deps, self._prefix + (task_id,),
                        split_set, outer)
        inner, chunk = divmod(offset, self._n_chunks)
        task_id = self._fit_id(block, inner, chunk)
        return Task(task_id, "fit" if outer is not None else "fit-all", (), self._prefix + (task_id,),
                    split_set, outer, inner, self.chunks[chunk])

    def position(self, task_id):
        """Position of ``task_id`` in graph order, or None when no task has that id.

        Examples
        --------
        >>> table = TaskTable(make_table({"main": {"n_outer": 2, "n_inner": [0, 0]}}, [], nested=False))
        >>> table.position("score-o1"), table.position("score-o01"), table.position("select-o1")
        (1, None, None)
        """
        if task_id == "final":
            return self._final
        if task_id == "select-all":
            index = self._block_of.get(("", None))
            return None if index is None else self._blocks[index][3] + self._blocks[index][4] * self._n_chunks
        match = _ID.fullmatch(task_id)
        if match is None:
            return None
        prefix, _, outer, inner, chunk, all_inner, all_chunk = match.groups()
        if all_inner is not None:
            key, inner, chunk = ("", None), all_inner, all_chunk
        else:
            key = (prefix or "", int(outer))
        index = self._block_of.get(key)
        if index is None:
            return None
        block = self._blocks[index]
        if inner is None:
            position = block[3] + block[4] * self._n_chunks
        else:
            inner, chunk = int(inner), int(chunk)
            if inner >= block[4] or chunk >= self._n_chunks:
                return None
            position = block[3] + inner * self._n_chunks + chunk
        # Only the canonical spelling is a task id ("fit-o01-..." is not; a
        # score id in a nested table is not).
        return position if self.id_at(position) == task_id else None

    def task(self, task_id):
        """The :class:`Task` with id ``task_id``; KeyError if there is none.

        Examples
        --------
        >>> TaskTable(make_table({"main": {"n_outer": 1, "n_inner": [0]}}, [], nested=False)).task("final").deps
        ('score-o0',)
        """
        position = self.position(task_id)
        if position is None:
            raise KeyError(task_id)
        return self._task_at(position)

    def kind_of(self, task_id):
        """Kind of task ``task_id`` (None if no task has that id), without building its record.

        Examples
        --------
        >>> TaskTable(make_table({"main": {"n_outer": 1, "n_inner": [0]}}, [], nested=False)).kind_of("score-o0")
        'score'
        """
        position = self.position(task_id)
        if position is None:
            return None
        if position == self._final:
            return "final"
        block, offset = self._locate(position)
        if offset == block[4] * self._n_chunks:
            return self._gather_kind(block, self.nested)
        return "fit" if block[2] is not None else "fit-all"

    def counts_by_kind(self):
        """``{kind: number of tasks}`` in the order kinds first appear in the graph.

        Examples
        --------
        >>> TaskTable(make_table({"main": {"n_outer": 3, "n_inner": [0] * 3}}, [], nested=False)).counts_by_kind()
        {'score': 3, 'final': 1}
        """
        counts = {}
        for block in self._blocks:
            n_fits = block[4] * self._n_chunks
            if n_fits:
                kind = "fit" if block[2] is not None else "fit-all"
                counts[kind] = counts.get(kind, 0) + n_fits
            kind = self._gather_kind(block, self.nested)
            counts[kind] = counts.get(kind, 0) + 1
        counts["final"] = 1
        return counts

    def dependent_positions(self):
        """``[position of the one task that depends on it, or -1]`` for each position.

        Every task of the graph has at most one dependent (a fit its
        select, a select or score ``final``): what the dependency tracker
        needs, as integers.

        Examples
        --------
        >>> TaskTable(make_table({"main": {"n_outer": 1, "n_inner": [2]}}, [[0]], nested=True)).dependent_positions()
        [2, 2, 3, -1]
        """
        dependents = []
        for block in self._blocks:
            gather = block[3] + block[4] * self._n_chunks
            dependents.extend([gather] * (gather - block[3]))
            dependents.append(self._final)
        dependents.append(-1)
        return dependents

    def dependent_of(self, position):
        """Position of the one task that depends on the task at ``position`` (-1 for ``final``).

        The arithmetic behind :meth:`dependent_positions`, for one position.

        Examples
        --------
        >>> table = TaskTable(make_table({"main": {"n_outer": 1, "n_inner": [2]}}, [[0]], nested=True))
        >>> [table.dependent_of(position) for position in range(len(table))]
        [2, 2, 3, -1]
        """
        if position == self._final:
            return -1
        block, offset = self._locate(position)
        n_fits = block[4] * self._n_chunks
        return self._final if offset == n_fits else block[3] + n_fits

    def blocks(self):
        """The :class:`Block` s of the graph, in order (``final`` follows the last one).

        Every position before ``final`` is in exactly one block: a fit
        (``first <= position < gather``) or the block's gathering task.

        Examples
        --------
        >>> table = TaskTable(make_table({"main": {"n_outer": 2, "n_inner": [2, 1]}}, [[0]], nested=True))
        >>> [(block.first, block.gather, block.gather_id) for block in table.blocks()]
        [(0, 2, 'select-o0'), (3, 4, 'select-o1')]
        """
        return [Block(block[0], block[2], block[3], block[3] + block[4] * self._n_chunks,
                      "fit" if block[2] is not None else "fit-all", self._gather_kind(block, self.nested),
                      self._gather_id(block)) for block in self._blocks]

    def block_at(self, position):
        """Index in :meth:`blocks` of the block holding ``position`` (None for ``final``).

        Examples
        --------
        >>> table = TaskTable(make_table({"main": {"n_outer": 2, "n_inner": [2, 1]}}, [[0]], nested=True))
        >>> [table.block_at(position) for position in range(len(table))]
        [0, 0, 0, 1, 1, None]
        """
        if not 0 <= position < self._final:
            return None
        return bisect.bisect_right(self._starts, position) - 1

    def _fit_prefix(self, block):
        """What every fit id of ``block`` starts with, and no other id of the table does."""
        _, prefix, outer, _, _ = block
        return fit_id_head(prefix, outer)

    def count_fits_by_block(self, texts):
        """Number of fit tasks per block (indices of :meth:`blocks`) among the ids in ``texts``.

        Each text is ``"\\n"``-joined distinct ids of this table, as the
        done-index keeps the done ids of one shard of ``outputs/``.  A text
        whose ids are all fits of one block (every fit shard) is counted by
        two ``str`` operations (C speed, no id parsed but the first); any
        other text id by id.  A million done ids are counted in
        milliseconds, which is what keeps a status of a large graph fast.

        Examples
        --------
        >>> table = TaskTable(make_table({"main": {"n_outer": 2, "n_inner": [2, 2]}}, [[0], [1]], nested=True))
        >>> table.count_fits_by_block(["fit-o0-i0-c0\\nfit-o0-i1-c1", "select-o0\\nfit-o1-i1-c0", ""])
        [2, 1]
        """
        counts = [0] * len(self._blocks)
        for text in texts:
            if not text:
                continue
            end = text.find("\n")
            index = self._fit_block(self.position(text if end < 0 else text[:end]))
            if index is not None:
                # Every fit id of a block starts with its prefix and no other
                # id does: when every line does, all are fits of that block.
                prefix = self._fit_prefix(self._blocks[index])
                n_fits = text.startswith(prefix) + text.count("\n" + prefix)
                if n_fits == text.count("\n") + 1:
                    counts[index] += n_fits
                    continue
            for task_id in text.split("\n"):  # a text of several blocks: id by id
                index = self._fit_block(self.position(task_id))
                if index is not None:
                    counts[index] += 1
        return counts

    def _fit_block(self, position):
        """Index of the block of which the task at ``position`` is a fit; None for no position or no fit."""
        index = None if position is None else self.block_at(position)
        if index is None or position >= self._blocks[index][3] + self._blocks[index][4] * self._n_chunks:
            return None
        return index

    def fold_task_ids(self, split_set=MAIN):
        """``[(outer fold, id of its select or score task)]`` of one split set.

        Examples
        --------
        >>> TaskTable(make_table({"main": {"n_outer": 2, "n_inner": [0, 0]}}, [], nested=False)).fold_task_ids()
        [(0, 'score-o0'), (1, 'score-o1')]
        """
        return [(block[2], self._gather_id(block)) for block in self._blocks
                if block[0] == split_set and block[2] is not None]
