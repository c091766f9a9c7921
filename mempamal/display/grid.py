"""GridDisplay: the inner search of a nested run over one or two grid parameters."""

import numbers

import numpy as np

from .._constraints import Interval, invalid, raise_invalid, validate_params

from .graph import Display


class GridDisplay(Display):
    """Mean inner test score over the grid, one curve (or heatmap) per outer fold.

    One varying parameter gives a validation curve per outer fold; two give
    a heatmap of the inner score averaged over the outer folds (or of one
    outer fold with ``plot(outer_fold=k)``).  ``scores`` has shape
    ``(n_outer, len(values[0])[, len(values[1])])``; where other parameters
    vary too, each cell keeps the best of the points it covers.  A star marks
    the point each outer fold's search chose (``best_markers_``).

    Parameters
    ----------
    params : list of str
        The one or two grid parameters on the axes.
    values : list of lists
        The values of each of ``params``, in grid order.
    scores : ndarray
        Mean inner test score per outer fold and grid cell.
    metric : str
        The metric of ``scores``.
    outer_fold : int, default None
        The outer fold shown; None shows all (curves) or their mean (heatmap).
    best : list, default None
        Per outer fold, the grid cell its search chose (or None).

    Examples
    --------
    >>> [line.get_label() for line in GridDisplay.from_results(res, params=["clf__C"]).lines_]
    ['outer fold 0', 'outer fold 1', 'outer fold 2']
    >>> scores = np.array([[[0.80, 0.90], [0.90, 0.95], [0.85, 0.90]]])  # 1 outer fold, 3 C x 2 gamma
    >>> disp = GridDisplay(params=["C", "gamma"], values=[[0.1, 1, 10], [0.01, 0.1]], scores=scores,
    ...                    metric="accuracy").plot()
    >>> disp.image_.get_array().shape
    (3, 2)
    """

    def __init__(self, *, params, values, scores, metric, outer_fold=None, best=None):
        self.params, self.values, self.scores, self.metric = params, values, scores, metric
        self.outer_fold, self.best = outer_fold, best

    @classmethod
    def from_results(cls, results, *, params=None, metric=None, outer_fold=None, ax=None):
        """Plot the inner search of nested ``results`` over one or two parameters; return the display.

        Parameters
        ----------
        results : Results
            A finished nested run (an Experiment with ``param_grid``).
        params : list of str, default None
            One or two varying grid parameters; None takes the first two.
        metric : str, default None
            The inner metric shown; None is the refit metric (the one whose
            best point each outer fold's search chose, starred).
        outer_fold : int, default None
            One outer fold; None shows each fold's curve (one parameter) or
            the mean over folds (two parameters).
        ax : matplotlib Axes, default None
            Where to draw; None makes a new figure.

        Returns
        -------
        GridDisplay
            With ``ax_``, ``figure_`` and ``lines_``/``best_markers_`` (one
            parameter) or ``image_`` (two) set.

        Raises
        ------
        ValueError
            If the experiment is not nested, ``params`` names no varying
            parameter, or ``outer_fold`` is out of range.

        Examples
        --------
        >>> disp = GridDisplay.from_results(res, params=["clf__C"])
        >>> [line.get_label() for line in disp.lines_]
        ['outer fold 0', 'outer fold 1', 'outer fold 2']
        """
        if not results.nested:
            raise invalid("plot_grid needs a nested experiment (a param_grid).")
        metric = metric or _refit_metric(results)
        first = results.cv_results(0)
        varying = [k[len("param_"):] for k, v in first.items()
                   if k.startswith("param_") and len({repr(x) for x in v}) > 1]
        params = list(params or varying[:2])
        if not 1 <= len(params) <= 2 or any(p not in varying for p in params):
            raise_invalid("params", "GridDisplay.from_results",
                          f"one or two names of varying grid parameters among {varying}", params)
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
        validate_params({"outer_fold": outer_fold}, {"outer_fold": [
            Interval(numbers.Integral, 0, results.n_outer - 1, closed="both"), None]}, "GridDisplay.from_results")
        best = None
        if metric == _refit_metric(results):
            # Where each outer fold's search landed (its best_params_), to mark on the curves.
            best = [None if chosen is None or not all(name in chosen for name in params)
                    else tuple(_position(v, chosen[name]) for v, name in zip(axes_values, params))
                    for chosen in results.best_params]
        return cls(params=params, values=axes_values, scores=scores, metric=metric, outer_fold=outer_fold,
                   best=best).plot(ax)

    def plot(self, ax=None, *, outer_fold=None):
        """Draw the validation curves or the heatmap; return the display.

        Parameters
        ----------
        ax : matplotlib Axes, default None
            Where to draw; None makes a new constrained-layout figure.
        outer_fold : int, default None
            One outer fold instead of the one given to ``from_results``.

        Returns
        -------
        GridDisplay
            ``self``, with ``ax_``, ``figure_`` and ``lines_``/``best_markers_``
            or ``image_`` set.

        Examples
        --------
        >>> scores = np.stack([np.array([[[0.80, 0.90], [0.90, 0.95], [0.85, 0.90]]])[0]] * 2)  # 2 outer folds, 3 C x 2 gamma
        >>> disp = GridDisplay(params=["C", "gamma"], values=[[0.1, 1, 10], [0.01, 0.1]], scores=scores,
        ...                    metric="accuracy")
        >>> disp.plot(outer_fold=1).image_.get_array().shape
        (3, 2)
        """
        ax = self._axes(ax)
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



def _refit_metric(results):
    from ..engine.search import refit_metric

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
