"""mp.compare: per-model scores and the corrected resampled t-test, against scikit-learn and scipy directly."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_validate  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

import mempamal as mp  # noqa: E402

CV = KFold(5, shuffle=True, random_state=3)


@pytest.fixture(scope="module")
def data():
    return make_classification(n_samples=150, n_features=8, random_state=1)


@pytest.fixture(scope="module")
def two(tmp_path_factory, data):
    X, y = data
    folder = tmp_path_factory.mktemp("compare")
    logreg = mp.Experiment(LogisticRegression(max_iter=500), param_grid={"C": [0.1, 1.0]}, cv=CV, inner_cv=3,
                           scoring=["accuracy", "balanced_accuracy"], refit="accuracy", final_fit=False)
    svc = mp.Experiment(SVC(), param_grid={"C": [0.5, 2.0]}, cv=CV, inner_cv=3,
                        scoring=["accuracy", "balanced_accuracy"], refit="accuracy", final_fit=False)
    return {"logreg": logreg.run(X, y, workdir=folder / "lr", n_jobs=2, progress=False),
            "svc": svc.run(X, y, workdir=folder / "svc", n_jobs=2, progress=False)}


def sklearn_scores(estimator, grid, X, y):
    search = GridSearchCV(estimator, grid, cv=3, scoring=["accuracy", "balanced_accuracy"], refit="accuracy")
    found = cross_validate(search, X, y, cv=CV, scoring=["accuracy", "balanced_accuracy"], return_indices=True)
    return found


def test_the_table_equals_scikit_learn_scores_and_the_corrected_t_test(two, data):
    X, y = data
    lr = sklearn_scores(LogisticRegression(max_iter=500), {"C": [0.1, 1.0]}, X, y)
    svc = sklearn_scores(SVC(), {"C": [0.5, 2.0]}, X, y)
    table = mp.compare(two)
    for metric in ("accuracy", "balanced_accuracy"):
        a, b = lr[f"test_{metric}"], svc[f"test_{metric}"]
        row = table.loc[(metric, "logreg")]
        assert row["kind"] == "model"
        assert (row["mean"], row["std"], row["median"]) == (np.mean(a), np.std(a), np.median(a))
        # The corrected resampled t-test, computed here from its definition.
        d = a - b
        k = len(d)
        n_test = np.mean([len(t) for t in lr["indices"]["test"]])
        n_train = np.mean([len(t) for t in lr["indices"]["train"]])
        t = d.mean() / np.sqrt((1 / k + n_test / n_train) * np.var(d, ddof=1))
        pair = table.loc[(metric, "logreg - svc")]
        assert pair["kind"] == "pair" and pair["df"] == k - 1
        assert pair["mean"] == pytest.approx(d.mean(), abs=1e-15)
        assert pair["t"] == pytest.approx(t, rel=1e-12)
        assert pair["pvalue"] == pytest.approx(2 * stats.t.sf(abs(t), k - 1), rel=1e-12)
        assert "little power" in pair["note"]  # 5 folds: said


def test_other_outer_splits_or_other_data_are_refused_naming_them(two, data, tmp_path):
    X, y = data
    other = mp.Experiment(LogisticRegression(max_iter=500), cv=StratifiedKFold(5)).run(
        X, y, workdir=tmp_path / "other-splits", n_jobs=1, progress=False)
    with pytest.raises(mp.InvalidParameterError, match="same outer splits.*'plain'"):
        mp.compare({"logreg": two["logreg"], "plain": other})
    shifted = mp.Experiment(LogisticRegression(max_iter=500), cv=CV).run(
        X + 1.0, y, workdir=tmp_path / "other-data", n_jobs=1, progress=False)
    with pytest.raises(mp.InvalidParameterError, match="same data.*'moved'"):
        mp.compare({"logreg": two["logreg"], "moved": shifted})
    with pytest.raises(ValueError, match="at least two"):
        mp.compare({"logreg": two["logreg"]})


def test_the_display_draws_one_line_per_paired_fold(two):
    display = mp.ComparisonDisplay.from_results(two, metric="balanced_accuracy")
    assert len(display.lines_) == 5
    for fold, line in enumerate(display.lines_):
        np.testing.assert_array_equal(line.get_ydata(), [two["logreg"].test_scores["balanced_accuracy"][fold],
                                                         two["svc"].test_scores["balanced_accuracy"][fold]])
    assert display.ax_.get_ylabel() == "outer test balanced_accuracy"


def test_splits_from_pairs_a_new_model_with_another_workdirs_folds(two, data, tmp_path):
    X, y = data
    # Another splitter of its own: splits_from overrides it with logreg's outer splits.
    knn = mp.Experiment(SVC(kernel="linear"), param_grid={"C": [0.1, 1.0]}, cv=StratifiedKFold(4), inner_cv=3,
                        scoring=["accuracy", "balanced_accuracy"], refit="accuracy", final_fit=False)
    res = knn.run(X, y, workdir=tmp_path / "paired", n_jobs=2, splits_from=two["logreg"].workdir)
    for side in ("train", "test"):
        for ours, theirs in zip(res.indices[side], two["logreg"].indices[side]):
            np.testing.assert_array_equal(ours, theirs)
    splits = list(zip(two["logreg"].indices["train"], two["logreg"].indices["test"]))
    search = GridSearchCV(SVC(kernel="linear"), {"C": [0.1, 1.0]}, cv=3, scoring=["accuracy", "balanced_accuracy"],
                          refit="accuracy")
    expected = cross_validate(search, X, y, cv=splits, scoring=["accuracy", "balanced_accuracy"])
    np.testing.assert_array_equal(res.test_scores["accuracy"], expected["test_accuracy"])
    assert set(mp.compare({**two, "linear": res}).index.get_level_values("name")) >= {"logreg - linear"}
    with pytest.raises(mp.InvalidParameterError, match="splits_from.*other data"):
        knn.build(X[:, ::-1], y, workdir=tmp_path / "refused", splits_from=two["logreg"].workdir)
    assert not (tmp_path / "refused").exists()
