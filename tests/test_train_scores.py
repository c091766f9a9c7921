"""return_train_score=True: outer train scores and inner train entries equal scikit-learn's."""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GroupKFold, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mempamal as mp

from reference_outputs import assert_train_scores_match, reference_cross_validate

Xc, yc = make_classification(n_samples=48, n_features=5, random_state=0)
Xr, yr = make_regression(n_samples=40, n_features=4, noise=5.0, random_state=0)
groups_c = np.arange(48) % 6
groups_r = np.arange(40) % 5


def _classifier_pipeline(copy=True):
    return make_pipeline(StandardScaler(copy=copy), LogisticRegression(max_iter=300))


CASES = {
    # name: (experiment factory, X, y, groups)
    "plain-classifier-multimetric": (lambda: mp.Experiment(
        LogisticRegression(max_iter=300), cv=3, scoring=["accuracy", "f1"], refit="f1", return_train_score=True),
        Xc, yc, None),
    "plain-regression-pipeline-groups": (lambda: mp.Experiment(
        make_pipeline(StandardScaler(), Ridge()), cv=GroupKFold(5), scoring="r2", return_train_score=True),
        Xr, yr, groups_r),
    "nested-pipeline-prefix-sharing": (lambda: mp.Experiment(
        _classifier_pipeline(), param_grid={"standardscaler__with_mean": [True, False],
                                            "logisticregression__C": [0.1, 1.0]},
        cv=3, inner_cv=3, return_train_score=True), Xc, yc, None),
    "nested-copy-false-prefix-shared": (lambda: mp.Experiment(
        _classifier_pipeline(copy=False), param_grid={"logisticregression__C": [0.1, 1.0]},
        cv=3, inner_cv=2, scoring="neg_log_loss", return_train_score=True), Xc, yc, None),
    "nested-regression-groups-multimetric": (lambda: mp.Experiment(
        Ridge(), param_grid={"alpha": [0.1, 10.0]}, cv=GroupKFold(5), inner_cv=GroupKFold(2),
        scoring={"r2": "r2", "mae": "neg_mean_absolute_error"}, refit="mae", return_train_score=True),
        Xr, yr, groups_r),
}


# Every case with n_jobs=1; two representative ones with n_jobs=2 too (keeps the suite short).
RUNS = [(case, 1) for case in sorted(CASES)] + [("nested-pipeline-prefix-sharing", 2),
                                                ("plain-classifier-multimetric", 2)]


@pytest.mark.parametrize("case, n_jobs", RUNS)
def test_train_scores_equal_cross_validate_and_grid_search(case, n_jobs, tmp_path):
    make, X, y, groups = CASES[case]
    experiment = make()
    results = experiment.run(X, y, groups=groups, workdir=tmp_path / "wd", n_jobs=n_jobs, progress=False)
    assert_train_scores_match(results, reference_cross_validate(experiment, X, y, groups))
    frame = results.to_frame()
    for metric in results.metrics:
        np.testing.assert_array_equal(frame[f"train_{metric}"], results.train_scores[metric])


def test_without_return_train_score_no_train_entries(tmp_path):
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=2, inner_cv=2)
    results = experiment.run(Xc, yc, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    assert results.train_scores is None
    assert not [key for key in results.cv_results(0) if "train" in key]
    assert not [column for column in results.to_frame() if column.startswith("train_")]


def test_refit_callable_sees_train_entries_like_grid_search(tmp_path):
    """A refit callable gets the same cv_results_ as GridSearchCV's, train keys included."""
    def best_train(cv_results):
        return int(np.argmax(cv_results["mean_train_score"]))

    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.01, 1.0, 100.0]},
                               cv=KFold(3), inner_cv=2, refit=best_train, return_train_score=True)
    results = experiment.run(Xc, yc, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    reference = reference_cross_validate(experiment, Xc, yc)
    assert_train_scores_match(results, reference)
    assert [search.best_index_ for search in reference["estimator"]] == results.best_index


def test_failed_fits_give_error_score_train_scores(tmp_path):
    """A failing fit scores error_score on train too, as _fit_and_score does."""
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [-1.0, 1.0]},
                               cv=2, inner_cv=2, return_train_score=True, error_score=-5.0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = experiment.run(Xc, yc, workdir=tmp_path / "wd", n_jobs=1, progress=False)
        reference = reference_cross_validate(experiment, Xc, yc)
    assert_train_scores_match(results, reference)
    assert (results.cv_results(0)["split0_train_score"][0]) == -5.0


def test_train_scores_same_whatever_the_chunking(tmp_path):
    """Prefix sharing (auto chunks) and one point per task give the same train tables."""
    def run(chunk_size, name):
        experiment = CASES["nested-pipeline-prefix-sharing"][0]()
        workflow = experiment.build(Xc, yc, workdir=tmp_path / name, chunk_size=chunk_size)
        return workflow.run(n_jobs=1, progress=False)

    auto, single = run("auto", "auto"), run(1, "single")
    for fold in range(auto.n_outer):
        a, b = auto.cv_results(fold), single.cv_results(fold)
        for key in a:
            if "train" in key:
                np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(auto.train_scores["score"], single.train_scores["score"])
