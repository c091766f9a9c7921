"""scikit-learn's own train scores, predictions and weighted results for an Experiment.

Shared by test_train_scores.py, test_predictions.py, test_metadata.py and
test_outputs_backends.py: each builds the scikit-learn call the Experiment
stands for (DESIGN.md §3) with the same options.
"""

import numpy as np


def search_of(experiment, return_train_score=False):
    """The GridSearchCV an Experiment's inner loop stands for (or the estimator itself)."""
    from sklearn.model_selection import GridSearchCV

    if experiment.param_grid is None:
        return experiment.estimator
    return GridSearchCV(experiment.estimator, experiment.param_grid, cv=experiment.inner_cv,
                        scoring=experiment.scoring, refit=experiment.refit, error_score=experiment.error_score,
                        return_train_score=return_train_score)


def reference_cross_validate(experiment, X, y, groups=None, params=None, routing=False):
    """``cross_validate(..., return_train_score=, return_estimator=True, params=)`` as scikit-learn runs it.

    Without routing, groups reach the inner search through ``params`` (as
    ``cross_validate(GridSearchCV)`` needs); with routing, groups go in
    ``params`` for both levels.
    """
    from sklearn.model_selection import cross_validate

    params = dict(params or {})
    nested = experiment.param_grid is not None
    if groups is not None and (nested or routing):
        params["groups"] = groups
    return cross_validate(
        search_of(experiment, experiment.return_train_score), X, y,
        groups=None if routing else groups, cv=experiment.cv, scoring=experiment.scoring,
        params=params or None, return_estimator=True, return_train_score=experiment.return_train_score,
        error_score=experiment.error_score)


def reference_predictions(experiment, X, y, groups=None, params=None, routing=False):
    """``cross_val_predict(<estimator or GridSearchCV>, X, y, cv=cv, method=predict, params=)``."""
    from sklearn.model_selection import cross_val_predict

    params = dict(params or {})
    nested = experiment.param_grid is not None
    if groups is not None and (nested or routing):
        params["groups"] = groups
    return cross_val_predict(search_of(experiment), X, y, groups=None if routing else groups,
                             cv=experiment.cv, method=experiment.predict, params=params or None)


def assert_train_scores_match(results, reference, atol=1e-12):
    """Outer ``train_<m>`` and every inner train entry (keys in scikit-learn's order)."""
    for metric in results.metrics:
        key = "score" if metric == "score" else metric
        np.testing.assert_allclose(results.train_scores[metric], reference[f"train_{key}"], rtol=0, atol=atol,
                                   err_msg=f"outer train {metric}")
        np.testing.assert_allclose(results.test_scores[metric], reference[f"test_{key}"], rtol=0, atol=atol,
                                   err_msg=f"outer test {metric}")
    if not results.nested:
        return
    for fold, search in enumerate(reference["estimator"]):
        ours, theirs = results.cv_results(fold), search.cv_results_
        assert list(ours) == list(theirs), f"fold {fold}: keys {list(ours)} != {list(theirs)}"
        for key, value in theirs.items():
            if key.startswith(("split", "mean_t", "std_t", "rank_")) and "_time" not in key:
                np.testing.assert_allclose(ours[key], value, rtol=0, atol=atol, err_msg=f"fold {fold} {key}")
        assert results.best_params[fold] == search.best_params_


def assert_same_predictions(ours, theirs):
    """Equal values, dtype kind and shape (or the same list of arrays)."""
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same_predictions(a, b)
        return
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape and ours.dtype.kind == theirs.dtype.kind, (ours.dtype, theirs.dtype)
    if theirs.dtype.kind in "fc":
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    else:
        assert (ours == theirs).all()
