"""The task graph spelled out row by row: the reference that :class:`mempamal.store.tasktable.TaskTable` is held to.

``tasks.json`` keeps only the generators of the graph and ``TaskTable``
computes every task from them by arithmetic; this is the plain loop that
spells the same graph out (``[id, kind, deps, split_set, outer, inner,
chunk]`` per task, the layout of the first ``tasks.json`` format), written
independently of that arithmetic so test_scale.py can compare the two.
"""

from mempamal.store.tasktable import MAIN


def make_rows(split_set_info, chunks, nested):
    """The graph spelled out row by row (what :class:`TaskTable` computes).

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
