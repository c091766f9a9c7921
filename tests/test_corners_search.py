"""Corners where "exactly scikit-learn" needs care (issue 23, items 2, 3 and 5).

- A metric function as ``scoring`` is refused at ``Experiment(...)``, as
  scikit-learn's ``check_scoring`` refuses it.
- In nested CV the outer scorer, ``res.estimators_`` and the ``predict=``
  calls see a fitted ``GridSearchCV``/``RandomizedSearchCV``, as in
  ``cross_validate(GridSearchCV(...))``, ``cross_val_predict`` and
  ``permutation_test_score``.
- Permutations shuffle ``y`` within groups as ``permutation_test_score(groups=g)``,
  and over all samples under metadata routing, as ``permutation_test_score(params={"groups": g})``.

Every comparison is with scikit-learn's own function on the same data.
"""

import re

import numpy as np
import pytest
import sklearn
from scipy.stats import loguniform
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import Lasso, LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, make_scorer, roc_auc_score
from sklearn.model_selection import (GridSearchCV, GroupKFold, KFold, RandomizedSearchCV, cross_val_predict,
                                     cross_validate, permutation_test_score)

import mempamal as mp

from test_final_model import assert_same_cv_results

X, y = make_classification(n_samples=48, n_features=5, flip_y=0.15, class_sep=0.6, random_state=0)
Xr, yr = make_regression(n_samples=60, n_features=8, n_informative=3, noise=5.0, random_state=0)
GROUPS = np.arange(48) % 4

# A scorer reading the search fails on the inner candidates (error_score), in scikit-learn too.
pytestmark = pytest.mark.filterwarnings("ignore:Scoring failed", "ignore:One or more of the",
                                        "ignore::sklearn.exceptions.FitFailedWarning")


# ---------------------------------------------------------------- item 2
@pytest.mark.parametrize("scoring, entry", [
    (f1_score, ""), (roc_auc_score, ""), ({"f1": f1_score, "acc": "accuracy"}, " (entry 'f1')"),
])
def test_a_metric_function_as_scoring_is_refused_as_scikit_learn_refuses_it(scoring, entry, tmp_path):
    # scikit-learn's own refusal, for the same value.
    with pytest.raises(ValueError, match="looks like it is a metric function rather than a scorer"):
        cross_validate(LogisticRegression(), X, y, scoring=scoring, cv=3)
    refit = "acc" if isinstance(scoring, dict) else True
    with pytest.raises(ValueError, match=re.escape(f"'scoring' parameter of Experiment{entry} must be a scorer")
                       + r".*not the metric function.*looks like it is a metric function"):
        mp.Experiment(LogisticRegression(), param_grid={"C": [0.1, 1.0]}, scoring=scoring, refit=refit)
    assert not any(tmp_path.iterdir())


def test_a_list_holding_a_metric_function_is_refused_with_scikit_learns_reason():
    with pytest.raises(ValueError, match="list/tuple elements must be unique strings"):
        cross_validate(LogisticRegression(), X, y, scoring=[f1_score], cv=3)
    with pytest.raises(ValueError, match="'scoring' parameter of Experiment.*list/tuple elements must be unique"):
        mp.Experiment(LogisticRegression(), scoring=[f1_score])


def test_a_scorer_made_from_the_metric_is_accepted_and_equals_cross_validate(tmp_path):
    scorer = make_scorer(f1_score)
    experiment = mp.Experiment(LogisticRegression(), cv=3, scoring=scorer, final_fit=False)
    res = experiment.run(X, y, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    reference = cross_validate(LogisticRegression(), X, y, cv=3, scoring=scorer)
    np.testing.assert_allclose(res.test_scores["score"], reference["test_score"], rtol=0, atol=1e-12)


# ---------------------------------------------------------------- item 5
def _permutation_run(tmp_path, routing, nested=False):
    kwargs = dict(cv=GroupKFold(3), n_permutations=6 if not nested else 3, random_state=0)
    search = dict(param_grid={"C": [0.1, 1.0]}, inner_cv=GroupKFold(2)) if nested else {}
    with sklearn.config_context(enable_metadata_routing=routing):
        experiment = mp.Experiment(LogisticRegression(), final_fit=False, **search, **kwargs)
        workflow = experiment.build(X, y, groups=GROUPS, workdir=tmp_path / f"wd-{routing}")
    res = workflow.run(n_jobs=1, progress=False)
    estimator = GridSearchCV(LogisticRegression(), search["param_grid"], cv=GroupKFold(2)) if nested \
        else LogisticRegression()
    with sklearn.config_context(enable_metadata_routing=routing):
        if routing:
            # groups= is refused under routing; the groups go with params and shuffle nothing.
            with pytest.raises(ValueError, match="groups"):
                permutation_test_score(estimator, X, y, groups=GROUPS, **kwargs)
            reference = permutation_test_score(estimator, X, y, params={"groups": GROUPS}, **kwargs)
        else:
            # The inner search gets the groups through params, as cross_validate(GridSearchCV) needs.
            reference = permutation_test_score(estimator, X, y, groups=GROUPS,
                                               params={"groups": GROUPS} if nested else None, **kwargs)
    return res, reference


@pytest.mark.parametrize("routing, nested", [(False, False), (True, False), (False, True), (True, True)])
def test_permutations_equal_permutation_test_score_with_and_without_routing(routing, nested, tmp_path):
    res, (score, permutation_scores, pvalue) = _permutation_run(tmp_path, routing, nested)
    assert res.score == pytest.approx(score, abs=1e-12)
    np.testing.assert_allclose(res.permutation_scores, permutation_scores, rtol=0, atol=1e-12)
    assert res.pvalue == pvalue


def test_routing_changes_the_shuffle_as_it_does_in_scikit_learn(tmp_path):
    within, _ = _permutation_run(tmp_path, False)
    across, _ = _permutation_run(tmp_path, True)
    # Same real score, different permutation sequence: the two calls differ in scikit-learn too.
    assert within.score == across.score
    assert not np.allclose(within.permutation_scores, across.permutation_scores)


# ---------------------------------------------------------------- item 3
# Scorers that read the *search*: at the outer level scikit-learn gives them
# the fitted GridSearchCV; inside the search they get a candidate, which has
# no best_params_ (there they score something else, or fail into error_score).
def selected_C(estimator, X, y):
    if hasattr(estimator, "best_params_"):
        return float(estimator.best_params_["C"]) + 100.0 * float(estimator.best_index_)
    return accuracy_score(y, estimator.predict(X))


def nonzero_coefficients(estimator, X, y):
    return float(np.count_nonzero(estimator.best_estimator_.coef_)) + float(estimator.best_score_)


def inner_table_size(estimator, X, y):
    return float(len(estimator.cv_results_["params"]) * estimator.n_splits_)


CLASSIFICATION = dict(estimator=LogisticRegression(max_iter=300), cv=KFold(3, shuffle=True, random_state=1),
                      inner_cv=3, scoring={"C": selected_C, "acc": "accuracy"}, refit="acc")
REGRESSION = dict(estimator=Lasso(max_iter=5000), cv=3, inner_cv=4, refit="r2",
                  scoring={"nnz": nonzero_coefficients, "r2": "r2", "size": inner_table_size})
SEARCHES = {
    "grid-classification": (dict(CLASSIFICATION, param_grid={"C": [0.01, 0.1, 1.0, 10.0]}), X, y),
    "randomized-classification": (dict(CLASSIFICATION, param_distributions={"C": loguniform(1e-2, 1e2)}, n_iter=5,
                                       random_state=3), X, y),
    "grid-regression": (dict(REGRESSION, param_grid={"alpha": [0.1, 1.0, 10.0]}), Xr, yr),
}


def _sklearn_search(kwargs, return_train_score=False):
    common = dict(cv=kwargs["inner_cv"], scoring=kwargs["scoring"], refit=kwargs["refit"],
                  return_train_score=return_train_score)
    if "param_distributions" in kwargs:
        return RandomizedSearchCV(kwargs["estimator"], kwargs["param_distributions"], n_iter=kwargs["n_iter"],
                                  random_state=kwargs["random_state"], **common)
    return GridSearchCV(kwargs["estimator"], kwargs["param_grid"], **common)


def assert_same_fitted_search(ours, theirs):
    """Attribute by attribute, what GridSearchCV.fit sets (timings only present)."""
    assert type(ours) is type(theirs)
    # The same parameters (scipy distributions are other objects with the same values).
    assert re.sub(r" at 0x[0-9a-f]+", "", repr(ours)) == re.sub(r" at 0x[0-9a-f]+", "", repr(theirs))
    fitted = sorted(k for k in vars(theirs) if k.endswith("_") and not k.startswith("_"))
    assert sorted(k for k in vars(ours) if k.endswith("_") and not k.startswith("_")) == fitted
    assert ours.best_index_ == theirs.best_index_ and type(ours.best_index_) is type(theirs.best_index_)
    assert repr(ours.best_params_) == repr(theirs.best_params_)
    if hasattr(theirs, "best_score_"):
        assert ours.best_score_ == pytest.approx(theirs.best_score_, abs=1e-12)
        assert type(ours.best_score_) is type(theirs.best_score_)
    assert_same_cv_results(ours.cv_results_, theirs.cv_results_)
    assert ours.n_splits_ == theirs.n_splits_ and ours.multimetric_ == theirs.multimetric_
    assert type(ours.scorer_) is type(theirs.scorer_)
    if isinstance(theirs.scorer_, dict):
        assert list(ours.scorer_) == list(theirs.scorer_)
    assert repr(ours._checked_cv_orig) == repr(theirs._checked_cv_orig)
    if not hasattr(theirs, "best_estimator_"):
        assert not hasattr(ours, "best_estimator_")
        return
    assert isinstance(ours.refit_time_, float) and ours.refit_time_ >= 0
    assert repr(ours.best_estimator_) == repr(theirs.best_estimator_)
    np.testing.assert_allclose(ours.best_estimator_.coef_, theirs.best_estimator_.coef_, rtol=0, atol=1e-12)
    assert ours.n_features_in_ == theirs.n_features_in_
    if hasattr(theirs, "classes_"):
        np.testing.assert_array_equal(ours.classes_, theirs.classes_)


@pytest.mark.parametrize("case", sorted(SEARCHES))
def test_outer_scorer_and_kept_estimators_are_the_fitted_search(case, tmp_path):
    kwargs, X_, y_ = SEARCHES[case]
    experiment = mp.Experiment(**kwargs, return_estimator=True, return_train_score=True, final_fit=False)
    res = experiment.run(X_, y_, workdir=tmp_path / "wd", n_jobs=2, progress=False)
    reference = cross_validate(_sklearn_search(kwargs, return_train_score=True), X_, y_, cv=kwargs["cv"],
                               scoring=kwargs["scoring"], return_estimator=True, return_train_score=True)
    for metric in kwargs["scoring"]:
        # The scorers that read best_params_/best_estimator_ see what scikit-learn's see.
        np.testing.assert_allclose(res.test_scores[metric], reference[f"test_{metric}"], rtol=0, atol=1e-12,
                                   err_msg=metric)
        np.testing.assert_allclose(res.train_scores[metric], reference[f"train_{metric}"], rtol=0, atol=1e-12,
                                   err_msg=metric)
    assert len(res.estimators_) == len(reference["estimator"])
    for ours, theirs in zip(res.estimators_, reference["estimator"]):
        assert_same_fitted_search(ours, theirs)


def test_predict_calls_the_search_as_cross_val_predict_does(tmp_path):
    kwargs = dict(CLASSIFICATION, param_grid={"C": [0.01, 0.1, 1.0, 10.0]})
    experiment = mp.Experiment(**kwargs, predict="predict_proba", return_estimator=True, final_fit=False)
    res = experiment.run(X, y, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    expected = cross_val_predict(_sklearn_search(kwargs), X, y, cv=kwargs["cv"], method="predict_proba")
    np.testing.assert_allclose(res.predictions, expected, rtol=0, atol=1e-12)
    for (_, test), search in zip(kwargs["cv"].split(X, y), res.estimators_):
        np.testing.assert_allclose(search.predict_proba(X[test]), expected[test], rtol=0, atol=1e-12)


def test_permutation_scorer_sees_the_search_as_permutation_test_score(tmp_path):
    scorer = {"C": selected_C, "acc": "accuracy"}
    kwargs = dict(param_grid={"C": [0.01, 1.0, 100.0]}, cv=3, inner_cv=2)
    experiment = mp.Experiment(LogisticRegression(max_iter=300), scoring=scorer, refit="C", n_permutations=3,
                               random_state=0, final_fit=False, **kwargs)
    res = experiment.run(X, y, workdir=tmp_path / "wd", n_jobs=2, progress=False)
    # One scorer in permutation_test_score: the refit metric, read from the search.
    search = GridSearchCV(LogisticRegression(max_iter=300), kwargs["param_grid"], cv=2, scoring=scorer, refit="C")
    score, permutation_scores, pvalue = permutation_test_score(search, X, y, cv=3, n_permutations=3,
                                                               random_state=0, scoring=selected_C)
    assert res.score == pytest.approx(score, abs=1e-12)
    np.testing.assert_allclose(res.permutation_scores, permutation_scores, rtol=0, atol=1e-12)
    assert res.pvalue == pvalue


def test_refit_false_keeps_the_search_without_best_estimator(tmp_path):
    kwargs = dict(param_grid={"C": [0.01, 1.0]}, cv=3, inner_cv=2, refit=False)
    experiment = mp.Experiment(LogisticRegression(max_iter=300), return_estimator=True, final_fit=False, **kwargs)
    res = experiment.run(X, y, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    reference = cross_validate(GridSearchCV(LogisticRegression(max_iter=300), kwargs["param_grid"], cv=2,
                                            refit=False), X, y, cv=3, return_estimator=True)
    assert np.isnan(res.test_scores["score"]).all() and np.isnan(reference["test_score"]).all()
    for ours, theirs in zip(res.estimators_, reference["estimator"]):
        assert_same_fitted_search(ours, theirs)


def test_kept_searches_unpickle_with_plain_pickle_and_joblib(tmp_path):
    import pickle

    import joblib

    kwargs = dict(CLASSIFICATION, param_grid={"C": [0.1, 1.0]})
    experiment = mp.Experiment(**kwargs, return_estimator=True, final_fit=False)
    res = experiment.run(X, y, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    # The model file is a plain pickle (the scorers are module-level functions here).
    search = pickle.loads((tmp_path / "wd" / "models" / "o0.pkl").read_bytes())
    assert isinstance(search, GridSearchCV)
    np.testing.assert_array_equal(search.predict(X), res.estimators_[0].predict(X))
    joblib.dump(res.estimators_[1], tmp_path / "search.joblib")
    again = joblib.load(tmp_path / "search.joblib")
    assert again.best_params_ == res.estimators_[1].best_params_
    np.testing.assert_array_equal(again.predict_proba(X), res.estimators_[1].predict_proba(X))
