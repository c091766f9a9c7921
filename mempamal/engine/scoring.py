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
    from .._sklearn_compat import _check_multimetric_scoring, _MultimetricScorer

    if callable(scoring):
        # scikit-learn's own check: a metric function (f1_score) is refused,
        # as GridSearchCV and cross_validate refuse it.
        return check_scoring(estimator, scoring), ["score"], False
    if scoring is None or isinstance(scoring, str):
        return check_scoring(estimator, scoring), ["score"], False
    scorers = _check_multimetric_scoring(estimator, scoring)
    raise_exc = isinstance(error_score, str) and error_score == "raise"
    return _MultimetricScorer(scorers=scorers, raise_exc=raise_exc), list(scorers), True


def scores_as_dict(scores, metric_names):
    """Normalize a scorer's output (float or dict) to ``{metric: float}``.

    A dict with other keys than ``metric_names`` comes from a callable
    scorer returning several metrics: as in scikit-learn, its keys are the
    metric names.

    Examples
    --------
    >>> scores_as_dict({"acc": 1, "f1": 0.5}, ["score"])
    {'acc': 1.0, 'f1': 0.5}
    """
    if isinstance(scores, dict):
        names = metric_names if set(scores) == set(metric_names) else list(scores)
        return {name: float(scores[name]) for name in names}
    return {metric_names[0]: float(scores)}


def metric_names(score_dicts, default):
    """The metrics really scored: ``default``, or the keys of a callable's dicts.

    ``score_dicts`` are ``{metric: ...}`` mappings in candidate/fold order;
    failed fits carry ``default`` as keys (their scorer never ran), so the
    first mapping with other keys names the metrics, as scikit-learn takes
    them from the first successful fit.

    Examples
    --------
    >>> metric_names([{"score": 0.0}, {"acc": 1.0, "f1": 0.5}], ["score"])
    ['acc', 'f1']
    """
    for scores in score_dicts:
        if scores is not None and list(scores) != list(default):
            return list(scores)
    return list(default)


def with_metrics(scores, names, error_score):
    """``scores`` restricted to ``names``; a metric it lacks (its fit failed) is ``error_score``.

    Examples
    --------
    >>> with_metrics({"score": float("nan")}, ["acc"], float("nan"))
    {'acc': nan}
    """
    return {name: scores[name] if name in scores else float(error_score) for name in names}


def check_refit_for_scores(refit, names, default):
    """GridSearchCV's check of ``refit`` once a callable scorer turned out to return a dict.

    Examples
    --------
    >>> check_refit_for_scores(True, ["acc", "f1"], ["score"])
    Traceback (most recent call last):
    ...
    ValueError: For multi-metric scoring, the parameter refit must be set to a scorer key or a callable to refit an estimator with the best parameter setting on the whole data and make the best_* attributes available for that metric. If this is not needed, refit should be set to False explicitly. True was passed.
    """
    if list(names) == list(default):
        return
    from sklearn.model_selection import GridSearchCV

    from .._sklearn_compat import check_refit_for_multimetric

    check_refit_for_multimetric(GridSearchCV(None, {}, refit=refit), dict.fromkeys(names))
