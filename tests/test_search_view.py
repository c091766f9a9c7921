"""The search view (``plot_search``, SearchDisplay): the inner search read from the workdir's outputs.

Every expected value comes from scikit-learn itself: ``GridSearchCV`` fitted
on each outer fold's training rows.
"""

import warnings

import matplotlib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

import mempamal as mp
from mempamal.display import SearchDisplay

matplotlib.use("Agg")

X, y = load_iris(return_X_y=True)
X, y = X[::2], y[::2]  # 75 samples: quick
GRID = {"C": [0.01, 0.1, 1.0, 10.0]}
OUTER = StratifiedKFold(3, shuffle=True, random_state=0)
INNER = KFold(2, shuffle=True, random_state=1)


class FragileLogistic(LogisticRegression):
    """Fails to fit when C is 10 (a failure scikit-learn scores ``error_score``)."""

    def fit(self, X, y, sample_weight=None):
        if self.C == 10.0:
            raise ValueError("C=10 is refused by this estimator")
        return super().fit(X, y, sample_weight=sample_weight)


def _references(estimator):
    """Per outer fold, ``GridSearchCV(...).fit`` on its training rows (scikit-learn's own numbers)."""
    searches = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitFailedWarning)
        warnings.simplefilter("ignore", UserWarning)
        for train, _ in OUTER.split(X, y):
            searches.append(GridSearchCV(clone(estimator), GRID, cv=INNER, error_score=np.nan)
                            .fit(X[train], y[train]))
    return searches


def _experiment(estimator):
    return mp.Experiment(estimator, param_grid=GRID, cv=OUTER, inner_cv=INNER, final_fit=False)


def test_a_finished_workdir_shows_gridsearchcv_mean_scores_and_best_index(tmp_path):
    estimator = LogisticRegression(max_iter=500)
    wf = _experiment(estimator).build(X, y, workdir=tmp_path / "wd")
    res = wf.run(n_jobs=1, progress=False)
    disp = res.plot_search()
    for fold, search in enumerate(_references(estimator)):
        np.testing.assert_allclose(disp.scores[:, fold], search.cv_results_["mean_test_score"], rtol=0, atol=1e-12)
        assert disp.best[fold] == search.best_index_
    assert disp.n_done.tolist() == [[2, 2, 2]] * 4 and not disp.failed.any()
    assert [label.get_text() for label in disp.ax_.get_yticklabels()] == ["C=0.01", "C=0.1", "C=1", "C=10"]
    assert len(disp.best_markers_) == 3 and disp.figure_ is disp.ax_.figure
    # The same picture from the workflow and from a Run on it.
    assert np.array_equal(wf.plot_search().scores, disp.scores, equal_nan=True)


def test_a_half_finished_workdir_fills_only_the_finished_cells(tmp_path):
    estimator = LogisticRegression(max_iter=500)
    wf = _experiment(estimator).build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    fits = [task for task in wf.tasks if task.kind == "fit"]
    # Outer fold 0: both inner folds of every candidate; outer fold 1: inner fold 0 of the first candidate only.
    ran = [t for t in fits if t.outer == 0] + [t for t in fits if t.outer == 1 and t.inner == 0 and 0 in t.points]
    for task in ran:
        assert mp.run_task(wf.workdir, task.id) == "done"
    disp = SearchDisplay.from_workflow(mp.Workflow.open(wf.workdir))
    searches = _references(estimator)
    np.testing.assert_allclose(disp.scores[:, 0], searches[0].cv_results_["mean_test_score"], rtol=0, atol=1e-12)
    assert disp.best[0] == searches[0].best_index_
    # A partial cell: the mean of its finished inner fold (split 0), count 1 of 2.
    assert disp.scores[0, 1] == searches[1].cv_results_["split0_test_score"][0]
    assert disp.n_done[:, 1].tolist() == [1, 0, 0, 0] and disp.best[1] == 0
    assert np.isnan(disp.scores[1:, 1]).all() and np.isnan(disp.scores[:, 2]).all()
    assert disp.n_done[:, 2].tolist() == [0] * 4 and disp.best[2] is None
    texts = [text.get_text() for text in disp.ax_.texts]
    assert f"{disp.scores[0, 1]:.3f}\n1/2" in texts and len(texts) == 4 + 1


def test_a_failed_fit_shows_as_failed_and_the_best_is_gridsearchcvs(tmp_path):
    estimator = FragileLogistic(max_iter=500)
    wf = _experiment(estimator).build(X, y, workdir=tmp_path / "wd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wf.run(n_jobs=1, progress=False)
    disp = wf.plot_search()
    searches = _references(estimator)
    for fold, search in enumerate(searches):
        expected = search.cv_results_["mean_test_score"]
        assert np.isnan(expected[3])  # scikit-learn's error_score for the failing candidate
        np.testing.assert_allclose(disp.scores[:, fold], expected, rtol=0, atol=1e-12)
        assert disp.best[fold] == search.best_index_
    assert disp.failed[3].all() and not disp.failed[:3].any()
    assert len(disp.failed_patches_) == 3
    assert [text.get_text() for text in disp.ax_.texts].count("failed") == 3


def test_plot_search_refuses_plain_cv_and_an_unknown_metric(tmp_path):
    plain = mp.Experiment(LogisticRegression(max_iter=500), cv=3).build(X, y, workdir=tmp_path / "plain")
    with pytest.raises(ValueError, match="nested"):
        plain.plot_search()
    nested = _experiment(LogisticRegression(max_iter=500)).build(X, y, workdir=tmp_path / "nested")
    with pytest.raises(ValueError, match="'metric' argument"):
        nested.plot_search(metric="recall")
    assert SearchDisplay.read(nested).n_done.sum() == 0  # nothing run yet: an empty (grey) view


def test_a_live_run_shows_a_growing_search_and_the_panel_tab(tmp_path):
    from mempamal.jupyter.panel import RunPanel

    wf = _experiment(LogisticRegression(max_iter=500)).build(X, y, workdir=tmp_path / "wd")
    run = wf.submit(n_jobs=1)
    panel = RunPanel(run)
    seen = [int(run.plot_search().n_done.sum())]
    run.wait()
    seen.append(int(run.plot_search().n_done.sum()))
    assert seen[0] <= seen[1] == 4 * 3 * 2
    panel.refresh_search(force=True)
    assert panel.search.value.startswith("<img alt='inner search'")
    assert [panel.children[2].get_title(i) for i in range(2)] == ["outer folds", "inner search"]
