"""Compare models evaluated on the same data and the same outer splits (``mp.compare``).

(Not named ``compare.py``: the module would shadow the function ``mp.compare``
on the package once imported.)

``mp.compare({"svc": res_a, "logreg": res_b})`` gives, per metric, each
model's outer-fold mean, std and median, and for every pair of models the
mean of the per-fold differences with the **corrected resampled t-test** of
Nadeau & Bengio (2003), the test scikit-learn's example "Statistical
comparison of models using grid search" uses.  Outer folds share training
rows, so the fold scores of one model are not independent and the plain
paired t-test is too confident; the correction inflates the variance of the
differences by the overlap::

    t = mean(d) / sqrt((1 / k + n_test / n_train) * var(d, ddof=1)),   df = k - 1

with ``d`` the per-fold differences, ``k`` the number of outer folds and
``n_test / n_train`` the ratio of the mean outer test size to the mean outer
training size (both read from the stored splits).  The p-value is two-sided.
With fewer than :data:`FEW_FOLDS` folds the test has little power, and the
table says so.

Examples
--------
>>> table = mp.compare({"a": res, "b": res})   # one model twice: no difference to test
>>> list(table.index)
[('accuracy', 'a'), ('accuracy', 'b'), ('accuracy', 'a - b')]
"""

import itertools

import numpy as np

from .exceptions import InvalidParameterError
from . import store

#: Below this many outer folds the corrected t-test has little power: noted in the table.
FEW_FOLDS = 10
#: The columns of :func:`compare`'s table.
COLUMNS = ("kind", "mean", "std", "median", "n_folds", "t", "df", "pvalue", "note")


def compare(results):
    """One table comparing models scored on the same data and outer splits.

    Parameters
    ----------
    results : dict
        ``{model name: mempamal.Results}``, at least two, each evaluated on
        the same data with the same outer splits (``build(...,
        splits_from=...)`` reuses another workdir's).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(metric, name)``; ``name`` is a model, or a pair
        ``"a - b"`` (``kind`` says which).  For a model: ``mean``, ``std``
        (``np.std``, ddof=0, as ``cv_results_``), ``median`` of its outer
        test scores.  For a pair: the same of the per-fold differences
        ``a - b``, and the corrected resampled t-test's ``t``, ``df`` and
        two-sided ``pvalue``; ``note`` says when the test is weak or
        undefined.

    Raises
    ------
    InvalidParameterError
        Fewer than two models, no metric in common, other data, or other
        outer splits (the message names the models and what differs).

    Examples
    --------
    >>> table = compare({"a": res, "b": res})
    >>> row = table.loc[("accuracy", "a - b")]
    >>> float(row["df"]), row["note"].split(":")[0]
    (2.0, 'only 3 folds')
    """
    models = check_comparable(results)
    metrics = [m for m in next(iter(models.values())).test_scores if all(m in r.test_scores for r in models.values())]
    if not metrics:
        raise InvalidParameterError("The 'results' of compare share no metric: "
                                    + "; ".join(f"{name}: {sorted(r.test_scores)}" for name, r in models.items()))
    ratio = _test_train_ratio(next(iter(models.values())))
    rows, index = [], []
    for metric in metrics:
        for name, result in models.items():
            scores = np.asarray(result.test_scores[metric], dtype=float)
            index.append((metric, name))
            rows.append({"kind": "model", **_summary(scores), "note": ""})
        for (name_a, a), (name_b, b) in itertools.combinations(models.items(), 2):
            differences = np.asarray(a.test_scores[metric], dtype=float) - np.asarray(b.test_scores[metric], float)
            index.append((metric, f"{name_a} - {name_b}"))
            rows.append({"kind": "pair", **_summary(differences), **corrected_t_test(differences, ratio)})
    import pandas as pd

    frame = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["metric", "name"]))
    return frame.reindex(columns=list(COLUMNS))


def corrected_t_test(differences, test_train_ratio):
    """Nadeau & Bengio's corrected resampled t-test of per-fold ``differences``.

    Returns ``{"t", "df", "pvalue", "note"}``: the statistic, ``k - 1``
    degrees of freedom, the two-sided p-value, and a note when the test is
    weak (few folds) or undefined (no variance).

    Examples
    --------
    >>> result = corrected_t_test(np.array([0.02, 0.01, 0.03, 0.02, 0.04]), 0.25)
    >>> round(result["t"], 3), result["df"], round(result["pvalue"], 4)
    (3.138, 4.0, 0.0349)
    """
    from scipy import stats

    differences = np.asarray(differences, dtype=float)
    n_folds = len(differences)
    df = float(n_folds - 1)
    variance = np.var(differences, ddof=1) * (1.0 / n_folds + test_train_ratio) if n_folds > 1 else np.nan
    notes = []
    if n_folds < FEW_FOLDS:
        notes.append(f"only {n_folds} folds: the test has little power (repeat the outer CV for more, "
                     "e.g. RepeatedStratifiedKFold)")
    if not np.isfinite(variance) or variance == 0:
        notes.append("the differences do not vary: no t-test")
        return {"t": np.nan, "df": df, "pvalue": np.nan, "note": "; ".join(notes)}
    t = float(np.mean(differences) / np.sqrt(variance))
    return {"t": t, "df": df, "pvalue": float(2 * stats.t.sf(abs(t), df)), "note": "; ".join(notes)}


def _summary(values):
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "median": float(np.median(values)),
            "n_folds": len(values)}


def check_comparable(results):
    """``results`` as a dict of at least two Results sharing data and outer splits, or a clear refusal.

    Examples
    --------
    >>> list(check_comparable({"a": res, "b": res}))
    ['a', 'b']
    """
    if not isinstance(results, dict) or len(results) < 2:
        raise InvalidParameterError(f"The 'results' parameter of compare must be a dict of at least two "
                                    f"{{name: Results}}; got {results!r} instead.")
    for name, result in results.items():
        if not hasattr(result, "test_scores") or not hasattr(result, "workdir"):
            raise InvalidParameterError(f"The 'results' parameter of compare must map names to mempamal.Results; "
                                        f"{name!r} is {result!r}.")
    (first_name, first), *others = results.items()
    data = _data_digests(first)
    splits = _outer_splits(first)
    for name, result in others:
        if _data_digests(result) != data:
            raise InvalidParameterError(f"compare needs models evaluated on the same data: {name!r} "
                                        f"({result.workdir}) was built on other data than {first_name!r} "
                                        f"({first.workdir}).")
        other = _outer_splits(result)
        if len(other) != len(splits) or any(not np.array_equal(a, b) for pair in zip(other, splits)
                                            for a, b in zip(*pair)):
            raise InvalidParameterError(
                f"compare needs the same outer splits: {name!r} ({result.workdir}) has {len(other[0])} outer "
                f"folds split otherwise than {first_name!r}'s {len(splits[0])} ({first.workdir}). Build one with "
                f"splits_from= the other's workdir.")
    return dict(results)


def _data_digests(result):
    """The digests the build recorded of ``X``, ``y`` and ``groups`` (not of the splits or the experiment)."""
    from pathlib import Path

    files = store.read_json(Path(result.workdir) / store.MANIFEST).get("files", {})
    return {name: digest for name, digest in files.items() if name.startswith(f"{store.DATA_DIR}/")}


def _outer_splits(result):
    """``(train, test)`` index arrays per outer fold (masks turned into indices)."""
    indices = result.indices
    return tuple(tuple(np.flatnonzero(part) if np.asarray(part).dtype == bool else np.asarray(part)
                       for part in indices[side]) for side in ("train", "test"))


def _test_train_ratio(result):
    """Mean outer test size / mean outer training size: the correction's ``n_test / n_train``."""
    train, test = _outer_splits(result)
    return float(np.mean([len(t) for t in test]) / np.mean([len(t) for t in train]))
