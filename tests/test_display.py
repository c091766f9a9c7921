"""Display objects draw the results' own numbers (checked on the drawn artists)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.svm import SVC

import mempamal as mp

X, y = load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    experiment = mp.Experiment(SVC(), param_grid={"C": [0.1, 1.0, 10.0], "gamma": [0.01, 0.1]}, cv=3,
                               inner_cv=3, scoring=["accuracy", "f1_macro"], refit="accuracy",
                               n_permutations=4, random_state=0)
    return experiment.run(X, y, workdir=tmp_path_factory.mktemp("disp") / "wd", n_jobs=1, progress=False)


def test_scores_display_draws_each_fold_score_and_returns_axes(results):
    display = results.plot_scores()
    assert display.ax_ is not None and display.figure_ is display.ax_.figure
    for metric, line in display.lines_.items():
        np.testing.assert_array_equal(line.get_ydata(), results.test_scores[metric])
    plt.close("all")


def test_grid_display_curve_is_the_inner_mean_score_per_outer_fold(results):
    display = results.plot_grid(params=["C"])
    for fold, line in enumerate(display.lines_):
        table = results.cv_results(fold)
        expected = [max(m for p, m in zip(table["params"], table["mean_test_accuracy"]) if p["C"] == c)
                    for c in (0.1, 1.0, 10.0)]
        np.testing.assert_array_equal(line.get_ydata(), expected)
        np.testing.assert_array_equal(line.get_xdata(), [0.1, 1.0, 10.0])
    plt.close("all")


def test_grid_display_heatmap_is_the_inner_mean_over_outer_folds(results):
    display = results.plot_grid()
    tables = [results.cv_results(fold)["mean_test_accuracy"].reshape(3, 2) for fold in range(results.n_outer)]
    np.testing.assert_allclose(display.image_.get_array(), np.mean(tables, axis=0), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="'params'.*'C', 'gamma'|'params'.*'gamma', 'C'"):
        results.plot_grid(params=["kernel"])
    plt.close("all")


def test_permutation_display_shows_null_scores_observed_score_and_pvalue(results):
    display = results.plot_permutation()
    assert display.line_.get_xdata()[0] == results.score
    assert sum(bar.get_height() for bar in display.bars_) == len(results.permutation_scores)
    assert f"p = {results.pvalue:.3g}" in display.line_.get_label()
    plt.close("all")


def test_timeline_display_has_one_bar_per_finished_task(results):
    display = results.plot_timeline()
    n_bars = sum(len(bars) for bars in display.bars_.values())
    assert n_bars == len(mp.Workflow.open(results.workdir).tasks)
    plt.close("all")


def test_graph_display_colors_tasks_by_status(results, tmp_path):
    workflow = mp.Experiment(SVC(), cv=3).build(X, y, workdir=tmp_path / "wd")
    mp.run_task(workflow.workdir, "score-o0")
    display = workflow.plot()
    labels = [text.get_text() for text in display.ax_.get_legend().get_texts()]
    assert labels == ["done (1)", "pending (3)"]
    assert len(display.positions_) == len(workflow.tasks)
    plt.close("all")


def test_html_reprs_summarize_experiment_workflow_and_results(results):
    assert "grid points" in results.experiment._repr_html_()
    html = results._repr_html_()
    assert "best parameters per outer fold" in html and "p-value" in html
    assert "select" in mp.Workflow.open(results.workdir)._repr_html_()
