"""Grow without redoing (issue 24 part 2): ``build(..., reuse=True)`` keeps the finished work whose definition is
unchanged, runs only the rest, and the grown results equal scikit-learn's own run of the GROWN experiment.

Fits are counted by the estimator itself (each ``fit`` appends a line to a log file, whatever process runs
it), so "runs only the new points" is what really executed, not what mempamal says it did.
"""

import json
import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (GridSearchCV, KFold, RepeatedKFold, RepeatedStratifiedKFold,
                                     cross_validate, permutation_test_score)

import mempamal as mp
from mempamal import store
from mempamal.exceptions import InvalidParameterError

from conftest import assert_matches_sklearn


class Counted(ClassifierMixin, BaseEstimator):
    """Logistic regression that appends its C to ``log`` at every fit (None: counts nothing)."""

    def __init__(self, C=1.0, log=None):
        self.C = C
        self.log = log

    def fit(self, X, y):
        if self.log is not None:
            with open(self.log, "a") as handle:
                handle.write(f"{self.C}\n")
        self.model_ = LogisticRegression(C=self.C, max_iter=500).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)

    def decision_function(self, X):
        return self.model_.decision_function(X)


@pytest.fixture
def data():
    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture
def log(tmp_path):
    return tmp_path / "fits.log"


def fits(log):
    """The C of every fit executed since the last call (the log is emptied)."""
    if not log.exists():
        return []
    values = [float(line) for line in log.read_text().split()]
    log.unlink()
    return values


def grown(experiment_kwargs, X, y, workdir, **build):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # growing keeps everything it may: no "kept nothing" warning
        wf = mp.Experiment(**experiment_kwargs).build(X, y, workdir=workdir, reuse=True, **build)
    return wf


def n_tasks(wf, keep):
    """How many tasks of ``wf`` ``keep(task)`` selects (the chunking is the build's own)."""
    return sum(1 for task in wf.table if keep(task))


def reference(estimator, grid, X, y, cv=3, inner_cv=3):
    return cross_validate(GridSearchCV(estimator, grid, cv=inner_cv), X, y, cv=cv, return_estimator=True)


# ------------------------------------------------------------------ a) more grid values
@pytest.mark.parametrize("chunk_size", [1, 3, "auto"])
def test_more_grid_values_run_only_the_new_points_fits(data, tmp_path, log, chunk_size):
    X, y = data
    small = {"C": [0.1, 10.0]}
    big = {"C": [0.01, 0.1, 1.0, 10.0, 100.0]}  # the old points sit between new ones: other indices
    wd = tmp_path / "wd"
    old = mp.Experiment(Counted(log=str(log)), param_grid=small, cv=3, inner_cv=3, final_fit=False)
    old.build(X, y, workdir=wd, chunk_size=2).run(n_jobs=1, progress=False)
    fits(log)
    exp = dict(estimator=Counted(log=str(log)), param_grid=big, cv=3, inner_cv=3, final_fit=False)
    wf = grown(exp, X, y, wd, chunk_size=chunk_size)
    status = wf.status()
    assert status.reused["kept_points"] == 2 * 3 * 3 and status.reused["changed"] == []
    results = wf.run(n_jobs=1, progress=False)
    executed = fits(log)
    # Inner fits of the 3 new points only (3 outer x 3 inner), then one refit per outer fold.
    assert len(executed) == 3 * 3 * 3 + 3
    assert sum(c in small["C"] for c in executed) <= 3  # an old point fits only as an outer fold's refit
    assert_matches_sklearn(results, mp.Experiment(Counted(), param_grid=big, cv=3, inner_cv=3), X, y)


def test_a_pipeline_grid_grown_with_shared_prefixes_equals_gridsearch(data, tmp_path):
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data
    pipe = Pipeline([("scale", StandardScaler()), ("pca", PCA(random_state=0)), ("clf", Counted())])
    wd = tmp_path / "wd"
    mp.Experiment(pipe, param_grid={"pca__n_components": [2], "clf__C": [0.1, 1.0]}, cv=3, inner_cv=3,
                  final_fit=False).build(X, y, workdir=wd, chunk_size=4).run(n_jobs=1, progress=False)
    # New points share the old ones' PCA prefix, and chunks mix old and new points.
    grid = {"pca__n_components": [2, 3], "clf__C": [0.1, 1.0, 10.0]}
    wf = grown(dict(estimator=pipe, param_grid=grid, cv=3, inner_cv=3, final_fit=False), X, y, wd, chunk_size=4)
    assert wf.status().reused["kept_points"] == 2 * 3 * 3
    assert_matches_sklearn(wf.run(n_jobs=1, progress=False), mp.Experiment(pipe, param_grid=grid, cv=3, inner_cv=3),
                           X, y)


def test_another_list_of_dicts_entry_keeps_the_first_entrys_fits(data, tmp_path, log):
    X, y = data
    first = {"C": [0.1, 1.0]}
    wd = tmp_path / "wd"
    mp.Experiment(Counted(log=str(log)), param_grid=[first], cv=3, inner_cv=3, final_fit=False).build(
        X, y, workdir=wd).run(n_jobs=1, progress=False)
    fits(log)
    grid = [first, {"C": [5.0, 50.0]}]
    wf = grown(dict(estimator=Counted(log=str(log)), param_grid=grid, cv=3, inner_cv=3, final_fit=False), X, y, wd)
    results = wf.run(n_jobs=2, progress=False)
    executed = fits(log)
    assert len(executed) == 2 * 3 * 3 + 3
    assert sorted(set(executed) - set(first["C"])) == [5.0, 50.0]
    assert_matches_sklearn(results, mp.Experiment(Counted(), param_grid=grid, cv=3, inner_cv=3), X, y)


def test_same_grid_rechunked_keeps_every_fit_task(data, tmp_path, log):
    X, y = data
    grid = {"C": [0.1, 1.0, 10.0]}
    wd = tmp_path / "wd"
    mp.Experiment(Counted(log=str(log)), param_grid=grid, cv=2, inner_cv=2, final_fit=False, n_permutations=1).build(
        X, y, workdir=wd, chunk_size=1).run(n_jobs=1, progress=False)
    fits(log)
    # Another experiment (one more permutation) chunked otherwise: every fit of the old build is kept whole.
    exp = dict(estimator=Counted(log=str(log)), param_grid=grid, cv=2, inner_cv=2, final_fit=False, n_permutations=2)
    wf = grown(exp, X, y, wd, chunk_size=3)
    status = wf.status()
    kinds = status.by_kind
    assert kinds["fit"].done_main == kinds["fit"].total_main  # every main fit task assembled from the old rows
    assert kinds["select"].done == 2 + 2  # the main selects and the first permutation's
    wf.run(n_jobs=1, progress=False)
    assert len(fits(log)) == 3 * 2 * 2 + 2  # the new permutation only


def test_grown_twice_before_running_keeps_the_first_builds_fits(data, tmp_path, log):
    X, y = data
    wd = tmp_path / "wd"
    mp.Experiment(Counted(log=str(log)), param_grid={"C": [0.1, 1.0]}, cv=2, inner_cv=2, final_fit=False).build(
        X, y, workdir=wd, chunk_size=3).run(n_jobs=1, progress=False)
    fits(log)
    grown(dict(estimator=Counted(log=str(log)), param_grid={"C": [0.1, 1.0, 10.0]}, cv=2, inner_cv=2,
               final_fit=False), X, y, wd, chunk_size=3)  # not run: its kept rows wait in reused.json
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    wf = grown(dict(estimator=Counted(log=str(log)), param_grid=grid, cv=2, inner_cv=2, final_fit=False), X, y, wd,
               chunk_size=3)
    assert wf.status().reused["kept_points"] == 2 * 2 * 2
    results = wf.run(n_jobs=1, progress=False)
    assert len(fits(log)) == 2 * 2 * 2 + 2
    assert_matches_sklearn(results, mp.Experiment(Counted(), param_grid=grid, cv=2, inner_cv=2), X, y)


# ------------------------------------------------------------------ b) more permutations
def test_more_permutations_keep_the_first_ones(data, tmp_path, log):
    X, y = data
    grid = {"C": [0.1, 1.0]}
    wd = tmp_path / "wd"
    mp.Experiment(Counted(log=str(log)), param_grid=grid, cv=3, inner_cv=3, final_fit=False, n_permutations=2,
                  random_state=0).build(X, y, workdir=wd).run(n_jobs=1, progress=False)
    fits(log)
    exp = dict(estimator=Counted(log=str(log)), param_grid=grid, cv=3, inner_cv=3, final_fit=False,
               n_permutations=5, random_state=0)
    wf = grown(exp, X, y, wd)
    status = wf.status()
    # Every fit and select of the real data and of the first two permutations.
    assert status.kept == n_tasks(wf, lambda t: t.kind != "final" and t.split_set in ("main", "perm-0", "perm-1"))
    assert status.done == status.kept
    results = wf.run(n_jobs=2, progress=False)
    assert len(fits(log)) == 3 * (2 * 3 * 3 + 3)  # three new permutations, nothing else
    score, permutation_scores, pvalue = permutation_test_score(
        GridSearchCV(Counted(), grid, cv=3), X, y, cv=3, n_permutations=5, random_state=0)
    assert results.score == score
    np.testing.assert_array_equal(results.permutation_scores, permutation_scores)
    assert results.pvalue == pvalue


def test_more_permutations_plain_cv(data, tmp_path, log):
    X, y = data
    wd = tmp_path / "wd"
    mp.Experiment(Counted(log=str(log)), cv=4, n_permutations=3, random_state=3).build(
        X, y, workdir=wd).run(n_jobs=1, progress=False)
    fits(log)
    wf = grown(dict(estimator=Counted(log=str(log)), cv=4, n_permutations=6, random_state=3), X, y, wd)
    assert wf.status().kept == 4 * (1 + 3) + 1  # score tasks of the real data and 3 permutations, the final fit
    results = wf.run(n_jobs=1, progress=False)
    assert len(fits(log)) == 4 * 3
    score, permutation_scores, pvalue = permutation_test_score(Counted(), X, y, cv=4, n_permutations=6,
                                                               random_state=3)
    assert results.score == score
    np.testing.assert_array_equal(results.permutation_scores, permutation_scores)
    assert results.pvalue == pvalue


# ------------------------------------------------------------------ c) more repeats
@pytest.mark.parametrize("splitter", [RepeatedKFold, RepeatedStratifiedKFold])
def test_more_repeats_keep_the_first_repeats(data, tmp_path, log, splitter):
    X, y = data
    grid = {"C": [0.1, 1.0]}
    wd = tmp_path / "wd"
    mp.Experiment(Counted(log=str(log)), param_grid=grid, cv=splitter(n_splits=3, n_repeats=1, random_state=0),
                  inner_cv=3, final_fit=False).build(X, y, workdir=wd).run(n_jobs=1, progress=False)
    fits(log)
    cv = splitter(n_splits=3, n_repeats=3, random_state=0)
    wf = grown(dict(estimator=Counted(log=str(log)), param_grid=grid, cv=cv, inner_cv=3, final_fit=False), X, y, wd)
    # The first repeat's three outer folds: their fits and selects.
    assert wf.status().kept == n_tasks(wf, lambda t: t.kind != "final" and t.outer in (0, 1, 2))
    results = wf.run(n_jobs=1, progress=False)
    assert len(fits(log)) == 6 * (2 * 3 + 1)  # six new outer folds: their inner fits and refits
    assert_matches_sklearn(results, mp.Experiment(Counted(), param_grid=grid, cv=cv, inner_cv=3), X, y)


# ------------------------------------------------------------------ d) final_fit, return_estimator later
def test_final_fit_switched_on_later_runs_only_the_final_search(data, tmp_path, log):
    X, y = data
    grid = {"C": [0.1, 1.0, 10.0]}
    wd = tmp_path / "wd"
    mp.Experiment(Counted(log=str(log)), param_grid=grid, cv=3, inner_cv=3, final_fit=False).build(
        X, y, workdir=wd).run(n_jobs=1, progress=False)
    fits(log)
    wf = grown(dict(estimator=Counted(log=str(log)), param_grid=grid, cv=3, inner_cv=3, final_fit=True), X, y, wd)
    assert wf.status().kept == n_tasks(wf, lambda t: t.kind in ("fit", "select"))
    results = wf.run(n_jobs=1, progress=False)
    assert len(fits(log)) == 3 * 3 + 1  # the search on all the data and its refit
    search = GridSearchCV(Counted(), grid, cv=3).fit(X, y)
    assert results.best_params_ == search.best_params_
    assert_matches_sklearn(results, mp.Experiment(Counted(), param_grid=grid, cv=3, inner_cv=3), X, y)


def test_return_estimator_switched_on_later_keeps_the_fits(data, tmp_path, log):
    X, y = data
    grid = {"C": [0.1, 1.0, 10.0]}
    wd = tmp_path / "wd"
    mp.Experiment(Counted(log=str(log)), param_grid=grid, cv=3, inner_cv=3, final_fit=False).build(
        X, y, workdir=wd).run(n_jobs=1, progress=False)
    fits(log)
    exp = dict(estimator=Counted(log=str(log)), param_grid=grid, cv=3, inner_cv=3, final_fit=False,
               return_estimator=True)
    with pytest.warns(UserWarning, match="return_estimator changed"):
        wf = mp.Experiment(**exp).build(X, y, workdir=wd, reuse=True)
    assert wf.status().kept == n_tasks(wf, lambda t: t.kind == "fit")  # the selects refit to keep their estimator
    results = wf.run(n_jobs=1, progress=False)
    assert len(fits(log)) == 3
    ref = reference(Counted(), grid, X, y)
    assert [e.best_params_ for e in results.estimators_] == [e.best_params_ for e in ref["estimator"]]
    np.testing.assert_array_equal(results.test_scores["score"], ref["test_score"])


# ------------------------------------------------------------------ what changes meaning keeps nothing
@pytest.mark.parametrize("change, named", [
    (dict(estimator=Counted(C=2.0)), "estimator"),
    (dict(scoring="balanced_accuracy"), "scoring"),
    (dict(cv=KFold(3, shuffle=True, random_state=1)), "no split"),
])
def test_a_change_of_meaning_keeps_nothing_and_says_so(data, tmp_path, change, named):
    X, y = data
    base = dict(estimator=Counted(), param_grid={"C": [0.1, 1.0]}, cv=KFold(3, shuffle=True, random_state=0),
                inner_cv=3, final_fit=False)
    wd = tmp_path / "wd"
    mp.Experiment(**base).build(X, y, workdir=wd).run(n_jobs=1, progress=False)
    with pytest.warns(UserWarning, match=f"kept nothing.*{named}"):
        wf = mp.Experiment(**{**base, **change}).build(X, y, workdir=wd, reuse=True)
    assert wf.status().kept == 0 and wf.status().done == 0
    assert wf.status().reused["kept_points"] == 0


def test_other_data_keeps_nothing(data, tmp_path):
    X, y = data
    exp = mp.Experiment(Counted(), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=3, final_fit=False)
    wd = tmp_path / "wd"
    exp.build(X, y, workdir=wd).run(n_jobs=1, progress=False)
    X2 = X.copy()
    X2[0, 0] += 1.0
    with pytest.warns(UserWarning, match="kept nothing.*data"):
        wf = exp.build(X2, y, workdir=wd, reuse=True)
    assert wf.status().done == 0
    assert_matches_sklearn(wf.run(n_jobs=1, progress=False), exp, X2, y)


def test_without_reuse_the_refusal_stays_and_reuse_is_checked(data, tmp_path):
    X, y = data
    wd = tmp_path / "wd"
    mp.Experiment(Counted(), cv=3).build(X, y, workdir=wd)
    with pytest.raises(FileExistsError, match="already holds a different experiment.*Pass overwrite=True"):
        mp.Experiment(Counted(), cv=4).build(X, y, workdir=wd)
    with pytest.raises(InvalidParameterError, match="'reuse' parameter"):
        mp.Experiment(Counted(), cv=4).build(X, y, workdir=wd, reuse="yes")


def test_an_untrusted_old_output_is_not_kept(data, tmp_path, log):
    X, y = data
    grid = {"C": [0.1, 1.0]}
    wd = tmp_path / "wd"
    wf = mp.Experiment(Counted(log=str(log)), param_grid=grid, cv=2, inner_cv=2, final_fit=False).build(
        X, y, workdir=wd)
    wf.run(n_jobs=1, progress=False)
    fits(log)
    # One fit output edited by hand (still valid JSON): its digest no longer matches, it is not kept.
    path = store.output_path(wd, "fit-o0-i0-c0")
    text = path.read_text()
    output = json.loads(text)
    path.write_text(text.replace(json.dumps(output["fit_time"][0]), json.dumps(output["fit_time"][0] + 1)))
    exp = dict(estimator=Counted(log=str(log)), param_grid={"C": [0.1, 1.0, 10.0]}, cv=2, inner_cv=2,
               final_fit=False)
    wf = grown(exp, X, y, wd)
    lost = len(output["points"])
    assert wf.status().reused["kept_points"] == 2 * 2 * 2 - lost
    results = wf.run(n_jobs=1, progress=False)
    assert len(fits(log)) == 2 * 2 * 1 + lost + 2  # the new point, the points of the edited output, refits
    assert_matches_sklearn(results, mp.Experiment(Counted(), param_grid={"C": [0.1, 1.0, 10.0]}, cv=2,
                                                  inner_cv=2), X, y)


def test_the_kept_points_file_is_a_verified_build_file(data, tmp_path, capsys):
    X, y = data
    wd = tmp_path / "wd"
    mp.Experiment(Counted(), param_grid={"C": [0.1, 1.0]}, cv=2, inner_cv=2, final_fit=False).build(
        X, y, workdir=wd).run(n_jobs=1, progress=False)
    wf = grown(dict(estimator=Counted(), param_grid={"C": [0.1, 1.0, 10.0]}, cv=2, inner_cv=2, final_fit=False),
               X, y, wd, chunk_size=3)
    from mempamal.cli import main

    assert main(["status", str(wd)]) == 0
    assert "kept from a previous build: 0 tasks, 8 inner fits" in capsys.readouterr().out
    kept = wd / wf.manifest["reuse"]["file"]
    assert kept.stat().st_mode & 0o777 == 0o600
    assert "reuse" in wf.manifest and kept.name in wf.manifest["files"]
    kept.write_text(kept.read_text().replace("0.9", "0.1"))  # a kept score edited after the build
    with pytest.raises(mp.exceptions.TaskError, match="not the file this build wrote"):
        mp.run_task(wd, "fit-o0-i0-c0")
    assert "kept from a previous build" in repr(wf)


def test_a_build_without_a_data_digest_keeps_nothing(data, tmp_path):
    X, y = data
    wd = tmp_path / "wd"
    mp.Experiment(Counted(), cv=3).build(X, y, workdir=wd).run(n_jobs=1, progress=False)
    # As a workdir built before the manifest recorded the data digest.
    manifest = store.read_json(wd / store.MANIFEST)
    del manifest["data_digest"]
    store.write_json(wd / store.MANIFEST, manifest)
    with pytest.warns(UserWarning, match=r"kept nothing.*the old build recorded no data digest"):
        wf = mp.Experiment(Counted(), cv=3, n_permutations=1).build(X, y, workdir=wd, reuse=True)
    assert wf.status().done == 0
