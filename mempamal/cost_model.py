"""The cost model of ``Workflow.estimate``: which tasks to sample, and every task's cost from theirs.

What is sampled
    For a nested evaluation, the fits of the first inner split of the first
    outer fold, one task per chunk of grid points (all chunks when there are
    few, else an evenly spread subset with at least one chunk per distinct
    Pipeline prefix); the same for the final search on all the data
    (``fit-all``) and for the first permutation, whose shuffled ``y`` can
    make fits slower or faster.  For plain cross-validation, the first
    outer fold's ``score`` task (and the first permutation's).  A whole
    outer fold (its fits and its ``select``) is sampled too when it is at
    most :data:`mempamal.estimate.FOLD_SHARE` of the predicted work.

How costs extrapolate
    A task costs what the sampled task of the same chunk and family (data,
    permutations, final search) cost, in proportion to the number of
    training rows it fits on (linear in the rows: the inner training rows
    of its split for a ``fit``, the outer training rows for a ``score`` or
    ``select``, all rows for ``select-all``).  A chunk not sampled costs the
    sampled chunks' mean per grid point times its number of points.  A
    ``select`` not sampled refits one grid point on the outer training rows:
    the sampled fits' mean per-point fit and score time, scaled by the rows.
    ``final`` gathers JSON outputs: :data:`FINAL_SECONDS` plus a little per
    outer fold.  A worker's peak memory is the highest peak measured, plus
    the memory growth per training row times the rows of the largest task.
"""

import statistics

from .engine.splits import SplitSet
from .store.tasktable import MAIN

#: What the ``final`` task is predicted to cost, plus 1 % of it per gathered fold.
FINAL_SECONDS = 0.05
#: At most this many fit chunks are sampled per family (at least one per distinct prefix).
MAX_SAMPLED_CHUNKS = 8


class SplitSizes:
    """Training rows per task, the grid's prefix keys and the estimator, read from the workdir.

    Examples
    --------
    >>> SplitSizes(wf).rows(wf.table.task("fit-o0-i0-c0"))
    50
    """

    def __init__(self, workflow):
        from .engine.context import load_context

        context = load_context(workflow.workdir)
        self.workdir = workflow.workdir
        self.estimator = context.estimator
        self.prefix_keys = context.prefix_keys
        self.n_samples = len(context.data[1])
        self.chunks = workflow.table.chunks
        self._sets = {}

    def rows(self, task):
        """The number of rows ``task`` fits on (all rows for select-all and final).

        Examples
        --------
        >>> SplitSizes(wf).rows(wf.task("select-o0"))
        100
        """
        if task.kind in ("select-all", "final"):
            return self.n_samples
        split_set = self._sets.setdefault(task.split_set, SplitSet(self.workdir, task.split_set))
        if task.kind in ("fit", "fit-all"):
            return len(split_set.inner(task.outer, task.inner)[0])
        return len(split_set.outer(task.outer)[0])


def choose_sample(table, prefix_keys):
    """The ids of the tasks to sample from ``table`` (see the module docstring), in graph order.

    Examples
    --------
    >>> from mempamal.store.tasktable import TaskTable, make_table
    >>> table = TaskTable(make_table({"main": {"n_outer": 3, "n_inner": [2] * 3}}, [[0], [1]], nested=True))
    >>> choose_sample(table, None)
    ['fit-o0-i0-c0', 'fit-o0-i0-c1']
    """
    chunks = _sampled_chunks(table.chunks, prefix_keys)
    families = {}
    for block in table.blocks():  # the first block of each family: data, first permutation, final search
        family = _family(block.split_set, block.outer)
        if family not in families and (block.gather > block.first or not table.nested):
            families[family] = block
    ids = []
    for block in families.values():
        if table.nested:
            ids.extend(table.id_at(block.first + chunk) for chunk in chunks)  # inner split 0
        else:
            ids.append(block.gather_id)
    return ids


def _family(split_set, outer):
    """Tasks that cost alike: the data's folds, the permutations', the final search on all data."""
    return "all" if outer is None else "data" if split_set == MAIN else "permutations"


def _sampled_chunks(chunks, prefix_keys):
    """Chunk indices to sample: all when few, else spread out with one per distinct prefix."""
    if len(chunks) <= MAX_SAMPLED_CHUNKS:
        return list(range(len(chunks)))
    chosen, seen = [], set()
    for index, chunk in enumerate(chunks):
        key = None if prefix_keys is None else repr(prefix_keys[chunk[0]][-1])
        if key not in seen:
            seen.add(key)
            chosen.append(index)
    step = len(chunks) / MAX_SAMPLED_CHUNKS
    chosen.extend(int(i * step) for i in range(MAX_SAMPLED_CHUNKS))
    return sorted(set(chosen))


def read_costs(workflow, done, per_group=20):
    """``{task id: measured cost}`` read from the outputs of done tasks (at most ``per_group`` per kind and chunk).

    Each value is a dict: ``kind``, ``family``, ``chunk`` (fits), ``rows``,
    ``points`` (fits), ``wall`` (seconds from ready to end), ``cpu``,
    ``start``, ``ready``, ``peak``, ``growth`` and, for fits, ``point_seconds``
    (each grid point's fit plus score time).

    Examples
    --------
    >>> read_costs(wf, wf.done_ids())["fit-o0-i0-c0"]["wall"] > 0
    True
    """
    from . import store
    from .store.records import FitRecord, TaskOutput

    sizes = SplitSizes(workflow)
    chunk_of = {tuple(chunk): index for index, chunk in enumerate(workflow.table.chunks)}
    counts, measured = {}, {}
    for task_id in sorted(done, key=workflow.table.position):
        task = workflow.table.task(task_id)
        family = _family(task.split_set, task.outer if task.kind != "select-all" else None)
        chunk = chunk_of.get(tuple(task.points)) if task.points is not None else None
        group = (task.kind, family, chunk)
        if counts.get(group, 0) >= per_group:
            continue
        try:
            output = store.read_json(store.output_path(workflow.workdir, task_id))
            output = TaskOutput.from_json(output) if isinstance(output, dict) else None
        except (OSError, store.WorkdirError):  # removed or rewritten since the scan: not measured
            continue
        if output is None:
            continue
        counts[group] = counts.get(group, 0) + 1
        run = output.run
        wall = max(0.0, run.end - run.ready)
        entry = dict(kind=task.kind, family=family, chunk=chunk, rows=max(1, sizes.rows(task)), wall=wall,
                     cpu=run.cpu_seconds, start=run.start, ready=run.ready, peak=run.peak_rss_bytes,
                     growth=run.rss_growth_bytes, points=None if task.points is None else len(task.points))
        if isinstance(output.record, FitRecord):
            entry["point_seconds"] = [f + s for f, s in zip(output.record.fit_time, output.record.score_time)]
        measured[task_id] = entry
    return measured


def mean(values, default=None):
    """The mean of ``values``, or ``default`` when there are none.

    Examples
    --------
    >>> mean([1.0, 2.0]), mean([], default=0.0)
    (1.5, 0.0)
    """
    values = list(values)
    return statistics.fmean(values) if values else default


class _Rates:
    """Seconds per training row of each kind, family and chunk, from the measured tasks."""

    def __init__(self, measured):
        self.measured = measured
        self._found = {}  # one scan of the measured tasks per group, not per task

    def _pick(self, kind, family, chunk=None, per_point=False):
        """``(wall, cpu)`` per row (per point and row with ``per_point``) of the closest measured group."""
        key = (kind, family, chunk, per_point)
        if key not in self._found:
            self._found[key] = self._scan(kind, family, chunk, per_point)
        return self._found[key]

    def _scan(self, kind, family, chunk, per_point):
        if kind == ("refit",):
            return self._refit(family)
        fallbacks = [family] + [other for other in ("data", "permutations", "all") if other != family]
        for candidate in fallbacks:
            group = [m for m in self.measured.values() if m["kind"] in kind and m["family"] == candidate
                     and (chunk is None or m["chunk"] == chunk)]
            if group:
                scale = [m["rows"] * (m["points"] or 1 if per_point else 1) for m in group]
                return (mean(m["wall"] / s for m, s in zip(group, scale)),
                        mean(m["cpu"] / s for m, s in zip(group, scale)))
        return None

    def fit(self, task, rows, chunk):
        family = _family(task.split_set, task.outer)
        found = self._pick(("fit", "fit-all"), family, chunk)
        if found is not None:
            return found[0] * rows, found[1] * rows
        found = self._pick(("fit", "fit-all"), family, per_point=True)
        if found is None:
            return 0.05 * len(task.points), 0.05 * len(task.points)
        return found[0] * rows * len(task.points), found[1] * rows * len(task.points)

    def gather(self, task, rows):
        """A ``score``, ``select`` or ``select-all``: measured per row, else one refit of a grid point."""
        family = _family(task.split_set, None if task.kind == "select-all" else task.outer)
        found = self._pick((task.kind,), family)
        if found is not None:
            return found[0] * rows, found[1] * rows
        refit = self._pick(("refit",), family)
        if refit is None:
            found = self._pick(("score",), family)  # plain CV's select-all refits like a score task
            return (found[0] * rows, found[1] * rows) if found else (0.1, 0.1)
        per_row, overhead, ratio = refit
        wall = per_row * rows + overhead
        return wall, wall * ratio

    def _refit(self, family):
        """``(seconds per row of one point's fit and score, a task's overhead, cpu/wall)`` from the fits."""
        fits = [m for m in self.measured.values() if m.get("point_seconds")]
        fits = [m for m in fits if m["family"] == family] or fits  # permuted labels may fit slower
        if not fits:
            return None
        per_row = mean(mean(m["point_seconds"]) / m["rows"] for m in fits)
        overhead = mean(max(0.0, m["wall"] - sum(m["point_seconds"])) for m in fits)
        return per_row, overhead, mean(m["cpu"] / m["wall"] for m in fits if m["wall"] > 0) or 1.0


def task_costs(tasks, sizes, measured):
    """``{task id: (wall seconds, cpu seconds)}`` of every task: measured when done, else extrapolated.

    See the module docstring for how.

    Examples
    --------
    >>> costs = task_costs(wf.tasks, SplitSizes(wf), read_costs(wf, wf.done_ids()))
    >>> len(costs["final"])
    2
    """
    rates = _Rates(measured)
    chunk_of = {}
    costs = {}
    for task in tasks:
        if task.id in measured:
            costs[task.id] = (measured[task.id]["wall"], measured[task.id]["cpu"])
        elif task.kind == "final":
            seconds = FINAL_SECONDS * (1 + len(task.deps) / 100)
            costs[task.id] = (seconds, seconds)
        elif task.kind in ("fit", "fit-all"):
            if not chunk_of:
                chunk_of.update((tuple(chunk), index) for index, chunk in enumerate(sizes.chunks))
            costs[task.id] = rates.fit(task, sizes.rows(task), chunk_of.get(tuple(task.points)))
        else:
            costs[task.id] = rates.gather(task, sizes.rows(task))
    return costs
