"""The ExperimentBuilder driven from Python builds the Experiment one would write by hand."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold
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


def test_run_button_runs_and_results_equal_sklearn(tmp_path):
    builder = ExperimentBuilder(X=X, y=y)
    builder.grid.value = "logisticregression__C: [0.1, 1.0]"
    builder.outer.n_splits.value, builder.inner.n_splits.value = 3, 2
    builder.n_jobs.value = 1
    builder.workdir.value = str(tmp_path / "wd")
    builder.run_button.click()
    assert builder.results is not None and builder.tabs.selected_index == 2
    assert_matches_sklearn(builder.results, builder.experiment(), X, y)
    builder.export_path.value = str(tmp_path / "wf.json")
    builder.export_button.click()
    assert (tmp_path / "wf.json").exists() and "exported" in builder.message.value
    builder.preview_button.click()
    assert builder.tabs.selected_index == 1


def test_grid_text_parses_lists_and_ranges_and_names_bad_lines():
    grid = parse_grid_text("a: lin(0, 1, 3)  # comment\n\nb: ['x', 'y']")
    np.testing.assert_array_equal(grid["a"], [0.0, 0.5, 1.0])
    assert grid["b"] == ["x", "y"]
    with pytest.raises(ValueError, match="grid line 2"):
        parse_grid_text("a: [1]\nb = 3")


def test_live_fold_scores_table_reads_finished_fold_outputs(tmp_path):
    from mempamal.jupyter.widgets import _LiveFoldScores

    workflow = mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(X, y, workdir=tmp_path / "wd")
    live = _LiveFoldScores(workflow)
    mp.run_task(workflow.workdir, "score-o1")
    live.refresh()
    assert "1/3" in live.widget.value and "score-o1" in live.widget.value and "score-o0" not in live.widget.value
    with live:
        workflow.run(n_jobs=1, progress=False)
    assert "3/3" in live.widget.value


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
