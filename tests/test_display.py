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
    assert labels == ["done (1)", "pending (4)"]
    assert len(display.positions_) == len(workflow.tasks)
    assert display.ax_.get_title() == "5 tasks: 3 score, 1 select-all, 1 final"
    plt.close("all")


def test_html_reprs_summarize_experiment_workflow_and_results(results):
    assert "grid points" in results.experiment._repr_html_()
    html = results._repr_html_()
    assert "best parameters per outer fold" in html and "p-value" in html
    assert "select" in mp.Workflow.open(results.workdir)._repr_html_()


def test_scores_display_mean_marker_is_the_fold_mean_with_std_bars(results):
    display = results.plot_scores()
    for metric, container in display.means_.items():
        marker, _, (bars,) = container
        scores = results.test_scores[metric]
        assert marker.get_ydata()[0] == pytest.approx(scores.mean(), abs=1e-15)
        low, high = bars.get_segments()[0][:, 1]
        assert (low, high) == pytest.approx((scores.mean() - scores.std(), scores.mean() + scores.std()), abs=1e-15)
    plt.close("all")


def test_grid_display_for_one_outer_fold_shows_that_folds_inner_table(results):
    display = results.plot_grid(outer_fold=1)
    expected = results.cv_results(1)["mean_test_accuracy"].reshape(3, 2)
    np.testing.assert_array_equal(display.image_.get_array(), expected)
    assert "outer fold 1" in display.figure_.axes[-1].get_ylabel()  # the colorbar says which fold
    curve = results.plot_grid(params=["gamma"], outer_fold=2, metric="f1_macro")
    (line,) = curve.lines_
    table = results.cv_results(2)
    expected = [max(m for p, m in zip(table["params"], table["mean_test_f1_macro"]) if p["gamma"] == g)
                for g in (0.01, 0.1)]
    np.testing.assert_array_equal(line.get_ydata(), expected)
    with pytest.raises(ValueError, match="'outer_fold'"):
        results.plot_grid(outer_fold=3)
    plt.close("all")


def test_timeline_bars_span_each_tasks_recorded_start_and_end(results):
    timeline = results.timeline()
    display = results.plot_timeline()
    origin = timeline["start"].min()
    for kind, bars in display.bars_.items():
        rows = timeline[timeline["kind"] == kind]
        # A task's bar runs from when its worker was ready (a worker's start-up is drawn apart) to its end.
        np.testing.assert_allclose([bar.get_x() for bar in bars], rows["ready"] - origin, rtol=0, atol=1e-9)
        np.testing.assert_allclose([bar.get_width() for bar in bars], rows["end"] - rows["ready"], rtol=0, atol=1e-9)
    workers = {f"{h}:{p}" for h, p in zip(timeline["host"], timeline["pid"])}
    assert [label.get_text() for label in display.ax_.get_yticklabels()] == sorted(workers)
    plt.close("all")


def test_workflow_html_has_counts_by_kind_and_the_graph_picture(tmp_path):
    workflow = mp.Experiment(SVC(), param_grid={"C": [1.0, 2.0]}, cv=2, inner_cv=2).build(
        X, y, workdir=tmp_path / "wd")
    mp.run_task(workflow.workdir, "fit-o0-i0-c0")
    html = workflow._repr_html_()
    kinds = {task.kind for task in workflow.tasks}
    for kind in kinds:
        total = sum(task.kind == kind for task in workflow.tasks)
        cell = "<td style='text-align:left'>"
        assert f"{cell}{kind}</td>{cell}{int(kind == 'fit')} / {total} done" in html
    assert "<img" in html and "data:image/png;base64," in html
    assert plt.get_fignums() == []  # drawn off pyplot: the inline backend shows nothing twice


def test_displays_and_html_reprs_never_import_ipython_or_ipywidgets(results):
    """DESIGN §5: only mempamal.jupyter imports them; `import mempamal` stays light."""
    import subprocess
    import sys

    code = (
        "import sys, mempamal as mp\n"
        "light = [m for m in ('matplotlib', 'sklearn', 'IPython') if m in sys.modules]\n"
        f"res = mp.Results.load({str(results.workdir)!r})\n"
        "for plot in (res.plot_scores, res.plot_grid, res.plot_permutation, res.plot_timeline):\n"
        "    plot()\n"
        "html = res._repr_html_() + mp.Workflow.open(res.workdir)._repr_html_() + res.experiment._repr_html_()\n"
        "print(light, [m for m in ('IPython', 'ipywidgets') if m in sys.modules])\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[] []"


def test_grid_display_stars_the_point_each_outer_fold_chose(results):
    display = results.plot_grid(params=["C"])
    assert [marker.get_xdata()[0] for marker in display.best_markers_] == [p["C"] for p in results.best_params]
    for fold, marker in enumerate(display.best_markers_):
        table = results.cv_results(fold)
        best = table["params"].index(results.best_params[fold])
        assert marker.get_ydata()[0] == table["mean_test_accuracy"][best]
    assert results.plot_grid(params=["C"], metric="f1_macro").best_markers_ == []  # not the metric that chose
    plt.close("all")


def test_permutation_histogram_fits_the_null_has_integer_counts_and_states_the_smallest_pvalue(results):
    from sklearn.model_selection import permutation_test_score

    display = results.plot_permutation()
    scores = results.permutation_scores
    left = min(bar.get_x() for bar in display.bars_)
    right = max(bar.get_x() + bar.get_width() for bar in display.bars_)
    assert left == pytest.approx(scores.min()) and right == pytest.approx(scores.max())
    assert all(float(tick).is_integer() for tick in display.ax_.get_yticks())
    assert "1/(n+1) = 0.2" in display.ax_.get_title()  # 4 permutations
    assert display.ax_.get_xlabel().startswith("accuracy")
    plt.close("all")


def test_graph_is_drawn_task_by_task_when_small_and_aggregated_when_large(tmp_path):
    from mempamal.display.graph import FULL_GRAPH_MAX_TASKS, aggregate_tasks

    small = mp.Experiment(SVC(), cv=3).build(X, y, workdir=tmp_path / "small")
    drawn = small.plot()
    assert not drawn.aggregated_ and len(drawn.positions_) == len(small.tasks)
    large = mp.Experiment(SVC(), param_grid={"C": [0.1, 1.0]}, cv=5, inner_cv=4, n_permutations=3,
                          random_state=0).build(X, y, workdir=tmp_path / "large", chunk_size=1)
    assert len(large.tasks) > FULL_GRAPH_MAX_TASKS
    mp.run_task(large.workdir, "fit-o1-i0-c0")
    drawn = large.plot()
    # One box per kind x outer fold, the final search on all data, the
    # permutations folded into one box per kind, and final.
    assert drawn.aggregated_ and set(drawn.positions_) == (
        {(kind, f"o{k}") for kind in ("fit", "select") for k in range(5)}
        | {("fit-all", "all"), ("select-all", "all")}
        | {("fit", "perm"), ("select", "perm"), ("final", None)})
    nodes = aggregate_tasks(large.tasks, graph_status(large))
    assert nodes[("fit", "o1")]["done"] == 1 and nodes[("fit", "o1")]["total"] == 4 * 2
    assert nodes[("fit", "perm")]["total"] == sum(t.kind == "fit" and t.permutation is not None for t in large.tasks)
    labels = [text.get_text() for text in drawn.ax_.texts]
    assert "fit\no1\n1/8" in labels and "select\nperm ×3\n0/15" in labels and "final\n0/1" in labels
    plt.close("all")


def graph_status(workflow):
    from mempamal.display.graph import GraphDisplay

    return GraphDisplay.from_workflow(workflow).status


def test_scores_axis_names_the_metric_when_there_is_one(results):
    assert results.plot_scores(metric="f1_macro").ax_.get_ylabel() == "outer test f1_macro"
    assert results.plot_scores().ax_.get_ylabel() == "outer test score"  # two metrics, named on the ticks
    plt.close("all")


def test_workflow_html_names_a_recorded_job_submission_while_tasks_remain(tmp_path):
    workflow = mp.Experiment(SVC(), cv=2).build(X, y, workdir=tmp_path / "wd")
    assert "submitted" not in workflow._repr_html_()
    (workflow.workdir / "submissions").mkdir()
    (workflow.workdir / "submissions" / "slurm.json").write_text('{"arrays": []}')
    assert "slurm jobs (WORKDIR/submissions/); wf.attach() follows them" in workflow._repr_html_()
    workflow.run(n_jobs=1, progress=False)
    assert "submitted" not in workflow._repr_html_()  # finished: the record is history


@pytest.mark.parametrize("name, options", [("ScoresDisplay", {}), ("GridDisplay", {"params": ["C"]}),
                                           ("PermutationDisplay", {}), ("TimelineDisplay", {})])
def test_from_results_plots_on_the_given_axes_and_returns_the_display(results, name, options):
    """Like scikit-learn's from_estimator: the class method draws, on ``ax`` when given."""
    import mempamal.display as display

    cls = getattr(display, name)
    _, ax = plt.subplots()
    drawn = cls.from_results(results, ax=ax, **options)
    assert isinstance(drawn, cls) and drawn.ax_ is ax and drawn.figure_ is ax.figure
    # The artists the display names are the ones on those axes.
    artists = {"ScoresDisplay": lambda d: list(d.lines_.values()), "GridDisplay": lambda d: d.lines_,
               "PermutationDisplay": lambda d: [d.line_, *d.bars_],
               "TimelineDisplay": lambda d: [bar for bars in d.bars_.values() for bar in bars]}[name](drawn)
    assert artists and all(artist.axes is ax for artist in artists)
    fresh = cls.from_results(results, **options)  # no ax: a figure of its own
    assert fresh.ax_ is not ax and fresh.figure_ is fresh.ax_.figure
    plt.close("all")


def test_graph_display_from_workflow_plots_on_the_given_axes(tmp_path):
    from mempamal.display import GraphDisplay

    workflow = mp.Experiment(SVC(), cv=3, final_fit=False).build(X, y, workdir=tmp_path / "wd")
    _, ax = plt.subplots()
    drawn = GraphDisplay.from_workflow(workflow, ax=ax, aggregate=True)
    assert drawn.ax_ is ax and drawn.aggregated_ and all(patch.axes is ax for patch in ax.patches)
    assert set(drawn.positions_) == {("score", f"o{k}") for k in range(3)} | {("final", None)}
    plt.close("all")


def test_display_init_and_plot_options_are_keyword_only(results):
    from mempamal.display import GraphDisplay, GridDisplay, PermutationDisplay, ScoresDisplay, TimelineDisplay

    for cls, data in [(ScoresDisplay, [results.test_scores]), (TimelineDisplay, [results.timeline()]),
                      (GraphDisplay, [[], {}]), (GridDisplay, [["C"], [[1.0]], np.zeros((1, 1)), "accuracy"]),
                      (PermutationDisplay, [[0.5], 0.9, 0.5, "accuracy"])]:
        with pytest.raises(TypeError, match="positional"):
            cls(*data)
    # The same data by keyword draw what they hold.
    drawn = ScoresDisplay(scores={"accuracy": [0.5, 1.0]}).plot()
    np.testing.assert_array_equal(drawn.lines_["accuracy"].get_ydata(), [0.5, 1.0])
    grid = results.plot_grid()
    with pytest.raises(TypeError, match="positional"):
        grid.plot(None, 1)
    assert grid.plot(outer_fold=1).image_.get_array().shape == (3, 2)
    with pytest.raises(TypeError, match="positional"):
        results.plot_permutation().plot(None, 5)
    plt.close("all")
