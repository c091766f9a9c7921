"""Models compared fold by fold: the paired outer test scores of several Results."""

import numpy as np

from .graph import Display


class ComparisonDisplay(Display):
    """Paired per-fold scores of several models: one line per outer fold across the models.

    The same fold of every model was scored on the same test rows (the
    models share their outer splits, see :func:`mempamal.compare`), so each
    fold is drawn as one line; lines that cross say the ranking depends on
    the fold.  ``lines_`` holds the fold lines, ``means_`` the mean markers.

    Parameters
    ----------
    scores : dict
        ``{model name: outer-fold test scores}``, same length each.
    metric : str
        The metric's name (the y label).

    Examples
    --------
    >>> disp = ComparisonDisplay(scores={"a": [0.9, 0.8, 0.85], "b": [0.92, 0.83, 0.84]}, metric="accuracy").plot()
    >>> len(disp.lines_), disp.ax_.get_ylabel()
    (3, 'outer test accuracy')
    """

    def __init__(self, *, scores, metric):
        self.scores, self.metric = {name: np.asarray(values, dtype=float) for name, values in scores.items()}, metric

    @classmethod
    def from_results(cls, results, *, metric=None, ax=None):
        """Plot the paired fold scores of ``results`` (``{name: Results}``); return the display.

        Parameters
        ----------
        results : dict
            ``{model name: mempamal.Results}`` sharing data and outer splits
            (checked as :func:`mempamal.compare` checks them).
        metric : str, default None
            Which metric; None: the first one every model has.
        ax : matplotlib Axes, default None
            Where to draw; None makes a new figure.

        Returns
        -------
        ComparisonDisplay
            With ``ax_``, ``figure_``, ``lines_`` and ``means_`` set.

        Examples
        --------
        >>> ComparisonDisplay.from_results({"a": res, "b": res}).ax_.get_title()
        'Paired outer folds: 3 folds, 2 models'
        """
        from ..model_comparison import check_comparable

        models = check_comparable(results)
        common = [m for m in next(iter(models.values())).test_scores
                  if all(m in r.test_scores for r in models.values())]
        if metric is None:
            metric = common[0]
        elif metric not in common:
            from ..exceptions import InvalidParameterError

            raise InvalidParameterError(f"The 'metric' parameter of ComparisonDisplay.from_results must be one of "
                                        f"{common}; got {metric!r} instead.")
        return cls(scores={name: r.test_scores[metric] for name, r in models.items()}, metric=metric).plot(ax)

    def plot(self, ax=None):
        """Draw one line per outer fold across the models, and each model's mean; return the display.

        Parameters
        ----------
        ax : matplotlib Axes, default None
            Where to draw; None makes a new constrained-layout figure.

        Returns
        -------
        ComparisonDisplay
            ``self``, with ``ax_``, ``figure_``, ``lines_`` and ``means_``.

        Examples
        --------
        >>> ComparisonDisplay(scores={"a": [0.9, 0.8], "b": [0.7, 0.85]}, metric="r2").plot().means_.get_label()
        'mean over folds'
        """
        ax = self._axes(ax)
        names = list(self.scores)
        table = np.vstack([self.scores[name] for name in names])  # models x folds
        positions = np.arange(len(names))
        self.lines_ = [ax.plot(positions, table[:, fold], "-o", color="#9e9e9e", alpha=0.6, lw=1, ms=4,
                               label="one outer fold" if fold == 0 else None)[0]
                       for fold in range(table.shape[1])]
        (self.means_,) = ax.plot(positions, np.nanmean(table, axis=1), "s", color="#d62728", ms=9,
                                 label="mean over folds", zorder=3)
        ax.set_xticks(positions)
        ax.set_xticklabels(names)
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.set_ylabel(f"outer test {self.metric}")
        ax.set_title(f"Paired outer folds: {table.shape[1]} folds, {len(names)} models")
        ax.legend(fontsize=8, loc="best")
        return self
