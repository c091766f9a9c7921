"""Inner splits are sliced from X itself (X[outer_train[inner_train]]), not from a
copy of the outer training subset: the same rows, so the same results as scikit-learn,
for arrays, DataFrames, sparse matrices and pairwise (precomputed kernel) estimators."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.datasets import load_iris
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.svm import SVC

import mempamal as mp

from conftest import assert_matches_sklearn


def _data(kind):
    X, y = load_iris(return_X_y=True)
    if kind == "pandas":
        import pandas as pd

        return pd.DataFrame(X, columns=list("abcd"), index=np.arange(150)[::-1] * 3), y
    if kind == "sparse":
        return sp.csr_matrix(X), y
    if kind == "precomputed":
        return X @ X.T, y
    return X, y


@pytest.mark.parametrize("kind", ["numpy", "pandas", "sparse", "precomputed"])
def test_nested_results_equal_scikit_learn_whatever_x_is(tmp_path, kind):
    X, y = _data(kind)
    estimator = SVC(kernel="precomputed") if kind == "precomputed" else SVC()
    experiment = mp.Experiment(estimator, param_grid={"C": [0.1, 1.0, 10.0]},
                               cv=StratifiedKFold(3, shuffle=True, random_state=0),
                               inner_cv=KFold(3, shuffle=True, random_state=1), final_fit=False)
    results = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1).run(n_jobs=1, progress=False)
    assert_matches_sklearn(results, experiment, X, y)


class _ZeroesItsInput(BaseEstimator):
    """Fits by overwriting X in place (an estimator with copy=False at its worst)."""

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        self.first_ = float(X[0, 0])
        X[...] = 0.0
        return self

    def score(self, X, y):
        return float(X[0, 0])


def test_final_refit_on_a_copy_on_write_map_never_changes_the_data_file(tmp_path):
    from mempamal.store import integrity
    from mempamal import store

    X, y = load_iris(return_X_y=True)
    workflow = mp.Experiment(_ZeroesItsInput(), param_grid={"C": [1.0]}, cv=3, inner_cv=2).build(
        X, y, workdir=tmp_path / "wd")
    workflow.run(n_jobs=1, progress=False)
    integrity.verify_build_files(workflow.workdir, store.read_json(workflow.workdir / "manifest.json"))
    np.testing.assert_array_equal(np.load(workflow.workdir / "data" / "X.npy"), X)
    assert mp.Results.load(workflow.workdir).best_estimator_.first_ == X[0, 0]


class _ZeroesItsInputAfterReading(BaseEstimator):
    """Scores what it read before overwriting its training X: leftovers of another fit show."""

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        self.seen_ = float(np.asarray(X).sum()) * self.C
        X[...] = 0.0
        return self

    def score(self, X, y):
        value = self.seen_ + float(np.asarray(X).sum())
        X[...] = 0.0  # the test rows too
        return value


@pytest.mark.parametrize("chunk_size", [1, "auto"])
def test_large_splits_handed_to_the_task_still_give_every_fit_fresh_rows(tmp_path, monkeypatch, chunk_size):
    # Above KEEP_SPLIT_BYTES a worker does not keep an inner split for its
    # next task and the last point of a task fits on the slices in place.
    # With the threshold at 0 (in-process run), every split is "large": a
    # point or a task that saw another one's overwritten rows would score
    # differently from scikit-learn, which slices fresh rows for every fit.
    from mempamal.engine import context

    monkeypatch.setattr(context, "KEEP_SPLIT_BYTES", 0)
    X, y = load_iris(return_X_y=True)
    experiment = mp.Experiment(_ZeroesItsInputAfterReading(), param_grid={"C": [0.5, 1.0, 2.0, 3.0]},
                               cv=KFold(3, shuffle=True, random_state=0), inner_cv=KFold(2), final_fit=False)
    results = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=chunk_size).run(n_jobs=1, progress=False)
    assert_matches_sklearn(results, experiment, X, y)
    np.testing.assert_array_equal(np.load(tmp_path / "wd" / "data" / "X.npy"), X)
