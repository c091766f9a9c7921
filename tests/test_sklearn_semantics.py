"""scikit-learn's contract beyond scores: dict scorers, global config, seeds, error_score='raise', RandomState."""

import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import (GridSearchCV, KFold, StratifiedKFold, cross_validate,
                                     permutation_test_score)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import mempamal as mp

from conftest import assert_matches_sklearn


def run(experiment, X, y, tmp_path, n_jobs=1, **build):
    return experiment.build(X, y, workdir=tmp_path / "wd", **build).run(n_jobs=n_jobs, progress=False)


def dict_scorer():
    # Defined in a function: cloudpickle stores it by value, so workers need not import this module.
    def scores(estimator, X, y):
        predicted = estimator.predict(X)
        return {"acc": accuracy_score(y, predicted), "f1": f1_score(y, predicted, average="macro")}
    return scores


# ------------------------------------------------------------ refit callable
def simplest_within_one_std(cv_results):
    """The gallery's pattern: the smallest C whose mean is within one std of the best."""
    best = np.argmax(cv_results["mean_test_score"])
    threshold = cv_results["mean_test_score"][best] - cv_results["std_test_score"][best]
    eligible = np.flatnonzero(cv_results["mean_test_score"] >= threshold)
    return eligible[cv_results["param_C"][eligible].argmin()]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_refit_callable_reading_param_columns_equals_gridsearch(tmp_path, n_jobs):
    X, y = make_classification(120, 10, n_informative=3, random_state=2)
    experiment = mp.Experiment(LogisticRegression(max_iter=500), param_grid={"C": np.logspace(-3, 2, 6)},
                               cv=StratifiedKFold(3, shuffle=True, random_state=0), inner_cv=4,
                               refit=simplest_within_one_std)
    results = run(experiment, X, y, tmp_path, n_jobs=n_jobs)
    reference = assert_matches_sklearn(results, experiment, X, y)
    assert [search.best_index_ for search in reference["estimator"]] == results.best_index


# ------------------------------------------------------------ dict scorer
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_callable_scorer_returning_a_dict_equals_cross_validate(tmp_path, n_jobs):
    X, y = load_iris(return_X_y=True)
    experiment = mp.Experiment(LogisticRegression(max_iter=300), cv=KFold(4, shuffle=True, random_state=0),
                               scoring=dict_scorer())
    results = run(experiment, X, y, tmp_path, n_jobs=n_jobs)
    assert results.metrics == ["acc", "f1"]
    reference = assert_matches_sklearn(results, experiment, X, y)
    assert {"test_acc", "test_f1"} <= set(reference)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_nested_search_with_a_dict_scorer_and_refit_key_equals_gridsearch(tmp_path, n_jobs):
    X, y = load_iris(return_X_y=True)
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.01, 0.1, 1.0]},
                               cv=3, inner_cv=3, scoring=dict_scorer(), refit="f1")
    results = run(experiment, X, y, tmp_path, n_jobs=n_jobs)
    reference = assert_matches_sklearn(results, experiment, X, y)
    assert "rank_test_f1" in results.cv_results(0) and "mean_test_acc" in results.cv_results(0)
    assert results.summary().index.tolist() == ["acc", "f1"]
    assert len(reference["estimator"]) == 3


def test_dict_scorer_with_refit_true_fails_every_fold_like_sklearn(tmp_path):
    X, y = load_iris(return_X_y=True)
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2,
                               scoring=dict_scorer())
    with pytest.raises(ValueError, match="All the 3 fits failed") as reference:
        cross_validate(GridSearchCV(experiment.estimator, experiment.param_grid, cv=2, scoring=dict_scorer()),
                       X, y, cv=3)
    with pytest.raises(ValueError, match="All the 3 fits failed") as ours:
        run(experiment, X, y, tmp_path)
    assert "For multi-metric scoring, the parameter refit must be set" in str(reference.value)
    assert "For multi-metric scoring, the parameter refit must be set" in str(ours.value)


# ------------------------------------------------------------ global config
def pandas_pipeline():
    # The column selection by name works only if the scaler outputs a DataFrame.
    return Pipeline([("scale", StandardScaler()),
                     ("select", ColumnTransformer([("keep", "passthrough", ["a", "c", "d"])])),
                     ("clf", LogisticRegression(max_iter=300))])


def frame_data():
    X, y = make_classification(90, 5, n_informative=3, random_state=0)
    return pd.DataFrame(X, columns=list("abcde")), y


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_transform_output_pandas_set_at_build_applies_in_every_task(tmp_path, n_jobs):
    X, y = frame_data()
    experiment = mp.Experiment(pandas_pipeline(), param_grid={"clf__C": [0.1, 1.0]}, cv=3, inner_cv=2)
    with sklearn.config_context(transform_output="pandas"):
        workflow = experiment.build(X, y, workdir=tmp_path / "wd")
        reference = cross_validate(GridSearchCV(pandas_pipeline(), {"clf__C": [0.1, 1.0]}, cv=2), X, y, cv=3)
    assert not np.isnan(reference["test_score"]).any()
    # Run outside the config: the build's config is the one that counts.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FitFailedWarning: nothing silently became NaN
        results = workflow.run(n_jobs=n_jobs, progress=False)
    np.testing.assert_allclose(results.test_scores["score"], reference["test_score"], rtol=0, atol=1e-12)
    assert experiment.sklearn_config["transform_output"] == "pandas"


def test_assume_finite_reaches_the_scorer_in_worker_processes(tmp_path):
    def config_seen(estimator, X, y):
        import sklearn as sk
        return float(sk.get_config()["assume_finite"])

    X, y = load_iris(return_X_y=True)
    experiment = mp.Experiment(LogisticRegression(max_iter=300), cv=3, scoring=config_seen)
    with sklearn.config_context(assume_finite=True):
        workflow = experiment.build(X, y, workdir=tmp_path / "wd")
        reference = cross_validate(LogisticRegression(max_iter=300), X, y, cv=3, scoring=config_seen)
    results = workflow.run(n_jobs=2, progress=False)
    np.testing.assert_array_equal(results.test_scores["score"], reference["test_score"])
    assert results.test_scores["score"].tolist() == [1.0, 1.0, 1.0]


def test_config_counts_in_the_fingerprint_except_display_settings():
    experiment = mp.Experiment(LogisticRegression())
    plain = experiment.fingerprint()
    with sklearn.config_context(display="text", print_changed_only=False):
        assert experiment.fingerprint() == plain
    with sklearn.config_context(assume_finite=True):
        assert experiment.fingerprint() != plain


# ------------------------------------------------------------ permutation seed
def test_permutation_seed_defaults_to_0_like_permutation_test_score(tmp_path):
    X, y = load_iris(return_X_y=True)
    experiment = mp.Experiment(LogisticRegression(max_iter=300), cv=3, n_permutations=4)
    assert experiment.random_state == 0
    results = run(experiment, X, y, tmp_path)
    score, permutation_scores, pvalue = permutation_test_score(LogisticRegression(max_iter=300), X, y, cv=3,
                                                               n_permutations=4)
    np.testing.assert_allclose(results.permutation_scores, permutation_scores, rtol=0, atol=1e-12)
    assert abs(results.score - score) <= 1e-12 and results.pvalue == pvalue


# ------------------------------------------------------------ error_score="raise"
def pca_logistic(n_components):
    # PCA checks n_components against the data when it fits: a fit error.
    from sklearn.decomposition import PCA

    return Pipeline([("pca", PCA(n_components)), ("clf", LogisticRegression(max_iter=300))])


def sklearn_error(estimator, X, y, grid=None):
    if grid is not None:
        estimator = GridSearchCV(estimator, grid, cv=2, error_score="raise")
    with pytest.raises(Exception) as info:
        cross_validate(estimator, X, y, cv=3, error_score="raise")
    return info.value


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("grid", [None, {"pca__n_components": [2, 50]}])
def test_error_score_raise_reraises_the_estimators_own_exception_naming_the_task(tmp_path, n_jobs, grid):
    X, y = load_iris(return_X_y=True)
    # A fit error, not a parameter check: cross_validate rewrites the latter's message with its own name.
    estimator = pca_logistic(50 if grid is None else 2)
    experiment = mp.Experiment(estimator, param_grid=grid, cv=3, inner_cv=2 if grid else None, error_score="raise")
    expected = sklearn_error(estimator, X, y, grid)
    with pytest.raises(Exception) as ours:
        run(experiment, X, y, tmp_path, n_jobs=n_jobs)
    assert type(ours.value) is type(expected) and str(ours.value) == str(expected)
    assert "n_components=50 must be between" in str(expected)
    notes = "\n".join(getattr(ours.value, "__notes__", []))
    assert "mempamal: raised in task '" + ("score-o" if grid is None else "fit-o") in notes
    assert "error_score='raise'" in notes


def test_error_score_raise_in_a_cli_task_names_the_task(tmp_path, capsys):
    from mempamal.cli import main

    X, y = load_iris(return_X_y=True)
    mp.Experiment(pca_logistic(50), cv=3, error_score="raise").build(X, y, workdir=tmp_path / "wd")
    assert main(["task", str(tmp_path / "wd"), "score-o1"]) == 1
    err = capsys.readouterr().err
    assert "Task 'score-o1'" in err and "ValueError: n_components=50 must be between" in err
    assert main(["run", str(tmp_path / "wd"), "-n", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "ValueError: n_components=50 must be between" in err and "raised in task 'score-o" in err


def test_error_score_raise_on_ipyparallel_reraises_the_estimators_exception(tmp_path):
    pytest.importorskip("ipyparallel", reason="the optional ipyparallel backend is not installed "
                        "(tests/test_oldest_sklearn.py installs the core dependencies only)")
    from mempamal.backends.ipyparallel import LocalCluster

    X, y = load_iris(return_X_y=True)
    grid = {"pca__n_components": [2, 50]}
    experiment = mp.Experiment(pca_logistic(2), param_grid=grid, cv=3, inner_cv=2, error_score="raise")
    expected = sklearn_error(pca_logistic(2), X, y, grid)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    with LocalCluster(2) as local:
        with pytest.raises(Exception) as ours:
            workflow.run(backend="ipyparallel", client=local.client, progress=False)
    assert type(ours.value) is type(expected) and str(ours.value) == str(expected)
    assert any("raised in task 'fit-o" in note for note in ours.value.__notes__)


# ------------------------------------------------------------ RandomState instances
@pytest.mark.parametrize("kwargs, argument, where", [
    ({"estimator": RandomForestClassifier(n_estimators=3, random_state=np.random.RandomState(0))},
     "estimator", "(random_state)"),
    ({"estimator": Pipeline([("scale", StandardScaler()),
                             ("clf", RandomForestClassifier(n_estimators=3, random_state=np.random.RandomState(0)))])},
     "estimator", "(clf__random_state)"),
    ({"param_grid": {"clf": [RandomForestClassifier(n_estimators=3, random_state=np.random.RandomState(0))]}},
     "param_grid", "(clf__random_state)"),
    ({"param_distributions": {"clf__random_state": [np.random.RandomState(0)]}, "n_iter": 1},
     "param_distributions", "(clf__random_state)"),
    ({"cv": KFold(3, shuffle=True, random_state=np.random.RandomState(0))}, "cv", "(random_state)"),
    ({"param_grid": {"clf__C": [1.0]}, "inner_cv": KFold(2, shuffle=True, random_state=np.random.RandomState(0))},
     "inner_cv", "(random_state)"),
])
def test_random_state_instances_warn_at_build_naming_the_argument(tmp_path, kwargs, argument, where):
    X, y = load_iris(return_X_y=True)
    kwargs = dict(kwargs)
    estimator = kwargs.pop("estimator", Pipeline([("scale", StandardScaler()),
                                                  ("clf", LogisticRegression(max_iter=200))]))
    experiment = mp.Experiment(estimator, **kwargs)
    with pytest.warns(UserWarning, match=f"The '{argument}' parameter of Experiment is seeded with a "
                                         f"numpy.random.RandomState instance") as caught:
        experiment.build(X, y, workdir=tmp_path / "wd")
    message = next(str(w.message) for w in caught if "RandomState instance" in str(w.message))
    assert where in message and "int seed" in message


def test_int_seeds_do_not_warn(tmp_path):
    X, y = load_iris(return_X_y=True)
    experiment = mp.Experiment(RandomForestClassifier(n_estimators=3, random_state=0),
                               param_grid={"max_depth": [2, 3]}, cv=KFold(3, shuffle=True, random_state=1),
                               inner_cv=KFold(2, shuffle=True, random_state=2), random_state=np.random.RandomState(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        experiment.build(X, y, workdir=tmp_path / "wd")
