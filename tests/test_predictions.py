"""predict=...: out-of-fold predictions equal cross_val_predict's, or per fold where it is undefined."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GroupKFold, KFold, ShuffleSplit
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import mempamal as mp

from reference_outputs import assert_same_predictions, reference_predictions

Xc, yc = make_classification(n_samples=45, n_features=5, n_informative=3, n_classes=3, random_state=0)
Xb, yb = make_classification(n_samples=40, n_features=4, random_state=1)
Xr, yr = make_regression(n_samples=40, n_features=4, noise=5.0, random_state=0)
groups_r = np.arange(40) % 5
labels = np.array(["cat", "dog", "emu"])
y_object = labels[yc].astype(object)
y_text = labels[yc]
# Sorted by class and split without shuffling: each training part misses a class.
order = np.argsort(yc, kind="stable")
X_sorted, y_sorted = Xc[order], yc[order]
X4, y4 = make_classification(n_samples=48, n_features=6, n_informative=4, n_classes=4, random_state=0)
order4 = np.argsort(y4, kind="stable")
X4_sorted, y4_sorted = X4[order4], y4[order4]  # KFold(4): each training part has 3 of the 4 classes
y_multi = np.column_stack([yb, (Xb[:, 0] > 0).astype(int)])


CASES = {
    # name: (experiment factory, X, y, groups)
    "plain-proba-multiclass": (lambda: mp.Experiment(
        LogisticRegression(max_iter=300), cv=3, predict="predict_proba"), Xc, yc, None),
    "nested-pipeline-decision-function-binary": (lambda: mp.Experiment(
        make_pipeline(StandardScaler(), SVC()), param_grid={"svc__C": [0.1, 1.0]}, cv=3, inner_cv=2,
        predict="decision_function"), Xb, yb, None),
    "nested-predict-object-labels": (lambda: mp.Experiment(
        LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2, predict="predict"),
        Xc, y_object, None),
    "plain-predict-text-labels": (lambda: mp.Experiment(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)), cv=3, predict="predict"),
        Xc, y_text, None),
    "plain-proba-object-labels": (lambda: mp.Experiment(
        LogisticRegression(max_iter=300), cv=3, predict="predict_proba"), Xc, y_object, None),
    "missing-class-log-proba": (lambda: mp.Experiment(
        LogisticRegression(max_iter=300), cv=KFold(3), predict="predict_log_proba"), X_sorted, y_sorted, None),
    "missing-class-decision-function": (lambda: mp.Experiment(
        LogisticRegression(max_iter=300), cv=KFold(4), predict="decision_function"), X4_sorted, y4_sorted, None),
    "nested-regression-groups": (lambda: mp.Experiment(
        make_pipeline(StandardScaler(), Ridge()), param_grid={"ridge__alpha": [0.1, 10.0]},
        cv=GroupKFold(5), inner_cv=GroupKFold(2), predict="predict"), Xr, yr, groups_r),
    "multi-output-proba-list": (lambda: mp.Experiment(
        KNeighborsClassifier(3), cv=KFold(3), predict="predict_proba"), Xb, y_multi, None),
}


# Every case with n_jobs=1; two representative ones with n_jobs=2 too (keeps the suite short).
RUNS = [(case, 1) for case in sorted(CASES)] + [("nested-predict-object-labels", 2), ("plain-proba-multiclass", 2)]


@pytest.mark.parametrize("case, n_jobs", RUNS)
def test_predictions_equal_cross_val_predict(case, n_jobs, tmp_path):
    make, X, y, groups = CASES[case]
    experiment = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # folds missing a class warn, in scikit-learn too
        results = experiment.run(X, y, groups=groups, workdir=tmp_path / "wd", n_jobs=n_jobs, progress=False)
        expected = reference_predictions(experiment, X, y, groups)
    assert_same_predictions(results.predictions, expected)
    # The per-fold form holds the same values at the test indices.
    for test, predictions in results.fold_predictions:
        first = predictions[0] if isinstance(predictions, list) else predictions
        reference = expected[0] if isinstance(expected, list) else expected
        assert_same_predictions(first, np.asarray(reference)[test])


def test_decision_function_missing_class_fails_as_cross_val_predict(tmp_path):
    """Two classes in a training part, three overall: scikit-learn's own error, naming the task."""
    from sklearn.model_selection import cross_val_predict

    experiment = mp.Experiment(LogisticRegression(max_iter=300), cv=KFold(3), predict="decision_function")
    with pytest.raises(ValueError) as expected:
        cross_val_predict(LogisticRegression(max_iter=300), X_sorted, y_sorted, cv=KFold(3),
                          method="decision_function")
    with pytest.raises(mp.WorkflowError, match="score-o0") as ours:
        experiment.run(X_sorted, y_sorted, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    assert str(expected.value) in str(ours.value)


def test_predictions_files_are_private_npy_written_by_the_tasks(tmp_path):
    experiment = mp.Experiment(LogisticRegression(max_iter=300), cv=3, predict="predict")
    experiment.run(Xc, y_object, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    files = sorted((tmp_path / "wd" / "outputs").glob("*/*.npy"))
    assert [f.name for f in files] == [f"score-o{k}.pred0.npy" for k in range(3)]
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600
        np.load(path, allow_pickle=False)  # plain arrays: object labels are stored as codes


def test_non_partition_cv_gives_per_fold_predictions(tmp_path):
    cv = ShuffleSplit(n_splits=3, test_size=0.3, random_state=0)
    experiment = mp.Experiment(LogisticRegression(max_iter=300), cv=cv, predict="predict_proba")
    results = experiment.run(Xc, yc, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    with pytest.raises(ValueError, match="partition.*fold_predictions"):
        results.predictions
    for (test, predictions), (train, expected_test) in zip(results.fold_predictions, cv.split(Xc, yc)):
        np.testing.assert_array_equal(test, expected_test)
        fitted = LogisticRegression(max_iter=300).fit(Xc[train], yc[train])
        np.testing.assert_allclose(predictions, fitted.predict_proba(Xc[test]), rtol=0, atol=1e-12)


def test_failed_outer_fit_makes_predictions_undefined(tmp_path):
    """The last training part has one class: its fit fails (cross_val_predict raises); the
    other folds' predictions stay available per fold."""
    X, y = Xb, np.r_[np.zeros(35, dtype=int), np.ones(5, dtype=int)]
    experiment = mp.Experiment(LogisticRegression(max_iter=300), cv=KFold(8), predict="predict")
    with pytest.warns(Warning, match="1 fits failed"):
        results = experiment.run(X, y, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    with pytest.raises(ValueError, match="outer fold 7 failed"):
        results.predictions
    test, predictions = results.fold_predictions[0]
    fitted = LogisticRegression(max_iter=300).fit(np.delete(X, test, axis=0), np.delete(y, test))
    np.testing.assert_array_equal(predictions, fitted.predict(X[test]))
    assert results.fold_predictions[7][1] is None


def test_without_predict_predictions_raise(tmp_path):
    results = mp.Experiment(Ridge(), cv=2).run(Xr, yr, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    with pytest.raises(ValueError, match="predict="):
        results.predictions


def test_predict_method_the_estimator_lacks_is_refused():
    with pytest.raises(ValueError, match="'predict'.*Ridge has no predict_proba"):
        mp.Experiment(Ridge(), cv=2, predict="predict_proba")
    with pytest.raises(ValueError, match="'predict'.*no predict_proba"):
        mp.Experiment(make_pipeline(StandardScaler(), SVC()), cv=2, predict="predict_proba")


def test_finished_folds_show_train_scores_like_to_frame(tmp_path):
    from mempamal.fold_table import finished_folds

    experiment = mp.Experiment(LogisticRegression(max_iter=300), cv=3, return_train_score=True, predict="predict")
    results = experiment.run(Xc, yc, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    live = finished_folds(mp.Workflow.open(tmp_path / "wd"))
    assert list(live.columns) == list(results.to_frame().columns)
    np.testing.assert_array_equal(live["train_score"], results.train_scores["score"])
