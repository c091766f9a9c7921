"""``tasks.json`` as a file: reading it, the digest the manifest keeps, what a rebuild changed.

The layout of the table and the tasks it stands for are
:mod:`mempamal.store.tasktable`'s; this module is what the build and the readers
do with the file: :func:`read_table` (checked against the manifest's
digest), :func:`table_digest` (over the compact form, so it changes exactly
when some task's definition does), :func:`changed_task_ids` (a rebuild keeps
the outputs of the other tasks) and :func:`tasks_of` (every record, for the
exporters that write one line per task).

This module sits in the store layer, beside :mod:`mempamal.store.tasktable`.
"""

import hashlib
import json
from pathlib import Path

from ..exceptions import WorkdirError
from .files import read_json
from .workdir import MANIFEST, TASKS
from .tasktable import FORMAT, TaskTable


def tasks_of(table, workdir, python=None):
    """The :class:`~mempamal.store.tasktable.Task` records of a parsed table, in graph order (a list: all of them).

    Examples
    --------
    >>> from mempamal.store.tasktable import make_table
    >>> table = make_table({"main": {"n_outer": 1, "n_inner": [0]}}, [], nested=False)
    >>> [task.id for task in tasks_of(table, "/runs/x", python="python3")]
    ['score-o0', 'final']
    """
    return list(TaskTable(table, workdir, python))


def table_digest(table):
    """Hash of the task table: changes exactly when some task's definition does.

    Kept in the manifest; a ``tasks.json`` whose digest differs was edited
    (or swapped) after the build and is refused.

    Examples
    --------
    >>> from mempamal.store.tasktable import make_table
    >>> table = make_table({"main": {"n_outer": 2, "n_inner": [0, 0]}}, [], nested=False)
    >>> table_digest(table) == table_digest(make_table({"main": {"n_outer": 3, "n_inner": [0] * 3}}, [], False))
    False
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
    >>> from mempamal.store.tasktable import TaskTable
    >>> table = read_table("runs/iris", read_json("runs/iris/manifest.json"))
    >>> len(TaskTable(table))
    29
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
    >>> from mempamal.store.tasktable import make_table
    >>> old = make_table({"main": {"n_outer": 1, "n_inner": [2]}}, [[0, 1]], nested=True)
    >>> new = make_table({"main": {"n_outer": 1, "n_inner": [2]}}, [[0], [1]], nested=True)
    >>> sorted(changed_task_ids(old, new))[:2]
    ['fit-o0-i0-c0', 'fit-o0-i0-c1']
    """
    new = TaskTable(new_table)
    if old_table.get("format") != FORMAT:
        return list(new.ids())  # another version's table: nothing of it is kept
    old = TaskTable(old_table)
    if table_digest(old_table) == table_digest(new_table):
        return []
    changed = []
    for task in new:
        position = old.position(task.id)
        if position is None or old[position].definition != task.definition:
            changed.append(task.id)
    return changed
