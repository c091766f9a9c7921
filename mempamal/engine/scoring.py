"""Scorers built the way scikit-learn's search and validation build them."""


def build_scorer(estimator, scoring, error_score=float("nan")):
    """Return ``(scorer, metric_names, multimetric)`` as ``GridSearchCV`` makes them.

    A single metric is named ``"score"`` (``mean_test_score`` in
    ``cv_results_``); several metrics keep their names.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> build_scorer(LogisticRegression(), ["accuracy", "f1"])[1]
    ['accuracy', 'f1']
    """
    from sklearn.metrics import check_scoring
    from sklearn.metrics._scorer import _check_multimetric_scoring, _MultimetricScorer

    if callable(scoring):
        return scoring, ["score"], False
    if scoring is None or isinstance(scoring, str):
        return check_scoring(estimator, scoring), ["score"], False
    scorers = _check_multimetric_scoring(estimator, scoring)
    raise_exc = isinstance(error_score, str) and error_score == "raise"
    return _MultimetricScorer(scorers=scorers, raise_exc=raise_exc), list(scorers), True


def scores_as_dict(scores, metric_names):
    """Normalize a scorer's output (float or dict) to ``{metric: float}``."""
    if isinstance(scores, dict):
        return {name: float(scores[name]) for name in metric_names}
    return {metric_names[0]: float(scores)}
