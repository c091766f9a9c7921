"""SearchDisplay: the inner search filling in, candidate by outer fold, from the workdir's outputs.

Only the trusted outputs of finished ``fit`` tasks are read (each validated
by its stamp, :func:`mempamal.store.integrity.read_output`), never the
workers: the same picture during a local, ipyparallel, Dask, soma-workflow
or Slurm run, after ``attach()``, or on a finished workdir.
"""

import numpy as np

from .._constraints import invalid
from .graph import Display


class SearchDisplay(Display):
    """Mean inner test score per candidate (rows) and outer fold (columns), as the fits finish.

    A cell averages the inner folds finished so far (its count is shown while
    some are missing); a cell with no finished fit is grey; a cell where a fit
    failed is hatched.  A star marks, per outer fold, the candidate the search
    would pick from the finished scores (``GridSearchCV``'s rank, first on
    ties); with a ``refit`` callable, only once the fold's search is complete.

    Parameters
    ----------
    candidates : list of dict
        The candidates, in ``ParameterGrid`` (or sampling) order.
    scores : ndarray of shape (n_candidates, n_outer)
        Mean inner test score over the finished inner folds (NaN: none finished,
        or a failed fit scored ``error_score=np.nan``).
    n_done : ndarray of int, shape (n_candidates, n_outer)
        Inner folds finished per cell.
    n_inner : list of int
        Inner folds per outer fold.
    failed : ndarray of bool, shape (n_candidates, n_outer)
        Cells where at least one finished fit failed.
    best : list
        Per outer fold, the index of the best candidate so far (or None).
    metric : str
        The inner metric shown.

    Examples
    --------
    >>> disp = SearchDisplay.from_workflow(wf)
    >>> disp.scores.shape, disp.n_done.tolist()[0]
    ((3, 3), [2, 2, 2])
    >>> disp = SearchDisplay(candidates=[{"C": 1}, {"C": 10}], scores=np.array([[0.8, np.nan], [0.9, np.nan]]),
    ...                      n_done=np.array([[2, 0], [1, 0]]), n_inner=[2, 2],
    ...                      failed=np.zeros((2, 2), bool), best=[1, None], metric="accuracy").plot()
    >>> disp.image_.get_array().shape
    (2, 2)
    """

    def __init__(self, *, candidates, scores, n_done, n_inner, failed, best, metric):
        self.candidates, self.scores, self.n_done, self.n_inner = candidates, scores, n_done, n_inner
        self.failed, self.best, self.metric = failed, best, metric

    @classmethod
    def from_workflow(cls, workflow, *, metric=None, ax=None):
        """Read the finished fits of ``workflow`` (a Workflow or its graph) and plot them.

        Parameters
        ----------
        workflow : Workflow
            A built nested workdir, finished, running or not started.
        metric : str, default None
            The inner metric shown; None is the refit metric (the one the
            stars are chosen by).
        ax : matplotlib Axes, default None
            Where to draw; None makes a new figure.

        Returns
        -------
        SearchDisplay
            With ``ax_``, ``figure_``, ``image_``, ``best_markers_`` and
            ``failed_patches_`` set.

        Raises
        ------
        ValueError
            If the experiment has no search, or ``metric`` is not one of its metrics.

        Examples
        --------
        >>> SearchDisplay.from_workflow(wf).best == list(wf.results().best_index)  # the searches' picks
        True
        """
        return cls.read(workflow, metric=metric).plot(ax)

    @classmethod
    def read(cls, workflow, *, metric=None):
        """The display of ``workflow``'s finished fits, not drawn (what ``from_workflow`` plots).

        Examples
        --------
        >>> SearchDisplay.read(wf).metric
        'accuracy'
        """
        from ..engine.search import refit_metric
        from ..store.tasktable import MAIN

        experiment = _experiment(workflow)
        if not experiment.nested:
            raise invalid("plot_search needs a nested experiment (a param_grid or param_distributions).")
        metrics = list(workflow.manifest.get("metrics") or ["score"])
        chosen = refit_metric(experiment.refit, metrics)
        metric = chosen if metric is None else metric
        if metric not in metrics:
            raise invalid(f"The 'metric' argument must be one of {metrics}; got {metric!r}.")
        candidates = experiment.candidates
        n_inner = list(workflow.table.split_sets[MAIN]["n_inner"])
        tables = _read_fits(workflow, len(candidates), n_inner)
        means = {m: _means(tables["scores"].get(m), tables["done"]) for m in tables["scores"]}
        shown = means.get(metric, np.full(tables["done"].shape[:2], np.nan))
        best = [_best_so_far(experiment, candidates, tables, means, metrics, fold, n_inner[fold])
                for fold in range(len(n_inner))]
        return cls(candidates=candidates, scores=shown, n_done=tables["done"].sum(axis=2), n_inner=n_inner,
                   failed=tables["failed"].any(axis=2), best=best, metric=metric)

    def plot(self, ax=None):
        """Draw the candidate x outer fold heatmap; return the display.

        Parameters
        ----------
        ax : matplotlib Axes, default None
            Where to draw; None makes a new constrained-layout figure.

        Returns
        -------
        SearchDisplay
            ``self``, with ``ax_``, ``figure_``, ``image_``, ``best_markers_``
            and ``failed_patches_`` set.

        Examples
        --------
        >>> disp = SearchDisplay.read(wf).plot()
        >>> len(disp.best_markers_), disp.ax_.get_xlabel()
        (3, 'outer fold')
        """
        import matplotlib

        ax = self._axes(ax)
        # Grey: no finished fit (or every finished one scored NaN).
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
        table = np.ma.masked_invalid(np.asarray(self.scores, dtype=float))
        self.image_ = ax.imshow(table, aspect="auto", cmap=cmap, interpolation="nearest")
        ax.figure.colorbar(self.image_, ax=ax, label=f"mean inner {self.metric}")
        self._annotate(ax)
        self.failed_patches_ = [
            ax.add_patch(matplotlib.patches.Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, hatch="xx",
                                                      edgecolor="crimson", lw=0, label="failed fit"))
            for row, col in zip(*np.nonzero(self.failed))]
        self.best_markers_ = [ax.plot([fold], [row], "*", ms=14, color="white", markeredgecolor="black")[0]
                              for fold, row in enumerate(self.best) if row is not None]
        ax.set_xticks(range(len(self.n_inner)))
        ax.set_yticks(range(len(self.candidates)))
        ax.set_yticklabels([_candidate_label(c) for c in self.candidates], fontsize=8)
        ax.set_xlabel("outer fold")
        done, total = int(np.sum(self.n_done)), len(self.candidates) * int(np.sum(self.n_inner))
        ax.set_title(f"Inner search: {done}/{total} fits finished (star: best so far)")
        return self

    def _annotate(self, ax):
        threshold = np.nanmean(self.image_.get_clim()) if np.isfinite(self.scores).any() else 0
        for (row, col), value in np.ndenumerate(np.asarray(self.scores, dtype=float)):
            done, needed = int(self.n_done[row, col]), self.n_inner[col]
            if done == 0:
                continue
            text = "failed" if np.isnan(value) and self.failed[row, col] else f"{value:.3f}"
            if done < needed:
                text += f"\n{done}/{needed}"  # partial: inner folds finished so far
            dark = np.isfinite(value) and value > threshold
            ax.text(col, row, text, ha="center", va="center", fontsize=7,
                    color="black" if dark or not np.isfinite(value) else "white")


def _experiment(workflow):
    import cloudpickle

    from .. import store
    from ..store import integrity

    workdir = workflow.workdir
    expected = workflow.manifest.get("files", {}).get(store.EXPERIMENT)
    if expected is not None:  # the experiment this build wrote, before unpickling it
        integrity.verify_build_file(workdir, store.EXPERIMENT, expected)
    return store.load_pickle(workdir, workdir / store.EXPERIMENT, cloudpickle.load)


def _read_fits(workflow, n_candidates, n_inner):
    """Per metric, ``(candidate, outer, inner)`` scores of the done fit tasks; which are done, which failed."""
    from .. import store
    from ..store import integrity
    from ..store.records import read_record

    shape = (n_candidates, len(n_inner), max(n_inner, default=0))
    tables = {"scores": {}, "done": np.zeros(shape, bool), "failed": np.zeros(shape, bool),
              "fit_time": np.zeros(shape), "score_time": np.zeros(shape)}
    build_id = workflow.manifest["build_id"]
    for task in _done_fits(workflow):
        try:
            fit = read_record(integrity.read_output(store.output_path(workflow.workdir, task.id), task.id, build_id,
                                                    task.definition))
        except store.WorkdirError:
            continue  # replaced or torn since the scan: not done
        for row, point in enumerate(fit.points):
            cell = (point, task.outer, task.inner)
            tables["done"][cell] = True
            tables["failed"][cell] = bool(fit.fit_failed[row])
            tables["fit_time"][cell], tables["score_time"][cell] = fit.fit_time[row], fit.score_time[row]
            for name, values in fit.scores.items():
                tables["scores"].setdefault(name, np.full(shape, np.nan))[cell] = values[row]
    return tables


def _done_fits(workflow):
    """The done fit tasks of the outer folds (data, not permutations), from the scan's shards.

    Only the shards of ``fit-o<k>-...`` ids are read (:func:`mempamal.store.output_shard`):
    a refresh costs the finished fits, not one record per task of the graph.
    """
    from ..store.taskids import MAIN, OUTER_FIT_HEAD

    for shard, entry in sorted(workflow.scan_outputs().shards.items()):
        if not shard.startswith(OUTER_FIT_HEAD) or not entry["done"]:
            continue
        for task_id in entry["done"].split("\n"):
            try:
                task = workflow.table.task(task_id)
            except KeyError:
                continue  # not a task of this table (the scan only counts those; defensive)
            if task.kind == "fit" and task.split_set == MAIN:
                yield task


def _means(scores, done):
    """Mean over the finished inner folds of each cell, in inner-fold order (as ``np.average``)."""
    means = np.full(done.shape[:2], np.nan)
    if scores is None:
        return means
    for index in np.ndindex(*done.shape[:2]):
        finished = done[index]
        if finished.any():
            means[index] = np.average(scores[index][finished])
    return means


def _best_so_far(experiment, candidates, tables, means, metrics, fold, n_inner):
    """The candidate the search of outer fold ``fold`` would pick from its finished fits, or None."""
    from ..engine.search import best_index, cv_results, refit_metric, summarize

    started = tables["done"][:, fold].any(axis=1)
    refit = experiment.refit
    if callable(refit):
        if not tables["done"][:, fold, :n_inner].all():
            return None  # a callable sees the whole cv_results_: only once the fold's search is complete
        scores = {m: tables["scores"][m][:, fold, :n_inner] for m in tables["scores"]}
        results = cv_results(candidates, scores, tables["fit_time"][:, fold, :n_inner],
                             tables["score_time"][:, fold, :n_inner])
        return best_index(results, refit, list(scores))
    metric = refit_metric(refit, metrics)
    values = means.get(metric)
    if values is None or not started.any() or np.isnan(values[started, fold]).all():
        return None  # nothing finished, or every finished candidate failed: no pick yet
    indices = np.flatnonzero(started)
    # Ranked as GridSearchCV ranks mean_test_<metric> (NaN ties with the worst), among started candidates.
    ranked = summarize(f"test_{metric}", values[indices, fold][:, np.newaxis], rank=True)
    return int(indices[best_index(ranked, refit, [metric])])


def _candidate_label(candidate):
    parts = []
    for name, value in candidate.items():
        text = f"{value:.3g}" if isinstance(value, (float, np.floating)) else repr(value)
        parts.append(f"{name}={text if len(text) <= 20 else text[:17] + '...'}")
    return ", ".join(parts)
