"""The fitted ``GridSearchCV``/``RandomizedSearchCV`` of an outer fold, assembled, never refit twice.

In ``cross_validate(GridSearchCV(...), return_estimator=True)`` the outer
scorer, the kept estimator and ``cross_val_predict``'s prediction calls all
get the fitted *search*: a scorer may read ``best_params_``,
``best_estimator_`` or ``cv_results_``.  A ``select`` task already has
everything ``GridSearchCV.fit`` computes -- the inner ``cv_results_`` (from
the ``fit`` tasks), the best index and the refit of the best candidate -- so
it sets the attributes ``BaseSearchCV.fit`` sets on a search built from the
experiment's arguments, and hands that object to the scorer.  The search's
prediction methods delegate to ``best_estimator_``, so scores and
predictions are the same numbers as from the best estimator itself.
"""

import time

import numpy as np


def unfitted_search(experiment):
    """The search an experiment's inner loop stands for, as ``cross_validate`` clones it per fold.

    ``GridSearchCV(estimator, param_grid, cv=inner_cv, scoring=scoring,
    refit=refit, error_score=error_score, return_train_score=...)``, or
    ``RandomizedSearchCV(estimator, param_distributions, n_iter=n_iter,
    random_state=random_state, ...)``.

    Examples
    --------
    >>> import mempamal as mp
    >>> from sklearn.svm import SVC
    >>> unfitted_search(mp.Experiment(SVC(), param_grid={"C": [1.0, 10.0]}, inner_cv=3))
    GridSearchCV(cv=3, estimator=SVC(), param_grid={'C': [1.0, 10.0]})
    """
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    common = dict(scoring=experiment.scoring, refit=experiment.refit, cv=experiment.inner_cv,
                  error_score=experiment.error_score,
                  return_train_score=bool(getattr(experiment, "return_train_score", False)))
    estimator = clone(experiment.estimator)
    if getattr(experiment, "param_distributions", None) is not None:
        return RandomizedSearchCV(estimator, experiment.param_distributions, n_iter=experiment.n_iter,
                                  random_state=experiment.random_state, **common)
    return GridSearchCV(estimator, experiment.param_grid, **common)


def _multimetric(search, scorers, metric_names):
    """``multimetric_``: a dict of scorers, or a callable whose scores came as a dict."""
    from sklearn.metrics._scorer import _MultimetricScorer

    if callable(search.scoring):
        return list(metric_names) != ["score"]
    return isinstance(scorers, _MultimetricScorer)


def set_search_results(search, results, best_index, metric_names, n_splits, y_train):
    """Set what ``BaseSearchCV.fit`` sets before its refit: ``cv_results_``, ``best_*``, ``scorer_``...

    ``results`` is the whole inner ``cv_results_`` (:func:`mempamal.engine.search.cv_results`),
    ``best_index`` the candidate already chosen (a ``refit`` callable is not
    called again), ``metric_names`` the metrics scored, ``n_splits`` the
    number of inner splits and ``y_train`` the outer training targets
    (``check_cv`` picks a stratified splitter from them, as in ``fit``).

    Examples
    --------
    >>> import mempamal as mp
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal.engine.search import cv_results
    >>> search = unfitted_search(mp.Experiment(LogisticRegression(), param_grid={"C": [1.0, 10.0]}, inner_cv=2))
    >>> results = cv_results([{"C": 1.0}, {"C": 10.0}], {"score": [[0.5, 0.7], [0.9, 0.9]]},
    ...                      [[0.1, 0.1]] * 2, [[0.0, 0.0]] * 2)
    >>> set_search_results(search, results, 1, ["score"], 2, [0, 1, 0, 1])
    >>> search.best_params_, float(search.best_score_), search.n_splits_
    ({'C': 10.0}, 0.9, 2)
    """
    from sklearn.base import is_classifier
    from sklearn.model_selection import check_cv

    scorers, refit_metric = search._get_scorers()
    multimetric = _multimetric(search, scorers, metric_names)
    if callable(search.scoring) and multimetric:
        refit_metric = search.refit
    search._checked_cv_orig = check_cv(search.cv, y_train, classifier=is_classifier(search.estimator))
    search.n_splits_ = int(n_splits)
    search.multimetric_ = multimetric
    if search.refit or not multimetric:
        # argmin's integer type for a rank, the callable's own answer otherwise.
        search.best_index_ = best_index if callable(search.refit) else np.int64(best_index)
        if not callable(search.refit):
            search.best_score_ = results[f"mean_test_{refit_metric}"][search.best_index_]
        search.best_params_ = results["params"][search.best_index_]
    search.scorer_ = scorers._scorers if hasattr(scorers, "_scorers") else scorers
    search.cv_results_ = results


def refit_into_search(search, best_estimator, X, y, fit_params):
    """``GridSearchCV.fit``'s refit: fit ``best_estimator`` (a fresh clone with the best
    parameters) and keep it as ``best_estimator_`` with ``refit_time_``.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.linear_model import Ridge
    >>> search = GridSearchCV(Ridge(), {"alpha": [1.0]})
    >>> refit_into_search(search, Ridge(), [[0.0], [1.0]], [0.0, 1.0], {}).best_estimator_.coef_.shape
    (1,)
    """
    start = time.time()
    if y is not None:
        best_estimator.fit(X, y, **fit_params)
    else:
        best_estimator.fit(X, **fit_params)
    search.refit_time_ = time.time() - start
    search.best_estimator_ = best_estimator
    if hasattr(best_estimator, "feature_names_in_"):
        search.feature_names_in_ = best_estimator.feature_names_in_
    return search
