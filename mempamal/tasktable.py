"""The task table: the one record type for the rows of ``tasks.json``.

``tasks.json`` holds ``{"chunks": [...], "split_sets": {...}, "tasks": [row, ...]}``
where each row is ``[id, kind, deps, split_set, outer, inner, chunk]`` and
``chunk`` indexes ``chunks`` (the grid points a ``fit`` task evaluates).  That
layout is known here and nowhere else: the build writes rows with
:func:`make_rows`, every reader gets :class:`Task` records from
:func:`read_table` / :func:`tasks_of`, and the digest that the manifest keeps
is :func:`table_digest`.

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

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .store import MANIFEST, TASKS, WorkdirError, read_json

MAIN = "main"
"""Name of the split set of the data itself (permutations are ``perm-<m>``)."""


def permutation_name(index):
    """Name of the split set of permutation ``index``.

    Examples
    --------
    >>> permutation_name(3)
    'perm-3'
    """
    return f"perm-{index}"


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
        if self.split_set == MAIN:
            return None
        return int(self.split_set.split("-", 1)[1])

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


def make_rows(split_set_info, chunks, nested):
    """The rows of ``tasks.json`` for these split sets and grid chunks.

    ``split_set_info`` maps each split set name (``main``, ``perm-<m>``, in
    order) to ``{"n_outer": K, "n_inner": [J_0, ..., J_K-1]}``.  A split set
    whose info also has ``"n_inner_all": J`` (``final_fit``, the main set
    only) gets the final search: ``fit-all-i<j>-c<c>`` tasks (``outer`` None)
    feeding ``select-all``, which refits the best point on all the data
    (plain CV: ``select-all`` alone, fitting the estimator on all the data).

    Examples
    --------
    >>> rows = make_rows({"main": {"n_outer": 2, "n_inner": [0, 0]}}, [], nested=False)
    >>> [row[0] for row in rows]
    ['score-o0', 'score-o1', 'final']
    >>> rows = make_rows({"main": {"n_outer": 1, "n_inner": [2], "n_inner_all": 2}}, [[0, 1]], nested=True)
    >>> [row[0] for row in rows]
    ['fit-o0-i0-c0', 'fit-o0-i1-c0', 'select-o0', 'fit-all-i0-c0', 'fit-all-i1-c0', 'select-all', 'final']
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
        if "n_inner_all" in info:
            final_deps.append(_add_final_search(rows, split_set, info["n_inner_all"], len(chunks) if nested else 0))
    rows.append(["final", "final", final_deps, None, None, None, None])
    return rows


def _add_final_search(rows, split_set, n_inner, n_chunks):
    """Append the rows of the search on all the data; returns the id of its ``select-all``."""
    fit_ids = []
    for inner in range(n_inner):
        for chunk in range(n_chunks):
            fit_ids.append(f"fit-all-i{inner}-c{chunk}")
            rows.append([fit_ids[-1], "fit-all", [], split_set, None, inner, chunk])
    rows.append(["select-all", "select-all", fit_ids, split_set, None, None, None])
    return "select-all"


def make_table(split_set_info, chunks, nested):
    """The whole ``tasks.json`` content: chunks, split sets and rows.

    Examples
    --------
    >>> table = make_table({"main": {"n_outer": 1, "n_inner": [0]}}, [], nested=False)
    >>> sorted(table)
    ['chunks', 'split_sets', 'tasks']
    """
    return {"chunks": chunks, "split_sets": split_set_info, "tasks": make_rows(split_set_info, chunks, nested)}


def task_command(workdir, task_id, python=None):
    """The command line that runs one task anywhere the workdir is mounted.

    Examples
    --------
    >>> task_command("/runs/iris", "final", python="python3")
    ('python3', '-m', 'mempamal', 'task', '/runs/iris', 'final')
    """
    return (python or sys.executable, "-m", "mempamal", "task", str(workdir), task_id)


def tasks_of(table, workdir, python=None):
    """The :class:`Task` records of a parsed table, in graph order.

    Built straight from the rows (a graph can have 100,000 tasks): one
    shared tuple per chunk, the command prefix computed once.

    Examples
    --------
    >>> table = make_table({"main": {"n_outer": 1, "n_inner": [0]}}, [], nested=False)
    >>> [task.id for task in tasks_of(table, "/runs/x", python="python3")]
    ['score-o0', 'final']
    """
    chunks = [tuple(chunk) for chunk in table["chunks"]]
    prefix = task_command(workdir, "", python)[:-1]
    return [
        Task(task_id, kind, tuple(deps), prefix + (task_id,), split_set or MAIN, outer, inner,
             None if chunk is None else chunks[chunk])
        for task_id, kind, deps, split_set, outer, inner, chunk in table["tasks"]
    ]


def table_digest(table):
    """Hash of the task table: changes exactly when some task's definition does.

    Kept in the manifest; a ``tasks.json`` whose digest differs was edited
    (or swapped) after the build and is refused.

    Examples
    --------
    >>> table_digest({"tasks": []}) == table_digest({"tasks": []})
    True
    """
    return hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()[:32]


def check_table_digest(workdir, table, manifest):
    """Refuse a ``tasks.json`` that is not the one the build wrote.

    Examples
    --------
    >>> check_table_digest("wd", {"tasks": []}, {"tasks_digest": table_digest({"tasks": []})})
    """
    if table_digest(table) != manifest.get("tasks_digest"):
        raise WorkdirError(
            f"{Path(workdir) / TASKS} does not match the digest recorded in {Path(workdir) / MANIFEST}: "
            "one of them was edited or replaced after the build (a task row removed or changed?). "
            "Build the workdir again to recreate them."
        )


def read_table(workdir, manifest=None):
    """Parse ``tasks.json``; with ``manifest``, it must match the digest the build recorded.

    Examples
    --------
    >>> table = read_table("runs/iris", manifest)           # doctest: +SKIP
    >>> len(table["tasks"])                                 # doctest: +SKIP
    81
    """
    table = read_json(Path(workdir) / TASKS)
    if manifest is not None:
        check_table_digest(workdir, table, manifest)
    return table


def changed_task_ids(old_table, new_table):
    """Ids of the new table's tasks whose definition differs from the old table's.

    A rebuild of the same experiment keeps the outputs of the other tasks.

    Examples
    --------
    >>> old = make_table({"main": {"n_outer": 1, "n_inner": [2]}}, [[0, 1]], nested=True)
    >>> new = make_table({"main": {"n_outer": 1, "n_inner": [2]}}, [[0], [1]], nested=True)
    >>> sorted(changed_task_ids(old, new))[:2]
    ['fit-o0-i0-c0', 'fit-o0-i0-c1']
    """
    old = {task.id: task.definition for task in tasks_of(old_table, "")}
    return [task.id for task in tasks_of(new_table, "") if old.get(task.id) != task.definition]
