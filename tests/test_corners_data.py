"""Data in the corners of scikit-learn's input types (issue 23, items 1, 4 and 8).

Python lists are stored and sliced as ``cross_validate`` slices them (every fit
gets a list), boolean-mask splits work in plain and nested CV, and
``res.indices`` equals ``cross_validate(..., return_indices=True)["indices"]``;
every answer is compared with scikit-learn's own function on the same data.
"""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.model_selection import (GridSearchCV, KFold, StratifiedKFold, check_cv, cross_val_predict,
                                     cross_validate, permutation_test_score)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

import mempamal as mp

from conftest import assert_matches_sklearn


def colour_rows(n=90, seed=0):
    """Rows like ``["red", 10]``: as strings, '10' < '2' orders the numbers differently."""
    rng = np.random.RandomState(seed)
    colours, numbers = ["red", "green", "blue"], [2, 3, 10, 20]
    rows = [[colours[rng.randint(3)], numbers[rng.randint(4)]] for _ in range(n)]
    y = [int((number > 5) ^ (rng.rand() < 0.2)) for _, number in rows]
    return rows, y


def encoder_pipeline():
    return make_pipeline(OrdinalEncoder(), LogisticRegression())


class TypeProbe(ClassifierMixin, BaseEstimator):
    """Predicts the majority class; remembers the types its ``fit`` received."""

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y, sample_weight=None):
        self.seen_ = (type(X).__name__, type(y).__name__, type(sample_weight).__name__)
        self.classes_, counts = np.unique(np.asarray(y), return_counts=True)
        self.majority_ = self.classes_[np.argmax(counts)]
        return self

    def predict(self, X):
        return np.full(len(X), self.majority_)


def type_score(estimator, X, y):
    """A score that encodes the types of the fit and of the scored data (and C)."""
    fitted = getattr(estimator, "best_estimator_", estimator)  # the outer folds score the search
    fit_x, fit_y, fit_weight = fitted.seen_
    return (float(fit_x == "list") + 2 * float(fit_y == "list") + 4 * float(fit_weight == "list")
            + 8 * float(isinstance(X, list)) + 16 * float(isinstance(y, list)) + fitted.C / 100)


def run(experiment, X, y, tmp_path, **build):
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", **build)
    return workflow.run(n_jobs=1, progress=False)


def masks_of(splits, n_samples):
    masks = []
    for train, test in splits:
        train_mask, test_mask = np.zeros(n_samples, bool), np.zeros(n_samples, bool)
        train_mask[train], test_mask[test] = True, True
        masks.append((train_mask, test_mask))
    return masks


def assert_same_indices(ours, theirs):
    assert set(ours) == set(theirs) == {"train", "test"}
    for part in ("train", "test"):
        assert type(ours[part]) is type(theirs[part]) and len(ours[part]) == len(theirs[part])
        for mine, reference in zip(ours[part], theirs[part]):
            assert mine.dtype.kind == reference.dtype.kind, part
            np.testing.assert_array_equal(mine, reference)


# ----------------------------------------------------------------- 1. lists
def test_list_rows_plain_cv_equal_cross_validate(tmp_path):
    rows, y = colour_rows()
    experiment = mp.Experiment(encoder_pipeline(), cv=3, scoring="neg_log_loss")
    results = run(experiment, rows, y, tmp_path)
    reference = cross_validate(encoder_pipeline(), rows, y, cv=3, scoring="neg_log_loss")
    np.testing.assert_allclose(results.test_scores["score"], reference["test_score"], rtol=0, atol=1e-12)
    # The NumPy array of these rows is strings: the encoder would order '10' < '2'.
    as_array = cross_validate(encoder_pipeline(), np.asarray(rows), y, cv=3, scoring="neg_log_loss")
    assert not np.allclose(as_array["test_score"], reference["test_score"])


def test_list_rows_nested_cv_equal_grid_search(tmp_path):
    rows, y = colour_rows()
    experiment = mp.Experiment(encoder_pipeline(), param_grid={"logisticregression__C": [0.1, 10.0]},
                               cv=3, inner_cv=3, scoring="neg_log_loss")
    results = run(experiment, rows, y, tmp_path)
    assert_matches_sklearn(results, experiment, rows, y)


def test_every_fit_and_score_gets_lists_as_in_sklearn(tmp_path):
    rows, y = colour_rows(60)
    weights = [1.0 + (i % 3) for i in range(len(y))]
    experiment = mp.Experiment(TypeProbe(), param_grid={"C": [1.0, 2.0]}, cv=3, inner_cv=2,
                               scoring=type_score, return_estimator=True)
    results = run(experiment, rows, y, tmp_path, params={"sample_weight": weights})
    search = GridSearchCV(TypeProbe(), {"C": [1.0, 2.0]}, cv=2, scoring=type_score)
    reference = cross_validate(search, rows, y, cv=3, scoring=type_score,
                               params={"sample_weight": weights}, return_estimator=True)
    np.testing.assert_array_equal(results.test_scores["score"], reference["test_score"])
    assert np.all(reference["test_score"] > 31)  # lists everywhere
    for fold, fitted in enumerate(reference["estimator"]):
        np.testing.assert_array_equal(results.cv_results(fold)["mean_test_score"],
                                      fitted.cv_results_["mean_test_score"])
        # The kept estimator is the fitted search, as cross_validate(GridSearchCV) keeps it.
        assert results.estimators_[fold].best_estimator_.seen_ == fitted.best_estimator_.seen_ == ("list", "list", "list")
    final = GridSearchCV(TypeProbe(), {"C": [1.0, 2.0]}, cv=2, scoring=type_score).fit(
        rows, y, sample_weight=weights)
    assert results.best_estimator_.seen_ == final.best_estimator_.seen_


def test_ragged_token_lists_equal_cross_validate(tmp_path):
    rng = np.random.RandomState(1)
    words = ["good", "bad", "fine", "awful", "great", "meh"]
    docs = [[words[i] for i in rng.randint(6, size=rng.randint(1, 6))] for _ in range(60)]
    y = [int(sum(w in ("good", "great", "fine") for w in doc) > len(doc) / 2) for doc in docs]
    groups = [i % 4 for i in range(len(docs))]  # a list too: permutations shuffle within groups
    estimator = make_pipeline(CountVectorizer(analyzer=lambda doc: doc), RidgeClassifier())
    experiment = mp.Experiment(estimator, cv=3, param_grid={"ridgeclassifier__alpha": [0.1, 10.0]},
                               inner_cv=3, n_permutations=2)
    results = run(experiment, docs, y, tmp_path, groups=groups)
    assert_matches_sklearn(results, experiment, docs, y, groups)
    search = GridSearchCV(estimator, {"ridgeclassifier__alpha": [0.1, 10.0]}, cv=3)
    score, permutation_scores, pvalue = permutation_test_score(search, docs, y, groups=groups, cv=3,
                                                               n_permutations=2, random_state=0)
    assert results.score == pytest.approx(score, abs=1e-12)
    np.testing.assert_allclose(results.permutation_scores, permutation_scores, rtol=0, atol=1e-12)
    assert results.pvalue == pytest.approx(pvalue, abs=1e-12)


def test_string_group_list_with_permutations_refused_at_build(tmp_path):
    X, y = load_iris(return_X_y=True)
    groups = [str(i % 3) for i in range(len(y))]
    # scikit-learn's answer on this list is degenerate: it permutes nothing.
    score, permutation_scores, pvalue = permutation_test_score(
        RidgeClassifier(), X, y, groups=groups, cv=3, n_permutations=2, random_state=0)
    assert np.all(permutation_scores == score) and pvalue == 1.0
    experiment = mp.Experiment(RidgeClassifier(), cv=3, n_permutations=2)
    with pytest.raises(ValueError, match="'groups'.*np.asarray"):
        experiment.build(X, y, groups=groups, workdir=tmp_path / "wd")
    assert not (tmp_path / "wd").exists()


def test_list_data_through_the_cli_run(tmp_path):
    rows, y = colour_rows()
    experiment = mp.Experiment(encoder_pipeline(), param_grid={"logisticregression__C": [0.1, 10.0]},
                               cv=3, inner_cv=3, scoring="neg_log_loss")
    workflow = experiment.build(rows, y, workdir=tmp_path / "wd")
    done = subprocess.run([sys.executable, "-m", "mempamal", "run", str(workflow.workdir), "-n", "1",
                           "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert_matches_sklearn(mp.Results.load(workflow.workdir), experiment, rows, y)


# ----------------------------------------------------------------- 4. masks
def iris_masks():
    X, y = load_iris(return_X_y=True)
    return X, y, masks_of(KFold(3, shuffle=True, random_state=0).split(X), len(y))


def test_mask_splits_plain_cv_equal_cross_validate(tmp_path):
    X, y, masks = iris_masks()
    estimator = RidgeClassifier()
    results = run(mp.Experiment(estimator, cv=masks, n_permutations=2), X, y, tmp_path)
    reference = cross_validate(estimator, X, y, cv=masks, return_indices=True)
    np.testing.assert_allclose(results.test_scores["score"], reference["test_score"], rtol=0, atol=1e-12)
    assert_same_indices(results.indices, reference["indices"])
    score, permutation_scores, _ = permutation_test_score(estimator, X, y, cv=masks, n_permutations=2,
                                                          random_state=0)
    assert results.score == pytest.approx(score, abs=1e-12)
    np.testing.assert_allclose(results.permutation_scores, permutation_scores, rtol=0, atol=1e-12)


def test_mask_splits_nested_cv_equal_grid_search(tmp_path):
    X, y, masks = iris_masks()
    experiment = mp.Experiment(RidgeClassifier(), param_grid={"alpha": [0.1, 1.0]},
                               cv=masks, inner_cv=3, predict="decision_function")
    results = run(experiment, X, y, tmp_path)
    assert_matches_sklearn(results, experiment, X, y)
    # cross_val_predict refuses masks; on the same splits as indices it is defined.
    as_indices = [(np.flatnonzero(train), np.flatnonzero(test)) for train, test in masks]
    search = GridSearchCV(RidgeClassifier(), {"alpha": [0.1, 1.0]}, cv=3)
    np.testing.assert_allclose(results.predictions, cross_val_predict(search, X, y, cv=as_indices,
                                                                      method="decision_function"), rtol=0, atol=1e-12)


def test_inner_mask_splits_equal_grid_search(tmp_path):
    X, y, masks = iris_masks()  # every outer training subset has 100 rows
    inner = masks_of(KFold(4, shuffle=True, random_state=1).split(np.zeros(100)), 100)
    experiment = mp.Experiment(RidgeClassifier(), param_grid={"alpha": [0.1, 1.0]},
                               cv=masks, inner_cv=inner, final_fit=False)
    results = run(experiment, X, y, tmp_path)
    assert_matches_sklearn(results, experiment, X, y)
    for fold in range(3):
        assert_same_indices(results.inner_indices(fold), {"train": tuple(t for t, _ in inner),
                                                          "test": tuple(t for _, t in inner)})


@pytest.mark.parametrize("argument", ["cv", "inner_cv"])
def test_mask_of_the_wrong_length_refused_at_build(tmp_path, argument):
    X, y, masks = iris_masks()
    short = [(train[:-1], test[:-1]) for train, test in masks]
    # inner_cv: 100-row masks fit the outer folds, not the final search on all 150 rows.
    inner = masks_of(KFold(4).split(np.zeros(100)), 100)
    cv, inner_cv = (short, 3) if argument == "cv" else (masks, inner)
    experiment = mp.Experiment(RidgeClassifier(), param_grid={"alpha": [1.0]}, cv=cv, inner_cv=inner_cv)
    with pytest.raises(ValueError, match=f"'{argument}'.*boolean mask of length"):
        experiment.build(X, y, workdir=tmp_path / "wd")
    assert not (tmp_path / "wd").exists()


# --------------------------------------------------------------- 8. indices
def test_indices_equal_return_indices_with_permutations(tmp_path):
    X, y = load_iris(return_X_y=True)
    # Stratified on y: the permuted y of a permutation gets other splits.
    cv = StratifiedKFold(3, shuffle=True, random_state=3)
    results = run(mp.Experiment(RidgeClassifier(), cv=cv, n_permutations=2), X, y, tmp_path)
    reference = cross_validate(RidgeClassifier(), X, y, cv=cv, return_indices=True)
    assert_same_indices(results.indices, reference["indices"])
    results.indices["test"][0][:] = -1  # a copy: the workdir's splits are untouched
    assert results.indices["test"][0].min() >= 0


def test_inner_indices_equal_the_splits_grid_search_makes(tmp_path):
    X, y = load_iris(return_X_y=True)
    cv, inner_cv = StratifiedKFold(3, shuffle=True, random_state=3), StratifiedKFold(2)
    experiment = mp.Experiment(RidgeClassifier(), param_grid={"alpha": [1.0]}, cv=cv,
                               inner_cv=inner_cv)
    results = run(experiment, X, y, tmp_path)
    reference = cross_validate(GridSearchCV(RidgeClassifier(), {"alpha": [1.0]}, cv=inner_cv),
                               X, y, cv=cv, return_indices=True)
    assert_same_indices(results.indices, reference["indices"])
    # What GridSearchCV.fit(X_train, y_train) splits: check_cv(inner_cv, y_train).split(X_train, y_train).
    for fold, train in enumerate(reference["indices"]["train"]):
        splits = list(check_cv(inner_cv, y[train], classifier=True).split(X[train], y[train]))
        assert_same_indices(results.inner_indices(fold), {"train": tuple(t for t, _ in splits),
                                                          "test": tuple(t for _, t in splits)})
    splits = list(inner_cv.split(X, y))
    assert_same_indices(results.inner_indices(None), {"train": tuple(t for t, _ in splits),
                                                      "test": tuple(t for _, t in splits)})
    with pytest.raises(IndexError, match="outer_fold"):
        results.inner_indices(3)


def test_inner_indices_need_a_search(tmp_path):
    X, y = load_iris(return_X_y=True)
    results = run(mp.Experiment(RidgeClassifier(), cv=3), X, y, tmp_path)
    reference = cross_validate(RidgeClassifier(), X, y, cv=3, return_indices=True)
    assert_same_indices(results.indices, reference["indices"])
    with pytest.raises(ValueError, match="nested"):
        results.inner_indices(0)
