"""The model, not just the scores: ``final_fit`` (res.best_estimator_ & co) and ``return_estimator``.

Every comparison is with scikit-learn's own answer on the same data:
``GridSearchCV(...).fit(X, y, groups=groups)`` for the final search,
``clone(estimator).fit(X, y)`` for plain CV, and
``cross_validate(..., return_estimator=True)["estimator"]`` for the folds.
"""

import os

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import mempamal as mp
from mempamal import store

from conftest import assert_matches_sklearn
from test_backends import backend_options, dask_client, ipp_client  # noqa: F401 (fixtures)

X_iris, y_iris = load_iris(return_X_y=True)
X_diab, y_diab = load_diabetes(return_X_y=True)
X_diab, y_diab = X_diab[:120], y_diab[:120]
GROUPS = np.arange(len(y_iris)) % 10
RNG = np.random.RandomState(0)
X_NEW_IRIS = RNG.normal(X_iris.mean(0), X_iris.std(0), size=(30, 4))
X_NEW_DIAB = RNG.normal(X_diab.mean(0), X_diab.std(0), size=(30, X_diab.shape[1]))

#: name -> (Experiment kwargs, X, y, groups, new data, prediction method)
CASES = {
    "classification-pipeline": (
        dict(estimator=make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
             param_grid={"logisticregression__C": [0.01, 0.1, 1.0, 10.0]}, cv=3, inner_cv=3),
        X_iris, y_iris, None, X_NEW_IRIS, "predict_proba"),
    "regression-plain-estimator": (
        dict(estimator=Ridge(), param_grid={"alpha": [0.01, 1.0, 100.0]}, cv=3, inner_cv=4,
             scoring="neg_mean_squared_error"),
        X_diab, y_diab, None, X_NEW_DIAB, "predict"),
    "groups-groupkfold-inner": (
        dict(estimator=SVC(), param_grid={"C": [0.1, 1.0], "gamma": ["scale", 0.1]},
             cv=GroupKFold(3), inner_cv=GroupKFold(3)),
        X_iris, y_iris, GROUPS, X_NEW_IRIS, "decision_function"),
    "multimetric-refit": (
        dict(estimator=LogisticRegression(max_iter=500), param_grid={"C": [0.01, 0.1, 1.0]}, cv=3, inner_cv=2,
             scoring=["accuracy", "f1_macro"], refit="f1_macro"),
        X_iris, y_iris, None, X_NEW_IRIS, "predict_proba"),
    "refit-callable": (
        dict(estimator=LogisticRegression(max_iter=500), param_grid={"C": [0.01, 0.1, 1.0]}, cv=3, inner_cv=2,
             refit=lambda results: int(np.argmin(results["param_C"]))),
        X_iris, y_iris, None, X_NEW_IRIS, "predict"),
}


def _grid_search(experiment):
    return GridSearchCV(experiment.estimator, experiment.param_grid, cv=experiment.inner_cv,
                        scoring=experiment.scoring, refit=experiment.refit)


def assert_same_cv_results(ours, theirs, atol=1e-12):
    """Every key of sklearn's cv_results_, in its order; scores to 1e-12, times only shaped alike."""
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        if key.endswith("_time"):
            assert np.shape(ours[key]) == np.shape(value), key
        elif key == "params":
            assert repr(ours[key]) == repr(value)
        elif key.startswith("param_"):
            assert repr(ours[key].tolist()) == repr(value.tolist()), key
            assert (np.ma.getmaskarray(ours[key]) == np.ma.getmaskarray(value)).all(), key
        else:
            np.testing.assert_allclose(ours[key], value, rtol=0, atol=atol, err_msg=key)
            assert ours[key].dtype == value.dtype, key


@pytest.mark.parametrize("case", sorted(CASES))
def test_final_model_and_fold_estimators_equal_sklearn(case, tmp_path):
    kwargs, X, y, groups, X_new, method = CASES[case]
    experiment = mp.Experiment(**kwargs, return_estimator=True)
    res = experiment.run(X, y, groups=groups, workdir=tmp_path / "wd", n_jobs=2, progress=False)

    search = _grid_search(experiment).fit(X, y, groups=groups)
    assert res.best_index_ == search.best_index_
    assert repr(res.best_params_) == repr(search.best_params_)
    assert_same_cv_results(res.final_cv_results_, search.cv_results_)
    ours, theirs = getattr(res.best_estimator_, method)(X_new), getattr(search.best_estimator_, method)(X_new)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    assert repr(res.best_estimator_) == repr(search.best_estimator_)

    # The outer folds are unchanged, and each kept estimator predicts as cross_validate's.
    reference = assert_matches_sklearn(res, experiment, X, y, groups)
    assert len(res.estimators_) == len(reference["estimator"])
    for fold, (mine, searched) in enumerate(zip(res.estimators_, reference["estimator"])):
        np.testing.assert_allclose(getattr(mine, method)(X_new), getattr(searched, method)(X_new),
                                   rtol=0, atol=1e-12, err_msg=f"fold {fold}")
    assert "final model: best_params_={" in repr(res)


def test_plain_cv_final_model_is_the_estimator_fitted_on_all_data(tmp_path):
    experiment = mp.Experiment(make_pipeline(StandardScaler(), Ridge(alpha=3.0)), cv=KFold(4), return_estimator=True)
    workflow = experiment.build(X_diab, y_diab, workdir=tmp_path / "wd")
    select_all = workflow.task("select-all")
    assert select_all.deps == () and "select-all" in workflow.task("final").deps
    res = workflow.run(n_jobs=2, progress=False)

    expected = clone(experiment.estimator).fit(X_diab, y_diab)
    np.testing.assert_allclose(res.best_estimator_.predict(X_NEW_DIAB), expected.predict(X_NEW_DIAB), rtol=0, atol=1e-12)
    reference = cross_validate(experiment.estimator, X_diab, y_diab, cv=KFold(4), return_estimator=True)
    for mine, theirs in zip(res.estimators_, reference["estimator"]):
        np.testing.assert_allclose(mine.predict(X_NEW_DIAB), theirs.predict(X_NEW_DIAB), rtol=0, atol=1e-12)
    for name in ("best_params_", "best_index_", "final_cv_results_"):
        with pytest.raises(AttributeError, match="only defined with a search"):
            getattr(res, name)
    assert "final model: best_estimator_ fitted on all the data" in repr(res)
    for path in (tmp_path / "wd" / "models").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "wd" / "models").stat().st_mode & 0o777 == 0o700


def test_final_fit_false_skips_it_all_and_changes_no_fold_result(tmp_path):
    kwargs = dict(estimator=LogisticRegression(max_iter=500), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    with_final = mp.Experiment(**kwargs).run(X_iris, y_iris, workdir=tmp_path / "a", n_jobs=1, progress=False)
    workflow = mp.Experiment(**kwargs, final_fit=False).build(X_iris, y_iris, workdir=tmp_path / "b")
    assert not [t for t in workflow.tasks if t.kind in ("fit-all", "select-all")]
    assert len(workflow.tasks) == len(mp.Workflow.open(tmp_path / "a").tasks) - 2 * 2 - 1
    without = workflow.run(n_jobs=1, progress=False)
    for name in ("best_params_", "best_index_", "final_cv_results_", "best_estimator_"):
        with pytest.raises(AttributeError, match="final_fit=False"):
            getattr(without, name)
    with pytest.raises(AttributeError, match="return_estimator=True"):
        without.estimators_
    assert not (tmp_path / "b" / "models").exists()
    # summary() and to_frame() do not change with the final fit.
    assert with_final.summary().equals(without.summary())
    columns = [c for c in without.to_frame() if not c.endswith("_time")]
    assert with_final.to_frame()[columns].equals(without.to_frame()[columns])
    assert "final model" not in repr(without) and "final model: best_params_={'C': 1.0}" in repr(with_final)


def test_permutation_split_sets_get_no_final_fit_and_no_estimators(tmp_path):
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2,
                               n_permutations=2, random_state=0, return_estimator=True)
    workflow = experiment.build(X_iris, y_iris, workdir=tmp_path / "wd", chunk_size=2)
    finals = [t.id for t in workflow.tasks if t.kind in ("fit-all", "select-all")]
    assert finals == ["fit-all-i0-c0", "fit-all-i1-c0", "select-all"]
    res = workflow.run(n_jobs=2, progress=False)
    assert sorted(p.name for p in (tmp_path / "wd" / "models").iterdir()) == ["final.pkl", "o0.pkl", "o1.pkl", "o2.pkl"]
    assert len(res.estimators_) == 3 and res.pvalue is not None


def test_a_swapped_or_edited_model_is_refused(tmp_path):
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2,
                               return_estimator=True)
    experiment.run(X_iris, y_iris, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    models = tmp_path / "wd" / "models"
    # Another (valid) pickle in place of the final model: refused before unpickling.
    store.atomic_write_bytes(models / "final.pkl", (models / "o0.pkl").read_bytes())
    res = mp.Results.load(tmp_path / "wd")
    with pytest.raises(store.WorkdirError, match=r"final\.pkl.*not the model the run wrote"):
        res.best_estimator_
    # Writable by others: refused by load_pickle's trust checks.
    os.chmod(models / "o1.pkl", 0o666)
    with pytest.raises(store.WorkdirError, match="writable by other users"):
        res.estimators_


def test_graph_shows_the_final_search_in_its_own_column(tmp_path):
    from mempamal.display.graph import GraphDisplay, aggregate_tasks

    workflow = mp.Experiment(SVC(), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2).build(
        X_iris, y_iris, workdir=tmp_path / "wd", chunk_size=1)
    nodes = aggregate_tasks(workflow.tasks, {t.id: "pending" for t in workflow.tasks})
    assert nodes[("fit-all", "all")]["total"] == 2 * 2
    assert nodes[("select-all", "all")]["deps"] == {("fit-all", "all")}
    assert ("select-all", "all") in nodes[("final", None)]["deps"]
    display = GraphDisplay.from_workflow(workflow).plot(aggregate=True)
    assert set(display.positions_) >= {("fit-all", "all"), ("select-all", "all")}
    import matplotlib.pyplot as plt

    plt.close("all")


def test_final_model_on_every_backend(backend_options, tmp_path):
    """One small case per backend: the final model and the fold estimators equal scikit-learn's."""
    name, options = backend_options
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=2, inner_cv=2,
                               return_estimator=True)
    workflow = experiment.build(X_iris, y_iris, workdir=tmp_path / "wd")
    res = workflow.run(backend=name, n_jobs=2, progress=False, **options)
    search = _grid_search(experiment).fit(X_iris, y_iris)
    assert res.best_params_ == search.best_params_
    assert_same_cv_results(res.final_cv_results_, search.cv_results_)
    np.testing.assert_allclose(res.best_estimator_.predict_proba(X_NEW_IRIS),
                               search.best_estimator_.predict_proba(X_NEW_IRIS), rtol=0, atol=1e-12)
    reference = assert_matches_sklearn(res, experiment, X_iris, y_iris)
    for mine, theirs in zip(res.estimators_, reference["estimator"]):
        np.testing.assert_allclose(mine.predict_proba(X_NEW_IRIS), theirs.predict_proba(X_NEW_IRIS), rtol=0, atol=1e-12)


def test_refit_false_behaves_like_gridsearchcv(tmp_path):
    import warnings

    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2,
                               refit=False)
    res = experiment.run(X_iris, y_iris, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    search = _grid_search(experiment).fit(X_iris, y_iris)
    assert_same_cv_results(res.final_cv_results_, search.cv_results_)
    # One metric: best_index_ and best_params_ are defined, best_estimator_ is not.
    assert res.best_index_ == search.best_index_ and res.best_params_ == search.best_params_
    assert not hasattr(search, "best_estimator_") and not hasattr(res, "best_estimator_")
    with pytest.raises(AttributeError, match="refit=False"):
        res.best_estimator_
    assert not (tmp_path / "wd" / "models").exists()
    # cross_validate cannot score a search that refit nothing: every fold gets error_score.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn's "Scoring failed"
        reference = cross_validate(_grid_search(experiment), X_iris, y_iris, cv=3)
    np.testing.assert_array_equal(res.test_scores["score"], reference["test_score"])
    assert "not refit (refit=False)" in repr(res)


def test_refit_false_with_several_metrics_is_refused_as_cross_validate_fails():
    scoring = ["accuracy", "f1_macro"]
    search = GridSearchCV(LogisticRegression(max_iter=300), {"C": [0.1, 1.0]}, cv=2, scoring=scoring, refit=False)
    with pytest.raises(AttributeError, match="predict"):
        cross_validate(search, X_iris, y_iris, cv=2, scoring=scoring)
    with pytest.raises(ValueError, match=r"'refit' parameter of Experiment .* refit=False: it has no predict"):
        mp.Experiment(LogisticRegression(), param_grid={"C": [0.1, 1.0]}, scoring=scoring, refit=False)


class FailsOnSeventyFive(LogisticRegression):
    """Fails exactly on the inner fits of the final search (75 rows: inner_cv=2 on all 150)."""

    def fit(self, X, y, sample_weight=None):
        if len(X) == 75:
            raise ValueError("no fit on 75 rows")
        return super().fit(X, y, sample_weight)


def test_a_final_search_whose_fits_all_fail_raises_gridsearchcvs_error(tmp_path):
    experiment = mp.Experiment(FailsOnSeventyFive(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    res = experiment.run(X_iris, y_iris, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    assert_matches_sklearn(res, experiment, X_iris, y_iris)  # the outer folds are not affected
    with pytest.raises(ValueError, match="All the 4 fits failed") as expected:
        _grid_search(experiment).fit(X_iris, y_iris)
    for name in ("best_params_", "best_index_", "final_cv_results_", "best_estimator_"):
        with pytest.raises(ValueError, match="final search on all the data failed") as ours:
            getattr(res, name)
        assert str(expected.value).splitlines()[0] in str(ours.value)
    assert "final model: none (the search on all the data failed)" in repr(res)
    # The displays and the CLI still show the outer results (no crash on the failed final search).
    assert "final model" not in res._repr_html_()
    _check_cli_results(tmp_path / "wd", final=None)


def _check_cli_results(workdir, final):
    import contextlib
    import io
    import json

    from mempamal.cli import main as cli_main

    text, document = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(text):
        assert cli_main(["results", str(workdir)]) == 0
    with contextlib.redirect_stdout(document):
        assert cli_main(["results", str(workdir), "--json"]) == 0
    assert json.loads(document.getvalue())["best_params_"] == final
    assert ("best parameters on all the data (final model)" in text.getvalue()) == (final is not None)


def test_results_displays_and_cli_show_the_final_models_parameters(tmp_path):
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    res = experiment.run(X_iris, y_iris, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    expected = _grid_search(experiment).fit(X_iris, y_iris).best_params_
    assert "final model" in res._repr_html_() and repr(expected["C"]) in res._repr_html_().split("final model")[1]
    _check_cli_results(tmp_path / "wd", final={"C": float(expected["C"])})


def test_a_final_fit_that_raises_keeps_the_outer_results_and_raises_on_the_model(tmp_path):
    y = y_iris.astype(float)
    y[:50] += 0.5  # continuous labels: LogisticRegression refuses the whole data
    experiment = mp.Experiment(LogisticRegression(max_iter=300), cv=KFold(3))
    with pytest.warns(UserWarning):  # the outer fits that fail too (FitFailedWarning)
        res = experiment.run(X_iris, y, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    with pytest.raises(ValueError) as expected:
        clone(experiment.estimator).fit(X_iris, y)
    with pytest.raises(ValueError, match="final search on all the data failed") as ours:
        res.best_estimator_
    assert str(expected.value) in str(ours.value)


def test_train_scores_predictions_and_metadata_on_every_backend(backend_options, tmp_path):
    """The rest of the model contract on each backend: train scores, out-of-fold predictions and
    build(params=) equal cross_validate / cross_val_predict with the same sample weights."""
    from reference_outputs import (assert_same_predictions, assert_train_scores_match, reference_cross_validate,
                                   reference_predictions)

    name, options = backend_options
    weights = np.random.RandomState(0).uniform(0.2, 3.0, len(y_iris))
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2,
                               return_train_score=True, predict="predict_proba", final_fit=False)
    params = {"sample_weight": weights}
    workflow = experiment.build(X_iris, y_iris, params=params, workdir=tmp_path / "wd")
    res = workflow.run(backend=name, n_jobs=2, progress=False, **options)
    assert_train_scores_match(res, reference_cross_validate(experiment, X_iris, y_iris, None, params))
    assert_same_predictions(res.predictions, reference_predictions(experiment, X_iris, y_iris, None, params))
