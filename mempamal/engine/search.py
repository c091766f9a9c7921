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


def search_statistics(split_scores, fit_times, score_times):
    """All numeric ``cv_results_`` entries from per-split tables.

    ``split_scores`` maps a metric name to an ``(n_candidates, n_splits)``
    table.
    """
    results = {}
    results.update(summarize("fit_time", fit_times))
    results.update(summarize("score_time", score_times))
    for metric, table in split_scores.items():
        results.update(summarize(f"test_{metric}", table, rank=True, splits=True))
    return results


def best_index(results, refit, metrics):
    """The candidate ``GridSearchCV`` would pick (lowest rank, first on ties)."""
    if callable(refit):
        index = refit(results)
        if not isinstance(index, (int, np.integer)):
            raise TypeError("best_index_ returned is not an integer")
        if index < 0 or index >= len(results["params"]):
            raise IndexError("best_index_ index out of range")
        return int(index)
    # A single metric is "score" even when refit names it (refit="accuracy").
    metric = refit if isinstance(refit, str) and refit in metrics else metrics[0]
    return int(results[f"rank_test_{metric}"].argmin())
