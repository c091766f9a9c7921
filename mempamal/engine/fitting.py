"""Fit and score grid points exactly as ``GridSearchCV`` does, sharing prefixes.

For each point the estimator is ``clone(base).set_params(**clone(params))``,
fitted on the training split and scored with ``sklearn``'s own ``_score`` on
the test split.  When points of one task give the same parameters to the
leading steps of a Pipeline, those steps are fitted once (with the very calls
``Pipeline.fit`` makes: ``fit_transform`` step by step) and the fitted steps
are reused; the test (and train) split is then transformed through them once
per prefix too, and each point's final step scored on it
(:mod:`mempamal.engine.shared_transforms` says when, and why the scores are
the same).
"""

import time
import traceback

from .scoring import scores_as_dict
from .shared_transforms import SharedTransforms


def _is_raise(error_score):
    return isinstance(error_score, str) and error_score == "raise"


class EstimatorRaised(Exception):
    """Carries the estimator's own exception out of a task (``error_score="raise"``).

    :func:`mempamal.engine.tasks.run_task` unwraps it: the caller gets the
    original exception, its type and message, with a note naming the task.
    """

    def __init__(self, original):
        super().__init__(f"{type(original).__name__}: {original}")
        self.original = original


def _fit_transform_step(transformer, X, y):
    # The same branches as sklearn.pipeline._fit_transform_one without weights.
    if hasattr(transformer, "fit_transform"):
        return transformer.fit_transform(X, y), transformer
    return transformer.fit(X, y).transform(X), transformer


def _private_copy(X):
    """A copy a step may modify in place without touching the cached one.

    ``order="K"`` keeps the memory layout, which can affect BLAS results.
    """
    import numpy as np

    if X is None:
        return None
    if isinstance(X, np.ndarray):
        return X.copy(order="K")
    if hasattr(X, "copy"):
        return X.copy()
    import copy

    return copy.deepcopy(X)


# The cache level holding the training X the first fitted step received (in
# the state that fit left it in, as scikit-learn's train score sees it).
# Negative, so no stale-level cleanup (levels >= k) ever removes it.
_TRAIN_INPUT = -1


class LazyCopy:
    """A private copy of ``X`` made on first use (a reused prefix never needs it)."""

    def __init__(self, X):
        self.X = X

    def get(self):
        """A private copy of the training data, made only when asked for."""
        return _private_copy(self.X)


def fit_pipeline_sharing_prefix(pipeline, X, y, point_keys, cache):
    """Fit ``pipeline`` reusing transformers fitted for an earlier point.

    ``cache[level]`` holds ``(key, fitted_step, output)`` of the last point's
    step ``level``; points are visited in prefix order so one entry per level
    is enough and memory stays bounded.  ``X`` may be a :class:`LazyCopy`
    of the training data: the copy is made only when the first step is
    actually fitted, so a point reusing the prefix copies nothing.
    """
    from .._sklearn_compat import validate_pipeline

    validate_pipeline(pipeline)
    Xt = X
    for level, (name, transformer) in enumerate(pipeline.steps[:-1]):
        entry = cache.get(level)
        if entry is not None and entry[0] == point_keys[level]:
            pipeline.steps[level] = (name, entry[1])
            Xt = entry[2]
            continue
        for stale in [lvl for lvl in cache if lvl >= level]:
            del cache[stale]
        if isinstance(Xt, LazyCopy):
            Xt = cache[_TRAIN_INPUT] = Xt.get()
        if transformer is None or (isinstance(transformer, str) and transformer == "passthrough"):
            cache[level] = (point_keys[level], transformer, Xt)
            continue
        Xt, fitted = _fit_transform_step(transformer, _private_copy(Xt) if level else Xt, y)
        cache[level] = (point_keys[level], fitted, Xt)
        pipeline.steps[level] = (name, fitted)
    if isinstance(Xt, LazyCopy):
        Xt = cache[_TRAIN_INPUT] = Xt.get()
    final = pipeline.steps[-1][1]
    if not (isinstance(final, str) and final == "passthrough"):
        _fit_final_step(final, _private_copy(Xt) if len(pipeline.steps) > 1 else Xt, y)
    return pipeline


def _fit_final_step(final, Xt, y):
    # Its own function so that a profile (benchmarks/_breakdown.py) can
    # tell the final step's fits from the shared prefix's.
    final.fit(Xt, y)


def fit_and_score(estimator, X_train, y_train, X_test, y_test, scorer, metrics, error_score, fit=None, *,
                  fit_params=None, score_params=None, return_train_score=False, train_X=None, score=None):
    """Fit ``estimator`` and score it; failures become ``error_score`` like sklearn.

    The steps of scikit-learn's ``_fit_and_score``: ``fit(X_train, y_train,
    **fit_params)``, score the test part, then (``return_train_score``) the
    train part with the same fitted estimator.  ``score_params`` is
    ``(test_params, train_params)``; ``train_X`` (a callable) gives the
    training X in its post-fit state when ``fit`` fitted a copy of it.
    ``score(estimator, X, y, params, split)`` (``split`` "test" or "train")
    replaces scikit-learn's ``_score`` with this scorer, for a caller that
    scores the same way faster (shared transforms); ``X_test`` and what
    ``train_X`` gives may then be :class:`LazyCopy` objects.

    Returns ``{"scores": {metric: float}, "fit_time", "score_time", "error",
    "fit_failed"}`` plus ``"train_scores"`` with ``return_train_score``.
    With ``error_score="raise"`` the estimator's exception propagates.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.metrics import check_scoring
    >>> X, y = np.arange(8.).reshape(4, 2), np.arange(4.)
    >>> out = fit_and_score(Ridge(), X[:3], y[:3], X[3:], y[3:], check_scoring(Ridge(), "r2"),
    ...                     ["score"], np.nan, return_train_score=True)
    >>> sorted(out["train_scores"])
    ['score']
    """
    test_params, train_params = score_params if score_params is not None else ({}, {})
    if score is None:
        def score(estimator, X, y, params, split):
            X = X.get() if isinstance(X, LazyCopy) else X
            return _score_or_raise(estimator, X, y, scorer, params, error_score)
    start = time.perf_counter()
    try:
        if fit is None:
            estimator.fit(X_train, y_train, **(fit_params or {}))
        else:
            fit(estimator)
    except Exception as exc:
        if _is_raise(error_score):
            raise EstimatorRaised(exc) from exc
        fit_time = time.perf_counter() - start
        error = traceback.format_exc()
        failed = {
            "scores": {name: float(error_score) for name in metrics},
            "fit_time": fit_time,
            "score_time": 0.0,
            "error": error,
            "fit_failed": True,
        }
        if return_train_score:
            failed["train_scores"] = dict(failed["scores"])
        return failed
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    scores = score(estimator, X_test, y_test, test_params, "test")
    score_time = time.perf_counter() - start
    result = {
        "scores": scores_as_dict(scores, metrics),
        "fit_time": fit_time,
        "score_time": score_time,
        "error": None,
        "fit_failed": False,
    }
    if return_train_score:
        X_seen = X_train if train_X is None else train_X()
        result["train_scores"] = scores_as_dict(
            score(estimator, X_seen, y_train, train_params, "train"), metrics)
    return result


def _score_or_raise(estimator, X, y, scorer, params, error_score):
    """scikit-learn's ``_score``; with ``error_score="raise"`` its exception leaves the task as the estimator's."""
    from .._sklearn_compat import _score

    try:
        return _score(estimator, X, y, scorer, params, error_score)
    except Exception as exc:
        if _is_raise(error_score):
            raise EstimatorRaised(exc) from exc
        raise


def evaluate_points(base, candidates, points, keys, data, scorer, metrics, error_score, *,
                    fit_params=None, score_params=None, return_train_score=False, data_owned=False):
    """Fit/score every grid point in ``points`` on one split.

    ``data`` is ``(X_train, y_train, X_test, y_test)``; ``keys`` are the
    prefix keys of :func:`mempamal.engine.grid.prefix_keys` or None.
    ``fit_params`` (already sliced to the training part) go to every fit;
    prefixes are then not shared, since metadata may reach any step.
    ``score_params`` is ``(test_params, train_params)``.  Results come back
    in the order of ``points`` whatever order they were computed in.
    ``data_owned`` says nobody reads ``data`` after this call: the last
    point then fits and scores it in place, without a private copy.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.metrics import check_scoring
    >>> X, y = np.arange(8.).reshape(4, 2), np.arange(4.)
    >>> out = evaluate_points(Ridge(), [{"alpha": 1.0}], [0], None, (X[:3], y[:3], X[3:], y[3:]),
    ...                       check_scoring(Ridge(), "r2"), ["score"], np.nan)
    >>> out[0]["fit_failed"]
    False
    """
    from sklearn.base import clone

    if fit_params:
        keys = None
    order = sorted(points, key=lambda p: keys[p]) if keys is not None else list(points)
    cache = {}
    results = {}
    score = None
    if keys is not None:
        shared = SharedTransforms(scorer, lambda estimator, X, y, params: _score_or_raise(
            estimator, X, y, scorer, params, error_score))

        def score_shared(estimator, X, y, params, split):
            # X is a LazyCopy of the task's test split or of the training X
            # as the shared first step left it: the copy scikit-learn would
            # score is made only if the whole pipeline is scored.
            return shared.score(estimator, X.X, X.get, y, params, split)
        score = score_shared
    for point in order:
        estimator = clone(base).set_params(**clone(candidates[point], safe=False))
        # GridSearchCV slices fresh arrays for every fit; estimators that
        # work in place (copy=False) must not see another point's leftovers.
        # With prefix sharing, the training copy is made only if this point
        # fits the first step itself (a reused prefix never reads it), and
        # the test copy only if the whole pipeline is scored.
        X_train, y_train, X_test, y_test = data
        y_train, y_test = _private_copy(y_train), _private_copy(y_test)
        fit = train_X = None
        if keys is not None:
            X_test = LazyCopy(X_test)

            def fit(pipeline, point_keys=keys[point], y_train=y_train):
                fit_pipeline_sharing_prefix(pipeline, LazyCopy(X_train), y_train, point_keys, cache)

            def train_X():
                # The training X as the first step's fit left it (shared by
                # every point with that step); a copy, so scoring leaves it.
                return LazyCopy(cache[_TRAIN_INPUT])
        elif not (data_owned and point == order[-1]):
            # The last point of owned data needs no copy: nobody reads the
            # arrays after it (a copy would double the rows in memory).
            X_train, X_test = _private_copy(X_train), _private_copy(X_test)
        point_fit_params = {name: _private_copy(value) for name, value in (fit_params or {}).items()}
        results[point] = fit_and_score(
            estimator, X_train, y_train, X_test, y_test, scorer, metrics, error_score, fit=fit,
            fit_params=point_fit_params, score_params=score_params,
            return_train_score=return_train_score, train_X=train_X, score=score,
        )
    return [results[point] for point in points]
