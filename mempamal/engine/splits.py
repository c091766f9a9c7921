"""Outer, inner and permutation splits, computed once at build time.

Splits are made exactly where scikit-learn makes them: the outer splitter on
the whole data (``cross_validate``), the inner splitter on the outer training
subset (what ``GridSearchCV.fit`` sees), and for a permutation test the folds
are recomputed on each permuted ``y`` (``permutation_test_score``).  Storing
them makes a shuffling splitter without a seed reproducible within a workdir.

A *split set* is one file ``splits/<name>.npz``: ``main`` for the real data
and ``perm-<m>`` for the m-th permutation (which also stores the permutation
of ``y``).  Inner indices are relative to the outer training subset.

Splits are stored as the splitter gave them: a ``cv`` given as boolean
masks is stored as masks (``cross_validate(return_indices=True)`` returns
them so, and :func:`given_indices` does too), and :class:`SplitSet` hands
every task their indices (``np.flatnonzero``), which select the same rows in
the same order, so inner splits compose with outer ones
(``outer_train[inner_train]``) whatever the form of either.
"""

import copy
from pathlib import Path

import numpy as np

from ..store import SPLITS_DIR, atomic_write
from ..store.tasktable import MAIN, permutation_name  # noqa: F401 (split set names, here for build)


def permuted_target_indices(n_samples, groups, n_permutations, random_state):
    """Row orders of ``y`` for each permutation, in scikit-learn's sequence.

    Mirrors ``sklearn.model_selection._validation._shuffle``: one
    ``permutation`` call per permutation when there are no groups, otherwise
    one per group (in ``np.unique`` order), all drawn from one RandomState.

    Examples
    --------
    >>> orders = permuted_target_indices(4, None, 2, 0)
    >>> [sorted(order.tolist()) for order in orders]
    [[0, 1, 2, 3], [0, 1, 2, 3]]
    """
    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    orders = []
    for _ in range(n_permutations):
        if groups is None:
            orders.append(rng.permutation(n_samples))
        else:
            order = np.arange(len(groups))
            for group in np.unique(groups):
                mask = groups == group
                order[mask] = rng.permutation(order[mask])
            orders.append(order)
    return orders


def _split_all(splitter, X, y, groups, argument_name):
    try:
        return [(np.asarray(train), np.asarray(test)) for train, test in splitter.split(X, y, groups)]
    except ValueError as exc:
        from .._constraints import invalid

        raise invalid(f"The {argument_name!r} splitter could not split the data: {exc}") from exc


def compute_split_set(estimator, X, y, groups, cv, inner_cv, nested, final_fit=False, check_outer=None):
    """All (outer, inner) splits of one dataset, as scikit-learn would make them.

    Returns ``{"outer": [(train, test), ...], "inner": [[(train, test), ...], ...]}``
    where ``inner[k]`` indexes the training subset of outer fold ``k``.  With
    ``final_fit`` it also holds ``"all"``: the inner splits of the whole data,
    as ``GridSearchCV.fit(X, y, groups)`` makes them (empty for plain CV).
    ``check_outer(outer)`` is called before the outer training subsets are
    sliced, so a bad outer split (a mask of the wrong length) is refused
    with a clear error, not with NumPy's.
    """
    from sklearn.base import clone, is_classifier
    from sklearn.model_selection import check_cv
    from .._sklearn_compat import _safe_indexing

    classifier = is_classifier(estimator)
    outer_splitter = check_cv(cv, y, classifier=classifier)
    outer = _split_all(outer_splitter, X, y, groups, "cv")
    if check_outer is not None:
        check_outer(outer)
    inner = []
    if nested:
        for train, _ in outer:
            X_train = _safe_indexing(X, train)
            y_train = _safe_indexing(y, train)
            groups_train = None if groups is None else _safe_indexing(groups, train)
            # cross_validate clones GridSearchCV per fold, which deep-copies
            # its ``cv``: every fold starts from the same splitter state.
            fold_cv = inner_cv if isinstance(inner_cv, int) or inner_cv is None else clone(inner_cv, safe=False)
            inner_splitter = check_cv(fold_cv, y_train, classifier=classifier)
            inner.append(_split_all(inner_splitter, X_train, y_train, groups_train, "inner_cv"))
    result = {"outer": outer, "inner": inner}
    if final_fit:
        result["all"] = []
        if nested:
            fold_cv = inner_cv if isinstance(inner_cv, int) or inner_cv is None else clone(inner_cv, safe=False)
            splitter = check_cv(fold_cv, y, classifier=classifier)
            result["all"] = _split_all(splitter, X, y, groups, "inner_cv")
    return result


def save_split_set(workdir, name, split_set, target_order=None):
    """Write one split set atomically as ``splits/<name>.npz``."""
    arrays = {}
    for k, (train, test) in enumerate(split_set["outer"]):
        arrays[f"outer_train_{k}"] = train
        arrays[f"outer_test_{k}"] = test
    for k, fold_splits in enumerate(split_set["inner"]):
        for j, (train, test) in enumerate(fold_splits):
            arrays[f"inner_train_{k}_{j}"] = train
            arrays[f"inner_test_{k}_{j}"] = test
    for j, (train, test) in enumerate(split_set.get("all", ())):
        arrays[f"all_train_{j}"] = train
        arrays[f"all_test_{j}"] = test
    if target_order is not None:
        arrays["target_order"] = target_order
    # User-only and atomic like every workdir file; a full disk names the file.
    atomic_write(Path(workdir) / SPLITS_DIR / f"{name}.npz", lambda handle: np.savez(handle, **arrays))


class SplitSet:
    """Read access to one stored split set (arrays loaded on first use).

    Examples
    --------
    >>> split_set = SplitSet("runs/iris", "main")
    >>> train, test = split_set.outer(0)
    """

    def __init__(self, workdir, name):
        self.path = Path(workdir) / SPLITS_DIR / f"{name}.npz"
        self._arrays = None

    def _load(self):
        if self._arrays is None:
            with np.load(self.path, allow_pickle=False) as archive:
                self._given = {key: archive[key] for key in archive.files}
            # A mask selects the rows its nonzero positions index, in the same order.
            self._arrays = {key: np.flatnonzero(value) if value.dtype.kind == "b" else value
                            for key, value in self._given.items()}
        return self._arrays

    def outer(self, fold):
        """``(train, test)`` indices of outer fold ``fold`` (integer indices, even for masks)."""
        arrays = self._load()
        return arrays[f"outer_train_{fold}"], arrays[f"outer_test_{fold}"]

    def inner(self, fold, inner_fold):
        """Inner split ``inner_fold`` of outer fold ``fold``; ``fold=None``: of the whole data."""
        arrays = self._load()
        if fold is None:
            return arrays[f"all_train_{inner_fold}"], arrays[f"all_test_{inner_fold}"]
        return arrays[f"inner_train_{fold}_{inner_fold}"], arrays[f"inner_test_{fold}_{inner_fold}"]

    def given(self, fold="outer"):
        """``{"train": (...), "test": (...)}``: the splits as the splitter gave them (masks stay masks).

        ``fold="outer"``: the outer splits; an int ``k``: the inner splits of
        outer fold ``k``; None: those of the final search on all the data.
        Copies: the caller may modify them.
        """
        self._load()
        name = "outer_{part}_{j}" if fold == "outer" else "all_{part}_{j}" if fold is None else \
            f"inner_{{part}}_{int(fold)}_{{j}}"
        parts = {"train": [], "test": []}
        while name.format(part="train", j=len(parts["train"])) in self._given:
            for part, values in parts.items():
                values.append(self._given[name.format(part=part, j=len(values))].copy())
        return {part: tuple(values) for part, values in parts.items()}

    @property
    def target_order(self):
        """The permutation of ``y`` of a permutation split set, or None for ``main``."""
        return self._load().get("target_order")


def given_indices(workdir, outer="outer"):
    """The splits of the real data as ``cross_validate(..., return_indices=True)["indices"]`` gives them.

    ``outer="outer"``: the outer splits; an int ``k``: the inner splits of
    outer fold ``k``, relative to its training subset (what
    ``GridSearchCV.fit`` split); None: the inner splits of the final search
    on all the data.  Permutations are not included (``permutation_test_score``
    keeps no indices either).

    Examples
    --------
    >>> indices = given_indices(wf.workdir)
    >>> len(indices["train"]), len(indices["test"][0]) + len(indices["train"][0])
    (3, 150)
    """
    return SplitSet(workdir, MAIN).given(outer)


def copy_splitter(splitter):
    """A private copy of a user splitter, so computing splits never mutates theirs."""
    return copy.deepcopy(splitter)
