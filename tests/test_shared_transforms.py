"""Shared-prefix tasks transform each split once per prefix; scores stay bit-identical.

Every comparison is ``np.array_equal`` (NaN equal to NaN), never a
tolerance: the inner ``split<i>_test_*``/``split<i>_train_*`` entries against
the ``cv_results_`` of scikit-learn's own ``GridSearchCV`` run by
``cross_validate`` on the same data and splitters, and the outer scores.
"""

import hashlib
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.datasets import make_classification, make_regression
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, check_scoring, make_scorer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import mempamal as mp
from mempamal._sklearn_compat import SKLEARN_VERSION
from mempamal.engine.fitting import evaluate_points
from mempamal.engine.grid import expand_grid, prefix_keys
from mempamal.engine.scoring import build_scorer

from reference_outputs import reference_cross_validate

Xc, yc = make_classification(n_samples=90, n_features=12, n_informative=5, random_state=0)
Xr, yr = make_regression(n_samples=80, n_features=10, noise=8.0, random_state=0)
wc = np.random.RandomState(0).uniform(0.1, 3.0, len(yc))
# Two outer folds keep the file fast; the counting tests use three inner folds.
OUTER, INNER = StratifiedKFold(2, shuffle=True, random_state=0), StratifiedKFold(2, shuffle=True, random_state=1)


def scaler_pca_logreg(final=None):
    return Pipeline([("scale", StandardScaler()), ("pca", PCA(random_state=0)),
                     ("logreg", final if final is not None else LogisticRegression(max_iter=500))])


GRID = {"pca__n_components": [3, 6], "logreg__C": [0.01, 1.0, 100.0]}


class FailsSometimes(ClassifierMixin, BaseEstimator):
    """A logistic regression whose fit fails for C > 10 and whose predict fails for C < 0.1."""

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        if self.C > 10:
            raise ValueError("C too large for this test estimator")
        self.model_ = LogisticRegression(C=self.C, max_iter=500).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        if self.C < 0.1:
            raise ValueError("C too small to predict for this test estimator")
        return self.model_.predict(X)


class CountingTransformer(TransformerMixin, BaseEstimator):
    """Adds ``shift`` to X; remembers a digest of every X ``transform`` received (class attribute)."""

    seen = []

    def __init__(self, shift=0.0):
        self.shift = shift

    def fit(self, X, y=None):
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        CountingTransformer.seen.append(_digest(X))
        return X + self.shift


def _digest(X):
    return hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest()


def assert_bit_identical(results, reference, outer=True):
    """Inner split scores (test and train), best parameters and outer scores exactly as scikit-learn's."""
    for metric in results.metrics if outer else []:
        key = "score" if metric == "score" else metric
        assert np.array_equal(results.test_scores[metric], reference[f"test_{key}"], equal_nan=True), metric
        if results.train_scores is not None:
            assert np.array_equal(results.train_scores[metric], reference[f"train_{key}"], equal_nan=True)
    for fold, search in enumerate(reference["estimator"]):
        ours, theirs = results.cv_results(fold), search.cv_results_
        entries = [k for k in theirs if k.startswith("split")]
        assert entries and all(k in ours for k in entries)
        for k in entries:
            assert np.array_equal(np.asarray(ours[k], dtype=float), np.asarray(theirs[k], dtype=float),
                                  equal_nan=True), f"fold {fold} {k}: {ours[k]} != {theirs[k]}"
        # repr: a grid value may be an estimator (equal only to itself).
        assert repr(sorted(results.best_params[fold].items())) == repr(sorted(search.best_params_.items()))


def run_and_compare(experiment, X, y, tmp_path, params=None, routing=False, outer=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # failing fits and scorings warn in both
        with sklearn.config_context(enable_metadata_routing=routing):
            workflow = experiment.build(X, y, params=params, workdir=tmp_path / "wd")
        results = workflow.run(n_jobs=1, progress=False)
        with sklearn.config_context(enable_metadata_routing=routing):
            reference = reference_cross_validate(experiment, X, y, params=params, routing=routing)
    assert_bit_identical(results, reference, outer)
    return results


CLASSIFIER_SCORINGS = {
    "accuracy": "accuracy", "roc_auc": "roc_auc", "neg_log_loss": "neg_log_loss",
    "balanced_accuracy": "balanced_accuracy", "default-score": None,
    "dict": {"acc": "accuracy", "auc": "roc_auc", "ll": "neg_log_loss", "bacc": "balanced_accuracy"},
}


@pytest.mark.parametrize("name", sorted(CLASSIFIER_SCORINGS))
def test_scaler_pca_logreg_scores_bit_identical(name, tmp_path):
    scoring = CLASSIFIER_SCORINGS[name]
    experiment = mp.Experiment(scaler_pca_logreg(), GRID, cv=OUTER, inner_cv=INNER, scoring=scoring,
                               refit="auc" if isinstance(scoring, dict) else True,
                               return_train_score=name in ("dict", "default-score", "roc_auc"), final_fit=False)
    run_and_compare(experiment, Xc, yc, tmp_path)


def test_regressor_pipeline_r2_and_mse_bit_identical(tmp_path):
    pipeline = Pipeline([("scale", StandardScaler()), ("pca", PCA(random_state=0)), ("ridge", Ridge())])
    experiment = mp.Experiment(pipeline, {"pca__n_components": [2, 5], "ridge__alpha": [0.1, 10.0, 1000.0]},
                               cv=KFold(3, shuffle=True, random_state=0), inner_cv=KFold(2), final_fit=False,
                               scoring={"r2": "r2", "mse": "neg_mean_squared_error"}, refit="r2",
                               return_train_score=True)
    run_and_compare(experiment, Xr, yr, tmp_path)


def test_final_step_failing_to_fit_or_predict_gives_error_score_like_sklearn(tmp_path):
    experiment = mp.Experiment(scaler_pca_logreg(FailsSometimes()),
                               {"pca__n_components": [3, 6], "logreg__C": [0.01, 1.0, 100.0]},
                               cv=OUTER, inner_cv=INNER, error_score=np.nan, return_train_score=True,
                               final_fit=False)
    results = run_and_compare(experiment, Xc, yc, tmp_path)
    table = results.cv_results(0)
    assert np.isnan(table["split0_test_score"]).sum() == 4  # C=0.01 cannot predict, C=100 cannot fit


def test_passthrough_steps_and_a_passthrough_grid_value(tmp_path):
    pipeline = Pipeline([("scale", StandardScaler()), ("nothing", "passthrough"), ("pca", PCA(random_state=0)),
                         ("none", None), ("logreg", LogisticRegression(max_iter=500))])
    grid = {"scale": [StandardScaler(), "passthrough"], "pca__n_components": [3, 6], "logreg__C": [0.1, 10.0]}
    experiment = mp.Experiment(pipeline, grid, cv=OUTER, inner_cv=INNER, scoring=["accuracy", "roc_auc"],
                               refit="roc_auc", return_train_score=True, final_fit=False)
    run_and_compare(experiment, Xc, yc, tmp_path)


def test_final_step_writing_into_its_input_is_scored_as_sklearn_does(tmp_path):
    """A final Pipeline with StandardScaler(copy=False) scales its input in place: scikit-learn
    gives each response method a fresh array, so the shortcut must not hand it a shared one."""
    final = make_pipeline(StandardScaler(copy=False), LogisticRegression(max_iter=500))
    experiment = mp.Experiment(scaler_pca_logreg(final), {"pca__n_components": [3, 6],
                                                          "logreg__logisticregression__C": [0.1, 10.0]},
                               cv=OUTER, inner_cv=INNER, scoring=["accuracy", "roc_auc", "neg_log_loss"],
                               refit="accuracy", return_train_score=True, final_fit=False)
    run_and_compare(experiment, Xc, yc, tmp_path)


def test_prefix_writing_into_its_input_is_scored_as_sklearn_does(tmp_path):
    """StandardScaler(copy=False) first: scikit-learn's second response method sees the
    test X already scaled by the first; the shortcut must not hide that."""
    pipeline = Pipeline([("scale", StandardScaler(copy=False)), ("pca", PCA(random_state=0)),
                         ("logreg", LogisticRegression(max_iter=500))])
    experiment = mp.Experiment(pipeline, GRID, cv=OUTER, inner_cv=INNER, scoring=["accuracy", "neg_log_loss"],
                               refit="accuracy", return_train_score=True, final_fit=False)
    run_and_compare(experiment, Xc, yc, tmp_path)


def test_sample_weight_routed_to_the_scorer_bit_identical(tmp_path):
    with sklearn.config_context(enable_metadata_routing=True):
        scoring = {"weighted": make_scorer(accuracy_score).set_score_request(sample_weight=True),
                   "plain": make_scorer(accuracy_score).set_score_request(sample_weight=False)}
        # The fits ignore the weights: no fit metadata, so the prefix is shared.
        pipeline = scaler_pca_logreg(LogisticRegression(max_iter=500).set_fit_request(sample_weight=False))
        pipeline.named_steps["scale"].set_fit_request(sample_weight=False)
        experiment = mp.Experiment(pipeline, GRID, cv=OUTER, inner_cv=INNER, scoring=scoring,
                                   refit="weighted", return_train_score=True, final_fit=False)
    run_and_compare(experiment, Xc, yc, tmp_path, params={"sample_weight": wc}, routing=True)


def test_sample_weight_routed_to_the_default_score_bit_identical(tmp_path):
    """Routing with the estimator's own score: Pipeline.score routes; the whole pipeline is scored."""
    with sklearn.config_context(enable_metadata_routing=True):
        final = LogisticRegression(max_iter=500).set_score_request(sample_weight=True)
        pipeline = scaler_pca_logreg(final.set_fit_request(sample_weight=False))
        pipeline.named_steps["scale"].set_fit_request(sample_weight=False)
        experiment = mp.Experiment(pipeline, GRID, cv=OUTER, inner_cv=INNER,
                                   return_train_score=True, final_fit=False)
    if _sklearn_refuses_pipeline_score_routing():
        # scikit-learn 1.6 asks the Pipeline itself for a score request,
        # so cross_validate refuses this (every inner search fails); the
        # build refuses it up front, with scikit-learn's message.
        assert SKLEARN_VERSION < (1, 9), "the newest scikit-learn routes this case"
        with sklearn.config_context(enable_metadata_routing=True), \
                pytest.raises(ValueError, match=r"not explicitly set .* for Pipeline\.score"):
            experiment.build(Xc, yc, params={"sample_weight": wc}, workdir=tmp_path / "wd")
        assert not (tmp_path / "wd").exists()
        return
    run_and_compare(experiment, Xc, yc, tmp_path, params={"sample_weight": wc}, routing=True)


def _sklearn_refuses_pipeline_score_routing():
    """Whether this scikit-learn's search, scoring a Pipeline with its own ``score``, refuses to route to it."""
    from sklearn.exceptions import UnsetMetadataPassedError
    from sklearn.model_selection import GridSearchCV

    with sklearn.config_context(enable_metadata_routing=True):
        final = LogisticRegression().set_score_request(sample_weight=True).set_fit_request(sample_weight=False)
        try:
            GridSearchCV(make_pipeline(final), {}, cv=2).fit(Xc, yc, sample_weight=wc)
        except UnsetMetadataPassedError:
            return True
    return False


def test_a_custom_scorer_callable_sees_the_whole_pipeline(tmp_path):
    def n_steps_and_accuracy(estimator, X, y):
        return len(estimator.steps) + accuracy_score(y, estimator.predict(X))

    experiment = mp.Experiment(scaler_pca_logreg(), GRID, cv=OUTER, inner_cv=INNER, scoring=n_steps_and_accuracy,
                               final_fit=False)
    # Inner scores only: scikit-learn's outer scorer gets the GridSearchCV, which has no steps.
    results = run_and_compare(experiment, Xc, yc, tmp_path, outer=False)
    assert np.all(np.asarray(results.cv_results(0)["split0_test_score"]) >= 3)


def _counting_case():
    pipeline = Pipeline([("count", CountingTransformer()), ("pca", PCA(random_state=0)),
                         ("logreg", LogisticRegression(max_iter=500))])
    grid = {"count__shift": [0.0, 1.0], "pca__n_components": [3, 6], "logreg__C": [0.01, 1.0, 100.0]}
    return pipeline, grid


def test_each_prefix_transforms_the_test_split_once(tmp_path):
    """In one task, the test split goes through transform once per distinct prefix, not once per point."""
    pipeline, grid = _counting_case()
    candidates, descriptions = expand_grid(grid)
    keys = prefix_keys(pipeline, descriptions)
    train, test = next(iter(INNER.split(Xc, yc)))
    data = (Xc[train], yc[train], Xc[test], yc[test])
    for scoring in ["accuracy", ["accuracy", "roc_auc", "neg_log_loss"], None]:
        scorer, metrics, _ = build_scorer(pipeline, scoring)
        CountingTransformer.seen = []
        results = evaluate_points(pipeline, candidates, range(len(candidates)), keys, data, scorer, metrics,
                                  np.nan, return_train_score=True)
        assert not any(r["fit_failed"] for r in results)
        n_prefixes = len({k[-1] for k in keys})
        assert (n_prefixes, len(candidates)) == (4, 12)
        assert CountingTransformer.seen.count(_digest(Xc[test])) == n_prefixes, scoring
        # The train split is transformed once per prefix for the train scores, besides fit_transform's
        # transform once per distinct first step.
        assert CountingTransformer.seen.count(_digest(Xc[train])) == n_prefixes + 2, scoring
        for point, result in enumerate(results):
            single = evaluate_points(pipeline, candidates, [point], None, data, scorer, metrics, np.nan,
                                     return_train_score=True)[0]
            assert result["scores"] == single["scores"] and result["train_scores"] == single["train_scores"]


def test_each_prefix_transforms_the_test_split_once_in_a_run(tmp_path):
    """The same through a real run (in-process pool): every inner test split is transformed
    once per prefix its task holds."""
    pipeline, grid = _counting_case()
    # Three inner folds: with two, one split's test part is the other's training part.
    inner = StratifiedKFold(3, shuffle=True, random_state=1)
    experiment = mp.Experiment(pipeline, grid, cv=OUTER, inner_cv=inner, final_fit=False)
    workflow = experiment.build(Xc, yc, workdir=tmp_path / "wd", chunk_size=64)
    CountingTransformer.seen = []
    results = workflow.run(n_jobs=1, progress=False)
    assert np.isfinite(results.test_scores["score"]).all()
    for outer_train, _ in OUTER.split(Xc, yc):
        X_outer, y_outer = Xc[outer_train], yc[outer_train]
        for _, inner_test in inner.split(X_outer, y_outer):
            # One task per (fold, prefix group), two distinct shifts, two PCA sizes.
            assert CountingTransformer.seen.count(_digest(X_outer[inner_test])) == 4


def test_an_unknown_scorer_keeps_the_whole_pipeline():
    from mempamal.engine.shared_transforms import scorer_allows_shortcut

    assert scorer_allows_shortcut(check_scoring(LogisticRegression(), "neg_log_loss"))
    assert scorer_allows_shortcut(build_scorer(LogisticRegression(), ["accuracy", "roc_auc"])[0])
    assert scorer_allows_shortcut(check_scoring(LogisticRegression(), None))
    assert not scorer_allows_shortcut(lambda estimator, X, y: 0.0)
    with sklearn.config_context(enable_metadata_routing=True):
        assert not scorer_allows_shortcut(check_scoring(LogisticRegression(), None))


@pytest.mark.parametrize("case", ["final-writes-into-its-input", "prefix-writes-into-its-input"])
def test_in_place_writes_are_detected_and_scored_as_without_sharing(case, monkeypatch):
    """Shared scoring equals per-point scoring (each point its own pipeline and copies, as
    scikit-learn) in both in-place cases, and these cases need the checks: without them
    the scores differ."""
    from mempamal.engine import shared_transforms

    if case.startswith("final"):
        pipeline = scaler_pca_logreg(make_pipeline(StandardScaler(copy=False), LogisticRegression(max_iter=500)))
        grid = {"pca__n_components": [3, 6], "logreg__logisticregression__C": [0.1, 10.0]}
    else:
        pipeline, grid = Pipeline([("scale", StandardScaler(copy=False)), ("pca", PCA(random_state=0)),
                                   ("logreg", LogisticRegression(max_iter=500))]), GRID
    candidates, descriptions = expand_grid(grid)
    keys = prefix_keys(pipeline, descriptions)
    train, test = next(iter(INNER.split(Xc, yc)))
    data = (Xc[train], yc[train], Xc[test], yc[test])
    scorer, metrics, _ = build_scorer(pipeline, ["accuracy", "roc_auc", "neg_log_loss"])

    def scores(point_keys):
        return [(r["scores"], r["train_scores"]) for r in evaluate_points(
            pipeline, candidates, range(len(candidates)), point_keys, data, scorer, metrics, np.nan,
            return_train_score=True)]

    reference = scores(None)
    assert scores(keys) == reference
    monkeypatch.setattr(shared_transforms, "_same_bits", lambda a, b: True)
    assert scores(keys) != reference
