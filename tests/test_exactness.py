"""Every result equals scikit-learn's own functions on the same data (1e-12)."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_diabetes, load_iris, make_classification, make_regression
from sklearn.decomposition import PCA
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import balanced_accuracy_score, make_scorer
from sklearn.model_selection import (GroupKFold, KFold, ShuffleSplit, StratifiedKFold,
                                     permutation_test_score)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import mempamal as mp
from mempamal import store

from conftest import assert_matches_sklearn


def iris():
    return load_iris(return_X_y=True)


def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X[:200], y[:200]


class FailsForLargeC(ClassifierMixin, BaseEstimator):
    """Logistic regression whose fit raises for C > 1 (to test error_score)."""

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        if self.C > 1:
            raise ValueError("C too large for this test estimator")
        self.model_ = LogisticRegression(C=self.C, max_iter=500).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)


def run(experiment, X, y, tmp_path, groups=None, **kwargs):
    workflow = experiment.build(X, y, groups=groups, workdir=tmp_path / "wd", chunk_size=kwargs.pop("chunk_size", "auto"))
    return workflow.run(n_jobs=kwargs.pop("n_jobs", 1), progress=False)


def test_plain_cv_classification_with_int_cv_equals_cross_validate(tmp_path):
    X, y = iris()
    experiment = mp.Experiment(LogisticRegression(max_iter=500), cv=5)
    assert_matches_sklearn(run(experiment, X, y, tmp_path), experiment, X, y)


def test_plain_cv_regression_with_shuffled_kfold_equals_cross_validate(tmp_path):
    X, y = diabetes()
    experiment = mp.Experiment(Ridge(alpha=0.5), cv=KFold(4, shuffle=True, random_state=3), scoring="r2")
    assert_matches_sklearn(run(experiment, X, y, tmp_path), experiment, X, y)


def test_nested_list_of_dicts_grid_with_shufflesplit_equals_gridsearch(tmp_path):
    X, y = iris()
    grid = [{"kernel": ["linear"], "C": [0.1, 1.0]}, {"kernel": ["rbf"], "C": [1.0, 10.0], "gamma": [0.1, 1.0]}]
    experiment = mp.Experiment(SVC(), param_grid=grid, cv=ShuffleSplit(3, test_size=0.3, random_state=0),
                               inner_cv=StratifiedKFold(3, shuffle=True, random_state=1))
    assert_matches_sklearn(run(experiment, X, y, tmp_path), experiment, X, y)


@pytest.mark.parametrize("chunk_size", ["auto", 1, 3])
def test_nested_pipeline_grid_over_two_steps_with_prefix_sharing_equals_gridsearch(tmp_path, chunk_size):
    X, y = make_classification(120, 12, n_informative=5, random_state=0)
    pipeline = Pipeline([("scale", StandardScaler()), ("pca", PCA(random_state=0)),
                         ("clf", LogisticRegression(max_iter=500))])
    grid = {"pca__n_components": [2, 5], "clf__C": [0.01, 0.1, 1.0]}
    experiment = mp.Experiment(pipeline, param_grid=grid, cv=StratifiedKFold(3), inner_cv=3)
    results = run(experiment, X, y, tmp_path, chunk_size=chunk_size)
    assert_matches_sklearn(results, experiment, X, y)


def test_multimetric_regression_with_named_refit_equals_gridsearch(tmp_path):
    X, y = diabetes()
    scoring = {"r2": "r2", "mae": "neg_mean_absolute_error"}
    experiment = mp.Experiment(Ridge(), param_grid={"alpha": [0.01, 1.0, 100.0]}, cv=KFold(3),
                               inner_cv=KFold(3), scoring=scoring, refit="mae")
    results = run(experiment, X, y, tmp_path)
    assert results.metrics == ["r2", "mae"]
    assert_matches_sklearn(results, experiment, X, y)


def test_callable_scorer_equals_gridsearch(tmp_path):
    X, y = iris()
    scorer = make_scorer(balanced_accuracy_score)
    experiment = mp.Experiment(LogisticRegression(max_iter=500), param_grid={"C": [0.01, 1.0]},
                               cv=3, inner_cv=3, scoring=scorer)
    assert_matches_sklearn(run(experiment, X, y, tmp_path), experiment, X, y)


def test_failing_fit_scores_nan_and_keeps_the_error_like_error_score_nan(tmp_path):
    X, y = iris()
    experiment = mp.Experiment(FailsForLargeC(), param_grid={"C": [0.1, 10.0, 1.0]}, cv=3, inner_cv=3)
    results = run(experiment, X, y, tmp_path)
    assert_matches_sklearn(results, experiment, X, y)
    table = results.cv_results(0)
    assert np.isnan(table["mean_test_score"][1]) and table["rank_test_score"][1] == 3
    assert results.raw["inner"][0]["n_failed_fits"] == 3
    output = mp.Workflow.open(tmp_path / "wd")
    fit_outputs = [t.id for t in output.tasks if t.kind == "fit"]
    import json
    texts = [json.loads(store.output_path(tmp_path / "wd", i).read_text()) for i in fit_outputs]
    assert any("C too large" in (err or "") for out in texts for err in out["errors"])


def test_ties_in_inner_score_pick_the_first_point_like_sklearn(tmp_path):
    X, y = iris()
    grid = {"strategy": ["most_frequent", "prior"], "constant": [None, 1]}
    experiment = mp.Experiment(DummyClassifier(), param_grid=grid, cv=3, inner_cv=3)
    results = run(experiment, X, y, tmp_path)
    assert_matches_sklearn(results, experiment, X, y)
    assert all(index == 0 for index in results.best_index)


def test_multitarget_regression_with_2d_y_equals_gridsearch(tmp_path):
    X, y = make_regression(90, 6, n_targets=3, noise=5.0, random_state=0)
    experiment = mp.Experiment(Ridge(), param_grid={"alpha": [0.1, 10.0]}, cv=3, inner_cv=3)
    assert_matches_sklearn(run(experiment, X, y, tmp_path), experiment, X, y)


def test_pandas_dataframe_input_equals_gridsearch(tmp_path):
    X, y = iris()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(4)])
    series = pd.Series(y, name="target")
    experiment = mp.Experiment(LogisticRegression(max_iter=500), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=3)
    assert_matches_sklearn(run(experiment, frame, series, tmp_path), experiment, frame, series)


def test_sparse_input_equals_gridsearch(tmp_path):
    X, y = iris()
    X_sparse = sp.csr_matrix(np.where(X > 3, X, 0.0))
    experiment = mp.Experiment(LogisticRegression(max_iter=500), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=3)
    assert_matches_sklearn(run(experiment, X_sparse, y, tmp_path), experiment, X_sparse, y)


def test_group_kfold_outer_and_inner_with_groups_equals_gridsearch(tmp_path):
    X, y = iris()
    groups = np.arange(len(y)) % 10
    experiment = mp.Experiment(LogisticRegression(max_iter=500), param_grid={"C": [0.1, 1.0]},
                               cv=GroupKFold(5), inner_cv=GroupKFold(3), final_fit=False)  # unchecked here
    assert_matches_sklearn(run(experiment, X, y, tmp_path, groups=groups), experiment, X, y, groups)


def test_permutation_test_plain_cv_equals_permutation_test_score(tmp_path):
    X, y = iris()
    estimator = LogisticRegression(max_iter=300)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    experiment = mp.Experiment(estimator, cv=cv, n_permutations=6, random_state=7)
    results = run(experiment, X, y, tmp_path, n_jobs=2)
    score, permutation_scores, pvalue = permutation_test_score(
        estimator, X, y, cv=cv, n_permutations=6, random_state=7)
    assert results.score == score
    np.testing.assert_array_equal(results.permutation_scores, permutation_scores)
    assert results.pvalue == pvalue


def test_permutation_test_with_groups_and_nested_search_equals_permutation_test_score(tmp_path):
    from sklearn.model_selection import GridSearchCV

    X, y = iris()
    groups = np.arange(len(y)) % 6
    estimator = LogisticRegression(max_iter=300)
    grid = {"C": [0.1, 1.0]}
    experiment = mp.Experiment(estimator, param_grid=grid, cv=3, inner_cv=3, final_fit=False,  # unchecked here
                               n_permutations=2, random_state=0, scoring="accuracy")
    results = run(experiment, X, y, tmp_path, groups=groups)
    search = GridSearchCV(estimator, grid, cv=3, scoring="accuracy")
    score, permutation_scores, pvalue = permutation_test_score(
        search, X, y, groups=groups, cv=3, n_permutations=2, random_state=0, scoring="accuracy")
    assert results.score == score
    np.testing.assert_array_equal(results.permutation_scores, permutation_scores)
    assert results.pvalue == pvalue
