"""The ExperimentBuilder driven from Python builds the Experiment one would write by hand."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mempamal as mp
from mempamal.jupyter import ExperimentBuilder
from mempamal.jupyter.grid_text import parse_grid_text

from conftest import assert_matches_sklearn

X, y = load_iris(return_X_y=True)


def test_form_choices_give_the_same_experiment_as_written_by_hand():
    builder = ExperimentBuilder(X=X, y=y)
    builder.estimator.value = "scaled LogisticRegression"
    builder.grid.value = "logisticregression__C: log(-2, 2, 5)\nlogisticregression__fit_intercept: [True, False]"
    builder.outer.n_splits.value, builder.outer.seed.value = 4, 7
    builder.inner.n_splits.value, builder.inner.shuffle.value = 3, False
    builder.scoring.value = ("accuracy", "f1_macro")
    builder.refit.value = "f1_macro"
    builder.n_permutations.value = 5
    by_hand = mp.Experiment(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        param_grid={"logisticregression__C": np.logspace(-2, 2, 5), "logisticregression__fit_intercept": [True, False]},
        cv=StratifiedKFold(4, shuffle=True, random_state=7), inner_cv=StratifiedKFold(3),
        scoring=["accuracy", "f1_macro"], refit="f1_macro", n_permutations=5, random_state=0)
    assert builder.experiment().describe() == by_hand.describe()


def test_invalid_choices_show_a_message_and_disable_run():
    builder = ExperimentBuilder(X=X, y=y)
    assert not builder.run_button.disabled
    builder.grid.value = "alpha: [1.0]"
    assert builder.run_button.disabled and "not a parameter" in builder.message.value
    builder.grid.value = "logisticregression__C: log(1, 2)"
    assert builder.run_button.disabled and "grid line 1" in builder.message.value
    builder.grid.value = ""
    assert not builder.run_button.disabled
    assert ExperimentBuilder().run_button.disabled  # no X, y chosen


def test_notebook_variables_feed_estimator_data_and_groups():
    groups = np.arange(len(y)) % 5
    custom = LogisticRegression(C=0.5, max_iter=400)
    builder = ExperimentBuilder(namespace={"features": X, "target": y, "subjects": groups, "model": custom})
    builder.estimator.value = "model (notebook)"
    builder.X.value, builder.y.value, builder.groups.value = "features", "target", "subjects"
    builder.outer.splitter.value = "GroupKFold"
    experiment = builder.experiment()
    assert experiment.estimator.get_params() == custom.get_params()
    assert isinstance(experiment.cv, GroupKFold)
    assert builder.inputs()[2] is groups


def test_run_button_returns_at_once_disables_buttons_and_results_equal_sklearn(tmp_path):
    builder = ExperimentBuilder(X=X, y=y)
    builder.grid.value = "logisticregression__C: [0.1, 1.0]"
    builder.outer.n_splits.value, builder.inner.n_splits.value = 3, 2
    builder.n_jobs.value = 1
    builder.workdir.value = str(tmp_path / "wd")
    builder.run_button.click()
    run = builder.last_run
    assert run is not None and builder.tabs.selected_index == 2
    seen_disabled = builder.run_button.disabled and builder.preview_button.disabled
    run.wait()
    builder._follower.join(timeout=60)
    assert seen_disabled and not builder.run_button.disabled and builder.run_button.description == "Run"
    assert_matches_sklearn(builder.results, builder.experiment(), X, y)
    builder.export_path.value = str(tmp_path / "wf.json")
    builder.export_button.click()
    assert (tmp_path / "wf.json").exists() and "exported" in builder.message.value
    builder.preview_button.click()
    assert builder.tabs.selected_index == 1


def test_builder_run_from_code_waits_and_returns_sklearns_results(tmp_path, capsys):
    builder = ExperimentBuilder(X=X, y=y)
    builder.outer.n_splits.value, builder.n_jobs.value = 3, 1
    builder.workdir.value = str(tmp_path / "wd")
    results = builder.run()
    assert_matches_sklearn(results, builder.experiment(), X, y)
    assert "<Results" in capsys.readouterr().out  # displayed where builder.run() was called


def test_form_lists_tunable_parameters_and_defaults_to_the_notebooks_X_and_y():
    builder = ExperimentBuilder(namespace={"X": X, "y": y, "other": X})
    assert builder.X.value == "X" and builder.y.value == "y" and not builder.run_button.disabled
    listed = builder.parameters.value
    assert "logisticregression__C" in listed
    for plumbing in ("memory", "steps", "verbose", "logisticregression__n_jobs", "standardscaler,"):
        assert plumbing not in listed
    assert "one parameter per line" in builder.grid.placeholder


def test_grid_text_parses_lists_and_ranges_and_names_bad_lines():
    grid = parse_grid_text("a: lin(0, 1, 3)  # comment\n\nb: ['x', 'y']")
    np.testing.assert_array_equal(grid["a"], [0.0, 0.5, 1.0])
    assert grid["b"] == ["x", "y"]
    with pytest.raises(ValueError, match="grid line 2"):
        parse_grid_text("a: [1]\nb = 3")


def test_run_panel_shows_finished_folds_from_the_outputs(tmp_path):
    from mempamal.jupyter.panel import RunPanel

    workflow = mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(X, y, workdir=tmp_path / "wd")
    run = workflow.submit(n_jobs=1)
    run.wait()
    panel = RunPanel(run)
    assert panel.bar.value == panel.bar.max == 5 and panel.bar.bar_style == "success"
    assert "finished on local: 5/5 tasks done, 3/3 outer folds" in panel.line.value
    reference = cross_validate(LogisticRegression(max_iter=300), X, y, cv=3)["test_score"]
    for score in reference:
        assert f"{score:.4f}" in panel.folds.value
    assert repr(panel).startswith("mempamal run panel: finished")


def test_group_splitter_without_groups_and_zero_workers_disable_run():
    groups = np.arange(len(y)) % 5
    builder = ExperimentBuilder(X=X, y=y, namespace={"subjects": groups})
    builder.outer.splitter.value = "GroupKFold"
    assert builder.run_button.disabled and "GroupKFold needs groups" in builder.message.value
    builder.groups.value = "subjects"
    assert not builder.run_button.disabled
    builder.n_jobs.value = 0
    assert builder.run_button.disabled and "workers" in builder.message.value
    builder.n_jobs.value = 1
    builder.workdir.value = " "
    assert builder.run_button.disabled and "workdir" in builder.message.value


def slow_identity(X):
    import time

    time.sleep(0.05)
    return X


def test_cancel_button_stops_the_run_and_gives_the_form_back(tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    slow = make_pipeline(FunctionTransformer(slow_identity), LogisticRegression(max_iter=300))
    builder = ExperimentBuilder(X=X, y=y, namespace={"slow": slow})
    builder.estimator.value = "slow (notebook)"
    builder.grid.value = "logisticregression__C: [0.1, 1.0]"
    builder.n_jobs.value, builder.workdir.value = 1, str(tmp_path / "wd")
    assert builder.cancel_button.disabled
    builder.run_button.click()
    assert not builder.cancel_button.disabled and builder.run_button.disabled
    builder.run_button.click()  # a second click while running starts nothing
    assert "a run is going" in builder.message.value
    builder.cancel_button.click()
    builder._follower.join(timeout=60)
    assert builder.last_run.state == "cancelled" and builder.results is None
    assert builder.cancel_button.disabled and not builder.run_button.disabled
    assert "RunCancelled" in builder.message.value
