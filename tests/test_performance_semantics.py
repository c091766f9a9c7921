"""What the performance work must not change (speed itself is in benchmarks/).

- the local backend's worker pool is mempamal's own: reused across the runs
  of one ``LocalBackend`` instance, and
  scikit-learn's ``n_jobs`` (joblib's pool) keeps working next to it;
- a grid point reusing a Pipeline prefix skips copying the training data,
  and fit tasks reuse the slices of their split: neither may let an
  in-place estimator leak into another point or another task;
- a worker's cached workdir is dropped when the workdir is rebuilt;
- thread limiting can be turned off, and is on by default.
"""

import json

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.datasets import load_iris, make_classification
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import mempamal as mp
from mempamal.backends.local import LocalBackend

from conftest import assert_matches_sklearn


def _pids(workdir):
    return {json.loads(path.read_text())["pid"] for path in (workdir / "outputs").glob("*/*.json")}


def _small_nested():
    return mp.Experiment(LogisticRegression(max_iter=500), {"C": [0.1, 1.0, 10.0]}, cv=3, inner_cv=3)


def test_local_pool_is_reused_across_runs_of_one_instance_and_sklearn_n_jobs_still_works(tmp_path):
    X, y = load_iris(return_X_y=True)
    with LocalBackend() as local:
        first = _small_nested().build(X, y, workdir=tmp_path / "a", chunk_size=1)
        first.run(backend=local, n_jobs=2, progress=False)
        # joblib's own pool (GridSearchCV/cross_validate n_jobs) next to ours.
        search = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.1, 1.0, 10.0]}, cv=3, n_jobs=2)
        reference = cross_validate(search, X, y, cv=3, n_jobs=2)
        second = _small_nested().build(X, y, workdir=tmp_path / "b", chunk_size=1)
        results = second.run(backend=local, n_jobs=2, progress=False)
    np.testing.assert_array_equal(results.test_scores["score"], reference["test_score"])
    assert _pids(tmp_path / "a") & _pids(tmp_path / "b"), "the second run should reuse the first run's workers"
    # By name, a backend is the run's own: a third run starts workers of its own.
    third = _small_nested().build(X, y, workdir=tmp_path / "c", chunk_size=1)
    third.run(backend="local", n_jobs=2, progress=False)
    assert not _pids(tmp_path / "c") & (_pids(tmp_path / "a") | _pids(tmp_path / "b"))


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_in_place_first_step_with_shared_prefix_equals_sklearn(tmp_path, n_jobs):
    # StandardScaler(copy=False) scales its input in place, when fitting and
    # when transforming the test data for scoring: every point must still
    # see pristine data, whether it fits the prefix or reuses it.
    X, y = make_classification(n_samples=120, n_features=8, random_state=0)
    pipeline = Pipeline([("scale", StandardScaler(copy=False)), ("pca", PCA(svd_solver="full")),
                         ("clf", LogisticRegression(max_iter=500))])
    grid = {"pca__n_components": [2, 4], "clf__C": [0.01, 1.0, 100.0]}
    experiment = mp.Experiment(pipeline, grid, cv=StratifiedKFold(3), inner_cv=StratifiedKFold(2))
    for chunk_size in (1, 3, 6):
        workdir = tmp_path / f"wd-{chunk_size}"
        results = experiment.build(X, y, workdir=workdir, chunk_size=chunk_size).run(n_jobs=n_jobs, progress=False)
        assert_matches_sklearn(results, experiment, X, y, atol=0)


def test_rebuilt_workdir_is_not_served_from_the_cached_context(tmp_path):
    X, y = load_iris(return_X_y=True)
    workdir = tmp_path / "wd"
    # 2x2 grid, no final search (unchecked here; test_final_model's): the point is the data, not the graph size
    experiment = mp.Experiment(LogisticRegression(max_iter=500), {"C": [0.1, 10.0]}, cv=3, inner_cv=2, final_fit=False)
    experiment.build(X, y, workdir=workdir).run(n_jobs=1, progress=False)
    # Same process (same context cache), same workdir, other data.
    X_other, y_other = X[::-1].copy(), y[::-1].copy()
    results = experiment.build(X_other, y_other, workdir=workdir, overwrite=True).run(n_jobs=1, progress=False)
    assert_matches_sklearn(results, experiment, X_other, y_other, atol=0)


class ReportsBlasThreads(BaseEstimator):
    """Scores the number of BLAS threads its worker process allows."""

    def __init__(self, value=0):
        self.value = value

    def fit(self, X, y):
        return self

    def score(self, X, y):
        from threadpoolctl import threadpool_info

        return float(max([info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"],
                         default=-1))


def _blas_threads_in_parent():
    from threadpoolctl import threadpool_info

    return float(max([info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"],
                     default=-1))


def test_thread_limiting_is_on_by_default_and_can_be_turned_off(tmp_path):
    X, y = np.zeros((20, 2)), np.zeros(20)
    experiment = mp.Experiment(ReportsBlasThreads(), cv=KFold(2))
    limited = experiment.build(X, y, workdir=tmp_path / "limited").run(n_jobs=2, progress=False,
                                                                        threads_per_worker=1)
    assert set(limited.test_scores["score"]) == {1.0}
    free = experiment.build(X, y, workdir=tmp_path / "free").run(n_jobs=2, progress=False, limit_threads=False)
    assert set(free.test_scores["score"]) == {_blas_threads_in_parent()}


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_threads_per_worker_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="'threads_per_worker' parameter of the local backend"):
        LocalBackend(threads_per_worker=bad)
