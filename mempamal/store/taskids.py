"""The one spelling of task ids and kinds: every other module builds and reads ids through here.

Ids are readable and stable (the same experiment gives the same ids, so a
rebuilt workdir resumes)::

    fit-o<k>-i<j>-c<c>        fit of outer fold k, inner fold j, chunk c of grid points
    select-o<k> / score-o<k>  the search of outer fold k (nested) / its plain-CV fit and score
    fit-all-i<j>-c<c>         the final search's fits on all the data
    select-all                the final search's choice and refit
    final                     gathers everything into results.json
    perm-<m>-...              the same shapes on permutation m's y

Examples
--------
>>> fit_id("", 2, 1, 0), gather_id("perm-3-", TaskKind.SELECT, 0), fit_id("", None, 4, 2)
('fit-o2-i1-c0', 'perm-3-select-o0', 'fit-all-i4-c2')
>>> parse_task_id("perm-3-fit-o2-i1-c0")
('perm-3', 'fit', 2, 1, 0)
"""

import enum
import re

from ..exceptions import WorkdirError

#: Name of the split set of the data itself (permutations are ``perm-<m>``).
MAIN = "main"


class TaskKind(str, enum.Enum):
    """The kinds of task of a graph; a ``str``, so ``TaskKind.FIT == "fit"``.

    Examples
    --------
    >>> [kind.value for kind in TaskKind]
    ['fit', 'select', 'score', 'fit-all', 'select-all', 'final']
    """

    FIT = "fit"
    SELECT = "select"
    SCORE = "score"
    FIT_ALL = "fit-all"
    SELECT_ALL = "select-all"
    FINAL = "final"

    def __str__(self):
        return self.value


#: Kinds whose output holds one outer fold's test scores.
FOLD_KINDS = (TaskKind.SELECT.value, TaskKind.SCORE.value)
#: The whole id grammar (see the module docstring).
TASK_ID = re.compile(r"(perm-\d+-)?(fit|select|score)-o(\d+)(?:-i(\d+)-c(\d+))?|fit-all-i(\d+)-c(\d+)")
_PERMUTATION = re.compile(r"perm-(\d+)")


def permutation_name(index):
    """Name of the split set of permutation ``index`` (and, with ``-``, the prefix of its ids).

    Examples
    --------
    >>> permutation_name(3)
    'perm-3'
    """
    return f"perm-{index}"


def permutation_index(split_set):
    """The index of the permutation whose split set is ``split_set`` (``perm-<m>``), None for the data's.

    Examples
    --------
    >>> permutation_index("perm-3"), permutation_index(MAIN)
    (3, None)
    """
    if split_set == MAIN:
        return None
    match = _PERMUTATION.fullmatch(split_set)
    if match is None:
        raise WorkdirError(f"{split_set!r} names no split set (the task table is damaged); build the workdir again.")
    return int(match.group(1))


def id_prefix(split_set):
    """The prefix of the ids of ``split_set``'s tasks: ``""`` for the data, ``"perm-<m>-"`` for a permutation.

    Examples
    --------
    >>> id_prefix(MAIN), id_prefix("perm-2")
    ('', 'perm-2-')
    """
    return "" if split_set == MAIN else f"{split_set}-"


def fit_id(prefix, outer, inner, chunk):
    """Id of a fit task (``outer=None``: the final search's ``fit-all``).

    Examples
    --------
    >>> fit_id("perm-0-", 1, 2, 3)
    'perm-0-fit-o1-i2-c3'
    """
    if outer is None:
        return f"fit-all-i{inner}-c{chunk}"
    return f"{prefix}fit-o{outer}-i{inner}-c{chunk}"


def fit_id_head(prefix, outer):
    """What every fit id of outer fold ``outer`` of ``prefix``'s split set starts with, and no other id
    (``outer=None``: the final search's ``fit-all`` ids).

    Examples
    --------
    >>> fit_id_head("perm-0-", 1), fit_id("perm-0-", 1, 2, 3).startswith(fit_id_head("perm-0-", 1))
    ('perm-0-fit-o1-i', True)
    >>> fit_id_head("", None)
    'fit-all-i'
    """
    return "fit-all-i" if outer is None else f"{prefix}fit-o{outer}-i"


#: What the id of every fit of an outer fold of the data starts with (so does its output shard).
OUTER_FIT_HEAD = "fit-o"


def gather_id(prefix, kind, outer):
    """Id of the task gathering an outer fold (``select``/``score``), or ``select-all`` when ``outer`` is None.

    Examples
    --------
    >>> gather_id("", "score", 4), gather_id("", "select-all", None)
    ('score-o4', 'select-all')
    """
    if outer is None:
        return TaskKind.SELECT_ALL.value
    return f"{prefix}{kind}-o{outer}"


def parse_task_id(task_id):
    """``(split set, kind, outer, inner, chunk)`` of a fold task's id, or None for ``select-all``/``final``/junk.

    Examples
    --------
    >>> parse_task_id("select-o2"), parse_task_id("fit-all-i1-c0"), parse_task_id("final")
    (('main', 'select', 2, None, None), ('main', 'fit-all', None, 1, 0), None)
    """
    match = TASK_ID.fullmatch(task_id)
    if match is None:
        return None
    prefix, kind, outer, inner, chunk, all_inner, all_chunk = match.groups()
    split_set = prefix[:-1] if prefix else MAIN
    if kind is None:
        return MAIN, TaskKind.FIT_ALL.value, None, int(all_inner), int(all_chunk)
    return (split_set, kind, int(outer), None if inner is None else int(inner),
            None if chunk is None else int(chunk))


def chunk_of(task_id):
    """``(the id without its chunk number, the chunk)`` of a fit id, or None for any other task.

    Examples
    --------
    >>> chunk_of("fit-o3-i2-c1234"), chunk_of("select-o3")
    (('fit-o3-i2', 1234), None)
    """
    head, separator, chunk = task_id.rpartition("-c")
    if separator and chunk.isdigit():
        return head, int(chunk)
    return None
