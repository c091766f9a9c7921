"""Inner-search statistics computed with the formulas of ``GridSearchCV``.

``split_scores`` has one row per candidate and one column per inner split;
means, standard deviations and ranks are computed with the same numpy calls
as ``BaseSearchCV._format_results`` so they agree to the last bit.
"""

import numpy as np


def _rank(means):
    if np.isnan(means).all():
        return np.ones_like(means, dtype=np.int32)
    from scipy.stats import rankdata

    # As BaseSearchCV._store: failed candidates (NaN) tie with the worst,
    # and +/-inf are clamped to the largest finite floats -- so a NaN and a
    # -inf candidate tie, and a finite max-float mean ties with +inf.
    filled = np.nan_to_num(means, nan=np.nanmin(means) - 1)
    return rankdata(-filled, method="min").astype(np.int32, copy=False)


def summarize(name, table, rank=False, splits=False):
    """``mean_<name>``, ``std_<name>`` (and ``rank_``/``split<k>_``) entries.

    Examples
    --------
    >>> out = summarize("test_score", [[1.0, 0.0], [1.0, 1.0]], rank=True)
    >>> out["mean_test_score"].tolist(), out["rank_test_score"].tolist()
    ([0.5, 1.0], [2, 1])
    """
    array = np.array(table, dtype=np.float64)
    results = {}
    if splits:
        for split in range(array.shape[1]):
            results[f"split{split}_{name}"] = array[:, split]
    means = np.average(array, axis=1)
    results[f"mean_{name}"] = means
    results[f"std_{name}"] = np.sqrt(np.average((array - means[:, np.newaxis]) ** 2, axis=1))
    if rank:
        results[f"rank_{name}"] = _rank(means)
    return results


def search_statistics(split_scores, fit_times, score_times, train_scores=None):
    """All numeric ``cv_results_`` entries from per-split tables.

    ``split_scores`` maps a metric name to an ``(n_candidates, n_splits)``
    table; ``train_scores`` (``return_train_score=True``) likewise, giving
    ``split<k>_train_<m>``, ``mean_train_<m>``, ``std_train_<m>`` right after
    each metric's test entries, as ``BaseSearchCV`` orders them.

    Examples
    --------
    >>> stats = search_statistics({"score": [[1.0, 0.0], [1.0, 1.0]]}, [[0.1, 0.1]] * 2, [[0.0, 0.0]] * 2)
    >>> stats["rank_test_score"].tolist()
    [2, 1]
    """
    results = {}
    results.update(summarize("fit_time", fit_times))
    results.update(summarize("score_time", score_times))
    for metric, table in split_scores.items():
        results.update(summarize(f"test_{metric}", table, rank=True, splits=True))
        if train_scores is not None:
            results.update(summarize(f"train_{metric}", train_scores[metric], splits=True))
    return results


def cv_results(candidates, split_scores, fit_times, score_times, train_scores=None):
    """The whole ``GridSearchCV.cv_results_``: times, ``param_*`` masked arrays, ``params``, scores.

    Keys come in scikit-learn's order; this is what ``Results.cv_results``
    returns and what a ``refit`` callable receives.  ``train_scores``
    (same shape as ``split_scores``) adds the ``*_train_*`` entries of
    ``return_train_score=True``.

    Examples
    --------
    >>> table = cv_results([{"C": 1}, {"C": 10}], {"score": [[0.5, 0.7], [0.9, 0.9]]},
    ...                    [[0.1, 0.1]] * 2, [[0.0, 0.0]] * 2)
    >>> table["param_C"].tolist(), table["rank_test_score"].tolist()
    ([1, 10], [2, 1])
    """
    from .._sklearn_compat import _yield_masked_array_for_each_param

    stats = search_statistics(split_scores, fit_times, score_times, train_scores)
    results = {key: stats.pop(key) for key in ("mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time")}
    for param, masked in _yield_masked_array_for_each_param(candidates):
        results[param] = masked
    results["params"] = list(candidates)
    results.update(stats)
    return results


def refit_metric(refit, metrics):
    """The metric that selects the best candidate: ``refit`` when it names one, else the first.

    A single metric is ``"score"`` even when refit names it (``refit="accuracy"``
    with ``scoring="accuracy"``); a permutation test with several metrics
    tests this one too.

    Examples
    --------
    >>> refit_metric("roc_auc", ["accuracy", "roc_auc"]), refit_metric(True, ["score"])
    ('roc_auc', 'score')
    """
    return refit if isinstance(refit, str) and refit in metrics else metrics[0]


def best_index(results, refit, metrics):
    """The candidate ``GridSearchCV`` would pick (lowest rank, first on ties).

    ``results`` is the whole :func:`cv_results` table, which a ``refit``
    callable receives as ``GridSearchCV`` gives it ``cv_results_``.

    Examples
    --------
    >>> best_index({"rank_test_score": np.array([2, 1, 1])}, True, ["score"])
    1
    """
    if callable(refit):
        index = refit(results)
        if not isinstance(index, (int, np.integer)):
            raise TypeError("best_index_ returned is not an integer")
        if index < 0 or index >= len(results["params"]):
            raise IndexError("best_index_ index out of range")
        return int(index)
    return int(results[f"rank_test_{refit_metric(refit, metrics)}"].argmin())
