"""Grid points in ParameterGrid order, Pipeline prefix keys, and chunking.

Two grid points that give the same parameters to the leading steps of a
Pipeline fit the same transformers on the same data: they share a *prefix*.
Chunking keeps such points in the same ``fit`` task, and inside the task each
distinct prefix is fitted once (see :mod:`mempamal.engine.fitting`).  Neither changes a
score: the fitted transformers are the ones each point would have fitted.
"""

import math
from itertools import product

#: Above this many points, a chunk is split even if its points share a prefix,
#: so that one task never grows unboundedly long.
MAX_CHUNK_POINTS = 64
#: ``chunk_size="auto"`` splits chunks until the graph has this many fit tasks.
TARGET_FIT_TASKS = 16


def grid_point_indices(param_grid):
    """Yield ``(subgrid, {key: value_index})`` in ``ParameterGrid`` order.

    ``ParameterGrid`` iterates each sub-grid over its keys sorted by name,
    the first key varying slowest; value *indices* identify a value without
    comparing objects (values can be estimators or arrays).

    Examples
    --------
    >>> list(grid_point_indices({"b": [1, 2], "a": [0]}))
    [(0, {'a': 0, 'b': 0}), (0, {'a': 0, 'b': 1})]
    """
    subgrids = [param_grid] if isinstance(param_grid, dict) else list(param_grid)
    for subgrid_index, subgrid in enumerate(subgrids):
        keys = sorted(subgrid)
        if not keys:
            yield subgrid_index, {}
            continue
        ranges = [range(len(subgrid[key])) for key in keys]
        for value_indices in product(*ranges):
            yield subgrid_index, dict(zip(keys, value_indices))


def expand_grid(param_grid):
    """List of candidate parameter dicts plus their index descriptions.

    The candidates are exactly ``list(ParameterGrid(param_grid))``.
    """
    subgrids = [param_grid] if isinstance(param_grid, dict) else list(param_grid)
    candidates, descriptions = [], []
    for subgrid_index, indices in grid_point_indices(param_grid):
        subgrid = subgrids[subgrid_index]
        candidates.append({key: subgrid[key][index] for key, index in indices.items()})
        descriptions.append((subgrid_index, indices))
    return candidates, descriptions


def pipeline_step_names(estimator):
    """Names of a Pipeline's steps, or None for any other estimator."""
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline):
        return None
    return [name for name, _ in estimator.steps]


def prefix_keys(estimator, descriptions):
    """For each point, one hashable key per transformer step of a Pipeline.

    ``keys[p][level]`` is equal for two points exactly when their parameters
    of steps ``0..level`` come from the same sub-grid and the same values.
    Returns None when prefix sharing does not apply (not a Pipeline, a
    Pipeline with ``memory``, or a grid key that is not a step parameter).
    """
    step_names = pipeline_step_names(estimator)
    if step_names is None or len(step_names) < 2 or getattr(estimator, "memory", None) is not None:
        return None
    if getattr(estimator, "transform_input", None) is not None:
        return None
    position = {name: index for index, name in enumerate(step_names)}
    all_keys = []
    for subgrid_index, indices in descriptions:
        level_of = {}
        for key in indices:
            step = key.split("__", 1)[0]
            if step not in position:
                return None
            level_of[key] = position[step]
        keys_by_level = []
        for level in range(len(step_names) - 1):
            owned = tuple(sorted((k, v) for k, v in indices.items() if level_of[k] <= level))
            keys_by_level.append((subgrid_index, owned))
        all_keys.append(keys_by_level)
    return all_keys


def chunk_points(n_points, keys, n_fold_pairs, chunk_size="auto"):
    """Split point indices ``0..n_points-1`` into chunks (lists of indices).

    Points sharing the full transformer prefix stay together; ``chunk_size``
    (an int) caps the points per chunk.  ``"auto"`` keeps prefix groups whole
    unless the graph would have fewer than ``TARGET_FIT_TASKS`` fit tasks.

    Examples
    --------
    >>> chunk_points(5, None, n_fold_pairs=100, chunk_size=2)
    [[0, 1], [2, 3], [4]]
    """
    groups = {}
    for point in range(n_points):
        group_key = keys[point][-1] if keys is not None else None
        groups.setdefault(group_key, []).append(point)
    groups = list(groups.values())
    if chunk_size == "auto":
        limit = MAX_CHUNK_POINTS
        n_tasks = n_fold_pairs * sum(math.ceil(len(g) / limit) for g in groups)
        if n_tasks < TARGET_FIT_TASKS:
            wanted_per_pair = math.ceil(TARGET_FIT_TASKS / max(n_fold_pairs, 1))
            limit = max(1, math.ceil(n_points / wanted_per_pair))
    else:
        limit = int(chunk_size)
    chunks = []
    for group in groups:
        n_pieces = math.ceil(len(group) / limit)
        piece = math.ceil(len(group) / n_pieces)
        chunks.extend(group[start:start + piece] for start in range(0, len(group), piece))
    return chunks


def _value_id(value):
    """A hashable, orderable identity of one sampled parameter value.

    Two sampled candidates may share a Pipeline prefix only if they give the
    leading steps the same parameters: plain scalars of the same type and
    value are the same parameter; anything else (an estimator, an array) is
    the same only if it is the same object.
    """
    import numbers

    import numpy as np

    if value is None or isinstance(value, (str, bool, numbers.Real, np.generic)):
        try:
            hash(value)
            return ("v", type(value).__name__, value)
        except TypeError:
            pass
    return ("id", id(value))


def sample_candidates(param_distributions, n_iter, random_state):
    """The candidates ``RandomizedSearchCV(random_state=random_state)`` evaluates.

    They come from scikit-learn's own ``ParameterSampler``, as in
    ``RandomizedSearchCV._run_search``.  A ``RandomState`` instance is
    copied first: ``cross_validate`` clones the search for every outer fold,
    so every fold samples from the same unconsumed state.  Returns
    ``(candidates, descriptions)`` like :func:`expand_grid`, the
    descriptions identifying values so that :func:`prefix_keys` can share
    Pipeline prefixes between candidates that agree on them.

    Examples
    --------
    >>> from scipy.stats import loguniform
    >>> candidates, _ = sample_candidates({"C": loguniform(1e-2, 1e2), "penalty": ["l2"]}, 3, 0)
    >>> len(candidates), sorted(candidates[0])
    (3, ['C', 'penalty'])
    """
    import copy

    import numpy as np
    from sklearn.model_selection import ParameterSampler

    seed = copy.deepcopy(random_state) if isinstance(random_state, np.random.RandomState) else random_state
    candidates = list(ParameterSampler(param_distributions, n_iter, random_state=seed))
    descriptions = [(0, {key: _value_id(value) for key, value in candidate.items()}) for candidate in candidates]
    return candidates, descriptions
