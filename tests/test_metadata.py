"""build(params=): metadata split and routed as cross_validate(params=), with and without routing."""

import json
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, make_scorer, r2_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mempamal as mp

from reference_outputs import (assert_same_predictions, assert_train_scores_match, reference_cross_validate,
                               reference_predictions)

Xc, yc = make_classification(n_samples=48, n_features=5, flip_y=0.15, class_sep=0.6, random_state=0)
Xr, yr = make_regression(n_samples=40, n_features=4, noise=10.0, random_state=0)
wc = np.random.RandomState(0).uniform(0.1, 3.0, 48)
wr = np.random.RandomState(1).uniform(0.1, 3.0, 40)
groups_c = np.arange(48) % 6


def _lr():
    return LogisticRegression(max_iter=300)


PLAIN = {
    # name: (experiment factory, X, y, groups, params)
    "plain-estimator": (lambda: mp.Experiment(_lr(), cv=3, return_train_score=True, predict="predict_proba"),
                        Xc, yc, None, {"sample_weight": wc}),
    "plain-pipeline-groups": (lambda: mp.Experiment(
        make_pipeline(StandardScaler(), _lr()), cv=GroupKFold(3), return_train_score=True),
        Xc, yc, groups_c, {"logisticregression__sample_weight": wc}),
    "nested-estimator-weighted-inner-scorer-groups": (lambda: mp.Experiment(
        _lr(), param_grid={"C": [0.01, 0.1, 1.0]}, cv=GroupKFold(3), inner_cv=GroupKFold(2),
        scoring=["accuracy", "balanced_accuracy"], refit="balanced_accuracy", return_train_score=True,
        predict="predict"), Xc, yc, groups_c, {"sample_weight": wc}),
    "nested-regression-pipeline": (lambda: mp.Experiment(
        make_pipeline(StandardScaler(), Ridge()), param_grid={"standardscaler__with_std": [True, False],
                                                              "ridge__alpha": [0.1, 30.0]},
        cv=3, inner_cv=3, return_train_score=True, predict="predict"), Xr, yr, None, {"ridge__sample_weight": wr}),
}


def _check(experiment, results, X, y, groups, params, routing=False):
    assert_train_scores_match(results, reference_cross_validate(experiment, X, y, groups, params, routing))
    if experiment.predict:
        assert_same_predictions(results.predictions,
                                reference_predictions(experiment, X, y, groups, params, routing))


@pytest.mark.parametrize("case, n_jobs", [(case, 1) for case in sorted(PLAIN)]
                         + [("nested-estimator-weighted-inner-scorer-groups", 2)])
def test_params_without_routing_equal_cross_validate(case, n_jobs, tmp_path):
    make, X, y, groups, params = PLAIN[case]
    experiment = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = experiment.run(X, y, groups=groups, params=params, workdir=tmp_path / "wd",
                                 n_jobs=n_jobs, progress=False)
        _check(experiment, results, X, y, groups, params)
    # The weights matter: without them scikit-learn gives other scores.
    unweighted = reference_cross_validate(experiment, X, y, groups)
    metric = results.metrics[0]
    key = "score" if metric == "score" else metric
    assert not (np.array_equal(unweighted[f"train_{key}"], results.train_scores[metric])
                and np.array_equal(unweighted[f"test_{key}"], results.test_scores[metric]))


def _routed_cases():
    weighted_accuracy = make_scorer(accuracy_score).set_score_request(sample_weight=True)
    weighted_r2 = make_scorer(r2_score).set_score_request(sample_weight=True)
    return {
        "routing-plain-weighted-scorer": (mp.Experiment(
            _lr().set_fit_request(sample_weight=True), cv=3, scoring=weighted_accuracy,
            return_train_score=True, predict="predict_proba"), Xc, yc, None, {"sample_weight": wc}),
        "routing-nested-pipeline-groups": (mp.Experiment(
            make_pipeline(StandardScaler().set_fit_request(sample_weight=True),
                          _lr().set_fit_request(sample_weight=True)),
            param_grid={"logisticregression__C": [0.01, 1.0]}, cv=GroupKFold(3), inner_cv=GroupKFold(2),
            scoring={"acc": weighted_accuracy,
                     "plain": make_scorer(accuracy_score).set_score_request(sample_weight=False)},
            refit="acc", return_train_score=True,
            predict="predict"), Xc, yc, groups_c, {"sample_weight": wc}),
        "routing-nested-regression-fit-only": (mp.Experiment(
            Ridge().set_fit_request(sample_weight=True), param_grid={"alpha": [0.1, 30.0]}, cv=3, inner_cv=2,
            scoring=weighted_r2, return_train_score=True), Xr, yr, None, {"sample_weight": wr}),
    }


@pytest.mark.parametrize("case, n_jobs", [
    ("routing-plain-weighted-scorer", 1), ("routing-nested-pipeline-groups", 1),
    ("routing-nested-regression-fit-only", 1), ("routing-nested-pipeline-groups", 2)])
def test_params_with_metadata_routing_equal_cross_validate(case, n_jobs, tmp_path):
    """Routing is on while the experiment is made and built, off while it runs: the
    tasks (in other processes too) use the build's setting."""
    with sklearn.config_context(enable_metadata_routing=True):
        experiment, X, y, groups, params = _routed_cases()[case]
        workflow = experiment.build(X, y, groups=groups, params=params, workdir=tmp_path / "wd")
    assert not sklearn.get_config()["enable_metadata_routing"]
    results = workflow.run(n_jobs=n_jobs, progress=False)
    with sklearn.config_context(enable_metadata_routing=True):
        _check(experiment, results, X, y, groups, params, routing=True)


def test_unrequested_metadata_with_routing_fails_before_writing(tmp_path):
    with sklearn.config_context(enable_metadata_routing=True):
        experiment = mp.Experiment(_lr(), cv=3)  # nobody requests sample_weight
        with pytest.raises(ValueError, match="'params'.*sample_weight"):
            experiment.build(Xc, yc, params={"sample_weight": wc}, workdir=tmp_path / "wd")
    assert not (tmp_path / "wd").exists()


@pytest.mark.parametrize("params, error, match", [
    ("runs/wd", TypeError, "'params' parameter of Experiment.build must be None or a dict.*workdir="),
    ({"sample_weight": np.ones(5)}, ValueError, "'params'.*one entry per sample \\(48\\).*5 entries"),
    ({"groups": groups_c}, ValueError, "'params'.*must not contain 'groups'"),
    ({"sample_weight": 3.0}, TypeError, "'params'.*sample-aligned arrays"),
])
def test_bad_params_refused_before_anything_is_written(params, error, match, tmp_path):
    with pytest.raises(error, match=match):
        mp.Experiment(_lr(), cv=3).build(Xc, yc, params=params, workdir=tmp_path / "wd")
    assert not (tmp_path / "wd").exists()


def test_params_stored_in_data_digested_and_part_of_the_identity(tmp_path):
    experiment = mp.Experiment(_lr(), cv=3)
    workflow = experiment.build(Xc, yc, params={"sample_weight": wc}, workdir=tmp_path / "wd")
    manifest = json.loads((workflow.workdir / "manifest.json").read_text())
    assert "data/param-0.npy" in manifest["files"]
    assert manifest["metadata"] == {"routing": False, "params": [["sample_weight", "param-0", "numpy"]]}
    np.testing.assert_array_equal(np.load(workflow.workdir / "data" / "param-0.npy"), wc)
    assert (workflow.workdir / "data" / "param-0.npy").stat().st_mode & 0o777 == 0o600
    experiment.build(Xc, yc, params={"sample_weight": wc}, workdir=tmp_path / "wd")  # same: reused
    with pytest.raises(FileExistsError, match="different experiment or data"):
        experiment.build(Xc, yc, params={"sample_weight": wc * 2}, workdir=tmp_path / "wd")
    with pytest.raises(FileExistsError, match="different experiment or data"):
        experiment.build(Xc, yc, workdir=tmp_path / "wd")


def test_without_params_identity_unchanged(tmp_path):
    """Workdirs built before params existed are still recognized (same fingerprint)."""
    from mempamal.store.fingerprint import data_hash, fingerprint

    experiment = mp.Experiment(_lr(), cv=3)
    workflow = experiment.build(Xc, yc, workdir=tmp_path / "wd")
    manifest = json.loads((workflow.workdir / "manifest.json").read_text())
    assert manifest["fingerprint"] == fingerprint({"experiment": experiment.fingerprint(),
                                                   "data": data_hash(Xc, yc, None)})


def test_params_with_permutations_equal_permutation_test_score(tmp_path):
    from sklearn.model_selection import GridSearchCV, permutation_test_score

    experiment = mp.Experiment(_lr(), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2, n_permutations=3,
                               random_state=0)
    results = experiment.run(Xc, yc, params={"sample_weight": wc}, workdir=tmp_path / "wd", n_jobs=1,
                             progress=False)
    score, permutation_scores, pvalue = permutation_test_score(
        GridSearchCV(_lr(), {"C": [0.1, 1.0]}, cv=2), Xc, yc, cv=3, n_permutations=3, random_state=0,
        params={"sample_weight": wc})
    np.testing.assert_allclose(results.permutation_scores, permutation_scores, rtol=0, atol=1e-12)
    assert (results.score, results.pvalue) == (pytest.approx(score, abs=1e-12), pvalue)


@pytest.mark.parametrize("nested", [True, False])
def test_final_model_with_sample_weight_equals_grid_search_fit(nested, tmp_path):
    """The final search and refit on all the data get the metadata too, as GridSearchCV.fit(X, y, **params)."""
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    grid = {"C": [0.01, 0.1, 1.0]}
    estimator = _lr()
    experiment = mp.Experiment(estimator, param_grid=grid if nested else None, cv=3, inner_cv=3 if nested else None,
                               return_train_score=True)
    res = experiment.run(Xc, yc, params={"sample_weight": wc}, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    if nested:
        search = GridSearchCV(estimator, grid, cv=3, return_train_score=True).fit(Xc, yc, sample_weight=wc)
        assert res.best_params_ == search.best_params_
        for key, value in search.cv_results_.items():
            if key.startswith(("mean_test", "std_test", "rank_test", "split", "mean_train", "std_train")):
                np.testing.assert_allclose(res.final_cv_results_[key], value, rtol=0, atol=1e-12, err_msg=key)
        reference = search.best_estimator_
    else:
        reference = clone(estimator).fit(Xc, yc, sample_weight=wc)
    unweighted = clone(estimator).set_params(**(res.best_params_ if nested else {})).fit(Xc, yc)
    np.testing.assert_allclose(res.best_estimator_.predict_proba(Xc), reference.predict_proba(Xc), rtol=0, atol=1e-12)
    # The weights matter here: without them the model differs (the test can fail).
    assert np.abs(unweighted.predict_proba(Xc) - reference.predict_proba(Xc)).max() > 1e-6
