"""Display objects and HTML summaries, in scikit-learn's Display style.

``XDisplay.from_results(res)`` collects the data; ``.plot(ax=None)`` draws it
and returns the display with ``ax_`` and ``figure_`` set.
"""

import html

import numpy as np

from .display_graph import GraphDisplay, figure_png_html, graph_png_html  # noqa: F401 (public here too)
from .display_graph import new_axes as _axes


class ScoresDisplay:
    """Outer-fold test scores of each metric, with their mean ± std.

    Examples
    --------
    >>> disp = ScoresDisplay.from_results(res)       # doctest: +SKIP
    >>> disp.plot().figure_.savefig("scores.png")    # doctest: +SKIP

    ``lines_[metric]`` holds the fold points, ``means_[metric]`` the mean
    marker with its ± std error bar.
    """

    def __init__(self, scores):
        self.scores = {metric: np.asarray(values) for metric, values in scores.items()}

    @classmethod
    def from_results(cls, results, metric=None):
        metrics = [metric] if metric else list(results.test_scores)
        return cls({m: results.test_scores[m] for m in metrics})

    def plot(self, ax=None):
        ax = _axes(ax)
        self.lines_, self.means_ = {}, {}
        for position, (metric, values) in enumerate(self.scores.items()):
            jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
            (points,) = ax.plot(position + jitter, values, "o", alpha=0.7, label=f"{metric} (folds)")
            mean, std = np.nanmean(values), np.nanstd(values)
            self.means_[metric] = ax.errorbar([position + 0.3], [mean], yerr=[std], fmt="s",
                                              color=points.get_color(), capsize=4)
            ax.annotate(f"{mean:.3f} ± {std:.3f}", (position + 0.35, mean), va="center", fontsize=9)
            self.lines_[metric] = points
        ax.set_xticks(range(len(self.scores)))
        ax.set_xticklabels(list(self.scores))
        ax.set_xlim(-0.5, len(self.scores) - 0.5 + 0.6)
        # Name the metric when there is one; several share the axis under their tick labels.
        ax.set_ylabel(f"outer test {next(iter(self.scores))}" if len(self.scores) == 1 else "outer test score")
        ax.set_title("Scores per outer fold")
        self.ax_, self.figure_ = ax, ax.figure
        return self


class GridDisplay:
    """Mean inner test score over the grid, one curve (or heatmap) per outer fold.

    One varying parameter gives a validation curve per outer fold; two give
    a heatmap of the inner score averaged over the outer folds (or of one
    outer fold with ``plot(outer_fold=k)``).  ``scores`` has shape
    ``(n_outer, len(values[0])[, len(values[1])])``; where other parameters
    vary too, each cell keeps the best of the points it covers.  A star marks
    the point each outer fold's search chose (``best_markers_``).

    Examples
    --------
    >>> GridDisplay.from_results(res, params=["clf__C"]).plot()     # doctest: +SKIP
    >>> res.plot_grid(params=["C", "gamma"]).image_.get_array()     # doctest: +SKIP
    """

    def __init__(self, params, values, scores, metric, outer_fold=None, best=None):
        self.params, self.values, self.scores, self.metric = params, values, scores, metric
        self.outer_fold, self.best = outer_fold, best

    @classmethod
    def from_results(cls, results, params=None, metric=None, outer_fold=None):
        if not results.nested:
            raise ValueError("plot_grid needs a nested experiment (a param_grid).")
        metric = metric or _refit_metric(results)
        first = results.cv_results(0)
        varying = [k[len("param_"):] for k, v in first.items()
                   if k.startswith("param_") and len({repr(x) for x in v}) > 1]
        params = list(params or varying[:2])
        if not 1 <= len(params) <= 2 or any(p not in varying for p in params):
            raise ValueError(f"The 'params' argument must name one or two varying grid parameters among {varying}; got {params}.")
        axes_values = [_unique([p[name] for p in first["params"] if name in p]) for name in params]
        scores = np.full((results.n_outer,) + tuple(len(v) for v in axes_values), np.nan)
        counts = np.zeros_like(scores)
        for fold in range(results.n_outer):
            table = results.cv_results(fold)
            for point, mean in zip(table["params"], table[f"mean_test_{metric}"]):
                if not all(name in point for name in params):
                    continue
                index = (fold,) + tuple(_position(v, point[name]) for v, name in zip(axes_values, params))
                # Points differing only in other parameters: keep the best, as a search would.
                if counts[index] == 0 or np.isnan(scores[index]) or mean > scores[index]:
                    scores[index] = mean
                counts[index] += 1
        if outer_fold is not None and not 0 <= outer_fold < results.n_outer:
            raise ValueError(f"The 'outer_fold' argument must be in [0, {results.n_outer}); got {outer_fold}.")
        best = None
        if metric == _refit_metric(results):
            # Where each outer fold's search landed (its best_params_), to mark on the curves.
            best = [None if chosen is None or not all(name in chosen for name in params)
                    else tuple(_position(v, chosen[name]) for v, name in zip(axes_values, params))
                    for chosen in results.best_params]
        return cls(params, axes_values, scores, metric, outer_fold, best)

    def plot(self, ax=None, outer_fold=None):
        ax = _axes(ax)
        if len(self.params) == 1:
            xs = _numeric_positions(self.values[0])
            outer_fold = self.outer_fold if outer_fold is None else outer_fold
            folds = range(len(self.scores)) if outer_fold is None else [outer_fold]
            self.lines_ = [ax.plot(xs, self.scores[fold], "o-", alpha=0.8, label=f"outer fold {fold}")[0]
                           for fold in folds]
            self.best_markers_ = []
            for fold, line in zip(folds, self.lines_):
                if self.best is not None and self.best[fold] is not None:
                    (position,) = self.best[fold]
                    self.best_markers_.append(ax.plot(
                        [xs[position]], [self.scores[fold][position]], "*", ms=14, color=line.get_color(),
                        markeredgecolor="black", zorder=3,
                        label="chosen (best_params_)" if not self.best_markers_ else None)[0])
            if _is_log_spaced(self.values[0]):
                ax.set_xscale("log")
            if not _all_numbers(self.values[0]):
                ax.set_xticks(xs)
                ax.set_xticklabels([_label(v) for v in self.values[0]], rotation=30)
            ax.set_xlabel(self.params[0])
            ax.set_ylabel(f"mean inner {self.metric}")
            ax.legend(fontsize=8)
        else:
            self._heatmap(ax, self.outer_fold if outer_fold is None else outer_fold)
            ax.set_yticks(range(len(self.values[0])))
            ax.set_yticklabels([_label(v) for v in self.values[0]])
            ax.set_xticks(range(len(self.values[1])))
            ax.set_xticklabels([_label(v) for v in self.values[1]], rotation=30)
            ax.set_ylabel(self.params[0])
            ax.set_xlabel(self.params[1])
        ax.set_title("Inner grid search")
        self.ax_, self.figure_ = ax, ax.figure
        return self

    def _heatmap(self, ax, outer_fold):
        if outer_fold is None:
            table, label = np.nanmean(self.scores, axis=0), f"mean inner {self.metric} (over outer folds)"
        else:
            table, label = self.scores[outer_fold], f"mean inner {self.metric} (outer fold {outer_fold})"
        self.image_ = ax.imshow(table, origin="lower", aspect="auto", cmap="viridis")
        ax.figure.colorbar(self.image_, ax=ax, label=label)
        # Dark text on the light end of viridis, light text on the dark end.
        threshold = np.nanmean(self.image_.get_clim())
        for (row, col), value in np.ndenumerate(table):
            ax.text(col, row, f"{value:.3f}", ha="center", va="center", fontsize=8,
                    color="black" if value > threshold else "white")


class PermutationDisplay:
    """Null distribution of permutation scores, the observed score and the p-value."""

    def __init__(self, permutation_scores, score, pvalue, metric):
        self.permutation_scores = np.asarray(permutation_scores)
        self.score, self.pvalue, self.metric = score, pvalue, metric

    @classmethod
    def from_results(cls, results):
        if results.permutation_scores is None:
            raise ValueError("plot_permutation needs an experiment with n_permutations > 0.")
        return cls(results.permutation_scores, results.score, results.pvalue, results.permutation_metric)

    def plot(self, ax=None, bins=None):
        """Draw; ``bins`` None fits the bins to the null distribution alone."""
        from matplotlib.ticker import MaxNLocator

        ax = _axes(ax)
        n_permutations = len(self.permutation_scores)
        bins = permutation_bins(self.permutation_scores) if bins is None else bins
        _, _, self.bars_ = ax.hist(self.permutation_scores, bins=bins, color="#999999", edgecolor="white",
                                   label=f"permuted y ({n_permutations})")
        self.line_ = ax.axvline(self.score, color="#d62728", lw=2,
                                label=f"observed {self.score:.3f} (p = {self.pvalue:.3g})")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of permutations
        ax.set_xlabel(f"{self.metric} (mean over outer folds)")
        ax.set_ylabel("number of permutations")
        ax.set_title(f"Permutation test: smallest possible p-value 1/(n+1) = {1 / (n_permutations + 1):.3g}",
                     fontsize=10)
        ax.legend(fontsize=8)
        self.ax_, self.figure_ = ax, ax.figure
        return self


def permutation_bins(scores, max_bins=30):
    """Bin edges fitted to the null scores (numpy's "auto" rule, at most ``max_bins``).

    Examples
    --------
    >>> len(permutation_bins(np.linspace(0.4, 0.6, 100))) - 1 <= 30
    True
    """
    scores = np.asarray(scores, dtype=float)
    scores = scores[np.isfinite(scores)]
    if scores.size == 0 or np.ptp(scores) == 0:
        center = scores[0] if scores.size else 0.0
        return np.array([center - 0.005, center + 0.005])  # one bar, visibly narrow
    edges = np.histogram_bin_edges(scores, bins="auto")
    if len(edges) - 1 > max_bins:
        edges = np.linspace(scores.min(), scores.max(), max_bins + 1)
    return edges


class TimelineDisplay:
    """Tasks as horizontal bars per worker (host:pid) over wall-clock time."""

    def __init__(self, timeline):
        self.timeline = timeline

    @classmethod
    def from_results(cls, results):
        return cls(results.timeline())

    def plot(self, ax=None):
        ax = _axes(ax)
        frame = self.timeline.dropna(subset=["start", "end"])
        origin = frame["start"].min() if len(frame) else 0.0
        workers = sorted({f"{h}:{p}" for h, p in zip(frame["host"], frame["pid"])})
        row = {worker: index for index, worker in enumerate(workers)}
        colors = {"fit": "#1f77b4", "score": "#1f77b4", "select": "#ff7f0e", "final": "#2ca02c",
                  "fit-all": "#17becf", "select-all": "#9467bd"}
        self.bars_ = {}
        for kind, group in sorted(frame.groupby("kind"), key=lambda item: _KIND_LAYER.get(item[0], 9)):
            ys = [row[f"{h}:{p}"] for h, p in zip(group["host"], group["pid"])]
            self.bars_[kind] = ax.barh(ys, group["end"] - group["start"], left=group["start"] - origin,
                                       height=0.6, color=colors.get(kind, "#7f7f7f"), label=kind,
                                       edgecolor="white", linewidth=0.4)
        ax.set_yticks(range(len(workers)))
        ax.set_yticklabels(workers, fontsize=8)
        ax.set_xlabel("seconds since the first task started")
        ax.set_title(f"{len(frame)} tasks on {len(workers)} workers")
        if len(frame):
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
        self.ax_, self.figure_ = ax, ax.figure
        return self


def _refit_metric(results):
    from .engine.search import refit_metric

    return refit_metric(results.experiment.refit, results.metrics)


def _unique(values):
    seen = []
    for value in values:
        if not any(repr(value) == repr(other) for other in seen):
            seen.append(value)
    return seen


def _position(values, value):
    return next(i for i, other in enumerate(values) if repr(other) == repr(value))


def _all_numbers(values):
    return all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values)


def _numeric_positions(values):
    return [float(v) for v in values] if _all_numbers(values) else list(range(len(values)))


def _is_log_spaced(values):
    if not _all_numbers(values) or len(values) < 3 or min(values) <= 0:
        return False
    ratios = np.diff(np.log(sorted(float(v) for v in values)))
    return np.allclose(ratios, ratios[0]) and ratios[0] > 0.5


def _label(value):
    if isinstance(value, float) or isinstance(value, np.floating):
        return f"{value:.3g}"
    text = repr(value)
    return text if len(text) <= 20 else text[:17] + "..."


_KIND_LAYER = {"fit": 0, "score": 0, "select": 1, "final": 2, "fit-all": 0, "select-all": 1}


def _readable(params):
    """``{'C': np.float64(1.0)}`` shown as ``{'C': 1.0}``."""
    if params is None:
        return "(all inner fits failed)"
    return "{" + ", ".join(f"{k!r}: {v.item() if isinstance(v, np.generic) else v!r}" for k, v in params.items()) + "}"


def _table(rows):
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table>{body}</table>"


def experiment_html(experiment):
    rows = [("estimator", repr(experiment.estimator)), ("outer cv", repr(experiment.cv))]
    if experiment.nested:
        rows += [("grid points", len(experiment.candidates)), ("inner cv", repr(experiment.inner_cv or 5))]
    rows += [("scoring", repr(experiment.scoring)), ("permutations", experiment.n_permutations)]
    return "<b>mempamal Experiment</b>" + _table(rows)


def workflow_html(workflow, graph=True):
    """Task counts by kind, done/pending/failed, and the graph as an inline PNG."""
    status = workflow.status()
    rows = [(kind, f"{c['done']} / {c['total']} done") for kind, c in status["by_kind"].items()]
    rows += [("pending", status["pending"]), ("failed", status["failed"])]
    rows += _who_runs_rows(workflow, status)
    picture = f"<br>{graph_png_html(workflow)}" if graph else ""
    return f"<b>mempamal Workflow</b> <code>{html.escape(str(workflow.workdir))}</code>" + _table(rows) + picture


def results_html(results):
    summary = results.summary().to_html(float_format=lambda v: f"{v:.4f}")
    best = ""
    if results.nested:
        best = "<br><b>best parameters per outer fold</b>" + _table(
            [(fold, _readable(params)) for fold, params in enumerate(results.best_params)])
    perm = ""
    if results.pvalue is not None:
        perm = f"<br>permutation test ({results.permutation_metric}): p-value = {results.pvalue:.4g}"
    return f"<b>mempamal Results</b> <code>{html.escape(str(results.workdir))}</code>{summary}{best}{perm}"


def _who_runs_rows(workflow, status):
    """Rows saying who is running the workdir: a recorded job submission, a live runner."""
    from .submissions import live_runner, recorded_submission

    rows = []
    submission = recorded_submission(workflow.workdir)
    if submission is not None and status["pending"]:
        rows.append(("submitted", f"{submission['backend']} jobs (WORKDIR/submissions/); wf.attach() follows them"))
    holder = live_runner(workflow.workdir)
    if holder is not None:
        rows.append(("running", f"pid {holder.get('pid')} on {holder.get('host')}"))
    return rows


def run_html(run):
    """A submitted run as static HTML: one status line, counts per kind, finished outer folds.

    Examples
    --------
    >>> from IPython.display import HTML; HTML(run_html(run))     # doctest: +SKIP
    """
    counts = run.status()
    header = "<tr><th></th>" + "".join(f"<th>{name}</th>" for name in _RUN_STATES) + "</tr>"
    rows = "".join(
        f"<tr><td style='text-align:left'>{html.escape(kind)}</td>"
        + "".join(f"<td>{by_kind[name]}</td>" for name in _RUN_STATES) + "</tr>"
        for kind, by_kind in counts["by_kind"].items())
    folds = run.results()
    fold_table = "" if folds.empty else "<br><b>outer folds finished</b>" + folds_html(folds)
    return (f"<b>mempamal Run</b> <code>{html.escape(str(run.workflow.workdir))}</code><br>"
            f"{html.escape(run.summary_line())}<table>{header}{rows}</table>{fold_table}")


_RUN_STATES = ("done", "running", "pending", "failed", "total")


def folds_html(frame):
    """Finished outer folds (``Results.to_frame()`` shape) as an HTML table: scores rounded,
    parameters as plain numbers, the error column only when a fold failed.

    Examples
    --------
    >>> folds_html(res.to_frame())                                # doctest: +SKIP
    """
    shown = frame.drop(columns=[c for c in ("score_time", "error") if c in frame and
                                (c == "score_time" or frame[c].isna().all())])
    formatters = {column: (lambda v: f"{v:.4f}") for column in shown if column.startswith("test_")}
    formatters["fit_time"] = lambda v: f"{v:.2f} s"
    for column in shown:
        if column.startswith("param_"):
            formatters[column] = lambda v: html.escape(_plain(v))
    return shown.to_html(formatters=formatters, escape=False, na_rep="—")


def _plain(value):
    """``np.float64(0.1)`` shown as ``0.1``; floats with 4 significant digits."""
    value = value.item() if isinstance(value, np.generic) else value
    return f"{value:.4g}" if isinstance(value, float) else str(value)
