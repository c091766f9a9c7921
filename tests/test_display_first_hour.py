"""What a person sees in the plots: start-up apart from tasks, the final search named, error bars said."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import mempamal as mp  # noqa: E402


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    X, y = load_iris(return_X_y=True)
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    workdir = tmp_path_factory.mktemp("first-hour") / "wd"
    return experiment.run(X, y, workdir=workdir, n_jobs=2, progress=False)


def test_worker_start_up_is_drawn_apart_from_the_first_task(results):
    timeline = results.timeline()
    assert {"start", "ready", "end"} <= set(timeline)
    assert (timeline["ready"] >= timeline["start"]).all() and (timeline["end"] >= timeline["ready"]).all()
    first = timeline.sort_values("start").groupby("pid").head(1)
    later = timeline.drop(first.index)
    # Start-up (imports, unpickling) belongs to each worker's first task only.
    assert (first["ready"] - first["start"]).max() > (later["ready"] - later["start"]).max()
    display = results.plot_timeline()
    assert display.startup_ is not None and "worker start-up" in display.ax_.get_legend_handles_labels()[1]
    drawn = sum(bar.get_width() for container in display.bars_.values() for bar in container)
    assert drawn == pytest.approx((timeline["end"] - timeline["ready"]).sum())


def test_the_graph_names_the_final_search(results):
    from mempamal.display import GraphDisplay

    display = GraphDisplay.from_workflow(mp.Workflow.open(results.workdir), aggregate=True)
    texts = [text.get_text() for text in display.ax_.texts]
    final = [text for text in texts if text.startswith(("fit-all", "select-all"))]
    assert final and all("final search" in text for text in final)
    folds = [text for text in texts if text.startswith("select\n")]
    assert len(folds) == 3 and not any("final search" in text for text in folds)


def test_the_scores_plot_says_what_the_error_bars_are(results):
    display = results.plot_scores()
    assert "mean ± std" in display.ax_.get_title()
    scores = results.test_scores["score"]
    (_, caps, _) = display.means_["score"].lines
    low, high = sorted(cap.get_ydata()[0] for cap in caps)
    assert high - low == pytest.approx(2 * np.std(scores))


def test_best_params_print_plain_values_and_equal_scikit_learns(tmp_path):
    from sklearn.model_selection import GridSearchCV, KFold, cross_validate

    X, y = load_iris(return_X_y=True)
    grid = {"C": np.logspace(-1, 1, 3)}  # numpy floats, as users write grids
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid=grid, cv=KFold(3, shuffle=True,
                               random_state=0), inner_cv=2)
    res = experiment.run(X, y, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    search = GridSearchCV(LogisticRegression(max_iter=300), grid, cv=2)
    reference = cross_validate(search, X, y, cv=KFold(3, shuffle=True, random_state=0), return_estimator=True)
    expected = [est.best_params_ for est in reference["estimator"]]
    assert res.best_params == expected
    assert all(type(ours["C"]) is type(theirs["C"]) for ours, theirs in zip(res.best_params, expected))
    assert res.best_params_ == search.fit(X, y).best_params_
    assert "np.float64" not in repr(res) and "np.float64" not in repr(res.best_params)
    assert "np.float64" not in repr(res.best_params_)
    assert "one per outer fold" in repr(res) and "the search on all the data" in repr(res)
