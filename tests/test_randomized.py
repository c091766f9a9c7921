"""param_distributions + n_iter: RandomizedSearchCV's candidates and results, exactly."""

import warnings

import numpy as np
import pytest
from scipy.stats import loguniform, randint, uniform
from sklearn.datasets import load_diabetes, load_iris, make_classification
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GroupKFold, KFold, RandomizedSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import mempamal as mp

from conftest import assert_matches_sklearn


def run(experiment, X, y, tmp_path, groups=None, n_jobs=1, chunk_size="auto"):
    workflow = experiment.build(X, y, groups=groups, workdir=tmp_path / "wd", chunk_size=chunk_size)
    return workflow.run(n_jobs=n_jobs, progress=False)


def pipeline():
    return Pipeline([("scale", StandardScaler()), ("pca", PCA(random_state=0)),
                     ("clf", LogisticRegression(max_iter=500))])


MIXED = {"pca__n_components": [2, 4, 6], "clf__C": loguniform(1e-2, 1e2), "scale__with_mean": [True, False]}


@pytest.mark.parametrize("distributions, n_iter", [
    (MIXED, 7),
    ({"pca__n_components": [2, 3, 4], "scale__with_std": [True, False]}, 4),  # all lists: without replacement
    ([{"clf__C": uniform(0.1, 5)}, {"pca__n_components": randint(1, 6), "clf__C": [0.5, 2.0]}], 6),
])
def test_candidates_are_the_ones_randomized_search_cv_samples(distributions, n_iter):
    X, y = make_classification(60, 8, random_state=0)
    experiment = mp.Experiment(pipeline(), param_distributions=distributions, n_iter=n_iter, random_state=7)
    search = RandomizedSearchCV(pipeline(), distributions, n_iter=n_iter, random_state=7, cv=2).fit(X, y)
    assert repr(experiment.candidates) == repr(search.cv_results_["params"])
    # Sampled once: asking again (or pickling) gives the same list.
    assert experiment.candidates is experiment.candidates


@pytest.mark.parametrize("n_jobs, chunk_size", [(1, "auto"), (2, 1), (2, "auto")])
def test_nested_randomized_pipeline_with_prefix_sharing_equals_cross_validate(tmp_path, n_jobs, chunk_size):
    X, y = make_classification(90, 8, n_informative=4, random_state=1)
    experiment = mp.Experiment(pipeline(), param_distributions=MIXED, n_iter=8, random_state=3,
                               cv=StratifiedKFold(3, shuffle=True, random_state=0), inner_cv=3,
                               scoring=["accuracy", "roc_auc"], refit="roc_auc")
    results = run(experiment, X, y, tmp_path, n_jobs=n_jobs, chunk_size=chunk_size)
    assert_matches_sklearn(results, experiment, X, y)


def test_nested_randomized_regression_with_groups_equals_cross_validate(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:120], y[:120]
    groups = np.arange(len(y)) % 6
    experiment = mp.Experiment(Ridge(), param_distributions={"alpha": loguniform(1e-3, 1e2)}, n_iter=5,
                               cv=GroupKFold(3), inner_cv=GroupKFold(2), scoring="r2", random_state=11)
    results = run(experiment, X, y, tmp_path, groups=groups, n_jobs=2)
    assert_matches_sklearn(results, experiment, X, y, groups=groups)


def test_random_state_instance_samples_like_a_cloned_randomized_search(tmp_path):
    # cross_validate clones the search for every fold, i.e. copies the
    # RandomState: every fold samples from the same state, as here.
    X, y = load_iris(return_X_y=True)
    experiment = mp.Experiment(SVC(), param_distributions={"C": loguniform(1e-1, 1e2), "gamma": ["scale", 0.1]},
                               n_iter=4, random_state=np.random.RandomState(5), cv=3, inner_cv=2)
    results = run(experiment, X, y, tmp_path)
    reference = mp.Experiment(SVC(), param_distributions=experiment.param_distributions, n_iter=4,
                              random_state=np.random.RandomState(5), cv=3, inner_cv=2)
    assert_matches_sklearn(results, reference, X, y)


def test_randomized_plus_permutations_and_refit_callable_equal_sklearn(tmp_path):
    from sklearn.model_selection import permutation_test_score

    X, y = load_iris(return_X_y=True)

    def smallest_rank(cv_results):
        return int(np.argmin(cv_results["rank_test_score"]))

    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_distributions={"C": loguniform(1e-2, 1e1)},
                               n_iter=3, cv=KFold(3, shuffle=True, random_state=0), inner_cv=2,
                               refit=smallest_rank, n_permutations=2, random_state=4, final_fit=False)
    results = run(experiment, X, y, tmp_path, n_jobs=2)
    assert_matches_sklearn(results, experiment, X, y)
    search = RandomizedSearchCV(LogisticRegression(max_iter=300), {"C": loguniform(1e-2, 1e1)}, n_iter=3, cv=2,
                                refit=smallest_rank, random_state=4)
    score, permutation_scores, pvalue = permutation_test_score(search, X, y, cv=experiment.cv, n_permutations=2,
                                                               random_state=4)
    assert abs(results.score - score) <= 1e-12
    np.testing.assert_allclose(results.permutation_scores, permutation_scores, rtol=0, atol=1e-12)
    assert results.pvalue == pvalue


def test_more_iterations_than_a_list_grid_warns_and_runs_the_grid_like_sklearn():
    with pytest.warns(UserWarning, match="smaller than n_iter=10"):
        experiment = mp.Experiment(LogisticRegression(), param_distributions={"C": [1.0, 2.0]}, n_iter=10)
        assert len(experiment.candidates) == 2


def test_fingerprint_is_stable_across_global_random_state_and_follows_the_seed():
    distributions = {"C": loguniform(1e-2, 1e2)}
    first = mp.Experiment(LogisticRegression(), param_distributions=distributions, n_iter=3, random_state=1)
    np.random.seed(123)
    np.random.rand(10)  # the frozen distribution holds the global RandomState
    again = mp.Experiment(LogisticRegression(), param_distributions={"C": loguniform(1e-2, 1e2)}, n_iter=3,
                          random_state=1)
    other_seed = mp.Experiment(LogisticRegression(), param_distributions=distributions, n_iter=3, random_state=2)
    other_n_iter = mp.Experiment(LogisticRegression(), param_distributions=distributions, n_iter=4, random_state=1)
    assert first.fingerprint() == again.fingerprint()
    assert first.fingerprint() != other_seed.fingerprint()
    assert first.fingerprint() != other_n_iter.fingerprint()
    assert first.describe()["param_distributions"] == again.describe()["param_distributions"]
    assert first.nested and "3 sampled candidates" in repr(first)


def test_rebuild_reuses_finished_work_and_keeps_the_sampled_candidates(tmp_path):
    X, y = load_iris(return_X_y=True)
    make = lambda: mp.Experiment(LogisticRegression(max_iter=300), param_distributions={"C": loguniform(1e-2, 1e1)},
                                 n_iter=3, cv=3, inner_cv=2, random_state=0)
    first = run(make(), X, y, tmp_path)
    workflow = make().build(X, y, workdir=tmp_path / "wd")
    assert workflow.status()["pending"] == 0
    assert repr(mp.Results.load(tmp_path / "wd").best_params) == repr(first.best_params)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"param_grid": {"C": [1]}, "param_distributions": {"C": [1]}}, ValueError,
     "'param_grid' and 'param_distributions' parameters of Experiment cannot both be given"),
    ({"param_distributions": {"C": [1]}, "n_iter": 0}, ValueError,
     r"'n_iter' parameter of Experiment must be an int in the range \[1, inf\); got 0"),
    ({"param_distributions": {"C": [1]}, "n_iter": 2.5}, ValueError, "'n_iter' parameter"),
    ({"param_distributions": {"C": [1]}, "n_iter": True}, ValueError, "'n_iter' parameter"),
    ({"param_distributions": {"C": 3}}, ValueError, "'param_distributions' parameter of Experiment must map"),
    ({"param_distributions": {"C": []}}, ValueError, "non-empty list of values; got \\[\\] for 'C'"),
    ({"param_distributions": []}, ValueError, "non-empty dict or list of dicts"),
    ({"param_distributions": "C"}, TypeError, "'param_distributions' parameter of Experiment must be a dict"),
    ({"param_distributions": {"Cee": loguniform(1, 2)}}, ValueError,
     r"'param_distributions' parameter of Experiment names \['Cee'\]"),
])
def test_bad_randomized_arguments_are_refused_naming_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        mp.Experiment(LogisticRegression(), **kwargs)


def test_sampled_candidates_share_pipeline_prefixes():
    from mempamal.engine.grid import prefix_keys

    experiment = mp.Experiment(pipeline(), param_distributions=MIXED, n_iter=8, random_state=3)
    candidates, descriptions = experiment.search_space()
    keys = prefix_keys(experiment.estimator, descriptions)
    assert keys is not None
    # Equal keys mean equal parameters of the leading steps (so sharing is exact) ...
    for a in range(len(candidates)):
        for b in range(len(candidates)):
            if keys[a][-1] == keys[b][-1]:
                assert {k: v for k, v in candidates[a].items() if not k.startswith("clf__")} == \
                       {k: v for k, v in candidates[b].items() if not k.startswith("clf__")}
    # ... and 8 candidates over 3 x 2 list values do share some.
    assert len({key[-1] for key in keys}) < len(candidates)
