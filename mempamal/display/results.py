"""The displays of a Results: outer-fold scores, permutation scores, the timeline of a run."""

import numpy as np

from .._constraints import invalid
from .graph import LAYER_OF_KIND, Display


class ScoresDisplay(Display):
    """Outer-fold test scores of each metric, with their mean ± std.

    ``lines_[metric]`` holds the fold points, ``means_[metric]`` the mean
    marker with its ± std error bar.

    Parameters
    ----------
    scores : dict
        ``{metric: outer-fold test scores}`` (``res.test_scores``).

    Examples
    --------
    >>> disp = ScoresDisplay.from_results(res)
    >>> disp.figure_.savefig("scores.png")
    >>> ScoresDisplay(scores={"accuracy": [0.9, 0.8, 1.0]}).plot().lines_["accuracy"].get_ydata()
    array([0.9, 0.8, 1. ])
    """

    def __init__(self, *, scores):
        self.scores = {metric: np.asarray(values) for metric, values in scores.items()}

    @classmethod
    def from_results(cls, results, *, metric=None, ax=None):
        """Plot the outer-fold scores of ``results``; return the display.

        Parameters
        ----------
        results : Results
            A finished run (``wf.run()``, ``Results.load(workdir)``).
        metric : str, default None
            One metric; None shows every metric side by side.
        ax : matplotlib Axes, default None
            Where to draw; None makes a new figure.

        Returns
        -------
        ScoresDisplay
            With ``ax_``, ``figure_``, ``lines_`` and ``means_`` set.

        Examples
        --------
        >>> disp = ScoresDisplay.from_results(res, metric="accuracy")
        >>> disp.lines_["accuracy"].get_ydata()
        array([1.  , 0.96, 0.96])
        """
        metrics = [metric] if metric else list(results.test_scores)
        return cls(scores={m: results.test_scores[m] for m in metrics}).plot(ax)

    def plot(self, ax=None):
        """Draw the fold scores and their mean ± std (``np.std``, ddof=0, as ``cv_results_``); return the display.

        Parameters
        ----------
        ax : matplotlib Axes, default None
            Where to draw; None makes a new constrained-layout figure.

        Returns
        -------
        ScoresDisplay
            ``self``, with ``ax_``, ``figure_``, ``lines_`` and ``means_``.

        Examples
        --------
        >>> import matplotlib.pyplot as plt
        >>> _, (left, right) = plt.subplots(1, 2)
        >>> ScoresDisplay.from_results(res).plot(ax=right).ax_ is right
        True
        """
        ax = self._axes(ax)
        self.lines_, self.means_ = {}, {}
        for position, (metric, values) in enumerate(self.scores.items()):
            jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
            (points,) = ax.plot(position + jitter, values, "o", alpha=0.7, label=f"{metric} (folds)")
            mean, std = np.nanmean(values), np.nanstd(values)
            self.means_[metric] = ax.errorbar([position + 0.3], [mean], yerr=[std], fmt="s",
                                              color=points.get_color(), capsize=4,
                                              label="mean ± std over folds" if position == 0 else None)
            ax.annotate(f"{mean:.3f} ± {std:.3f}", (position + 0.35, mean), va="center", fontsize=9)
            self.lines_[metric] = points
        ax.set_xticks(range(len(self.scores)))
        ax.set_xticklabels(list(self.scores))
        ax.set_xlim(-0.5, len(self.scores) - 0.5 + 0.6)
        # Name the metric when there is one; several share the axis under their tick labels.
        ax.set_ylabel(f"outer test {next(iter(self.scores))}" if len(self.scores) == 1 else "outer test score")
        # Say what the error bars are: the std of the fold scores (np.std,
        # ddof=0, as scikit-learn's cv_results_ std_test_score), not an interval.
        ax.set_title("Scores per outer fold (bars: mean ± std over folds)")
        return self


class PermutationDisplay(Display):
    """Null distribution of permutation scores, the observed score and the p-value.

    ``bars_`` holds the histogram's bars, ``line_`` the observed score.

    Parameters
    ----------
    permutation_scores : array-like
        The score of each permutation (mean over outer folds).
    score : float
        The observed score.
    pvalue : float
        ``(1 + #{permuted >= observed}) / (1 + n_permutations)``.
    metric : str
        The metric of the scores.

    Examples
    --------
    >>> PermutationDisplay(permutation_scores=[0.3, 0.35, 0.4], score=0.9, pvalue=0.25,
    ...                    metric="accuracy").plot().line_.get_xdata()
    [0.9, 0.9]
    """

    def __init__(self, *, permutation_scores, score, pvalue, metric):
        self.permutation_scores = np.asarray(permutation_scores)
        self.score, self.pvalue, self.metric = score, pvalue, metric

    @classmethod
    def from_results(cls, results, *, bins=None, ax=None):
        """Plot the permutation test of ``results``; return the display.

        Parameters
        ----------
        results : Results
            A finished run of an Experiment with ``n_permutations > 0``.
        bins : int or sequence, default None
            Passed to :meth:`plot`.
        ax : matplotlib Axes, default None
            Where to draw; None makes a new figure.

        Returns
        -------
        PermutationDisplay
            With ``ax_``, ``figure_``, ``bars_`` and ``line_`` set.

        Raises
        ------
        ValueError
            If the experiment ran no permutations.

        Examples
        --------
        >>> disp = PermutationDisplay.from_results(perm_res)
        >>> disp.line_.get_label()
        'observed 0.967 (p = 0.167)'
        """
        if results.permutation_scores is None:
            raise invalid("plot_permutation needs an experiment with n_permutations > 0.")
        return cls(permutation_scores=results.permutation_scores, score=results.score, pvalue=results.pvalue,
                   metric=results.permutation_metric).plot(ax, bins=bins)

    def plot(self, ax=None, *, bins=None):
        """Draw the null histogram and the observed score; return the display.

        Parameters
        ----------
        ax : matplotlib Axes, default None
            Where to draw; None makes a new constrained-layout figure.
        bins : int or sequence, default None
            Histogram bins; None fits them to the null distribution alone
            (:func:`permutation_bins`), so the observed score far away does
            not squash the histogram.

        Returns
        -------
        PermutationDisplay
            ``self``, with ``ax_``, ``figure_``, ``bars_`` and ``line_``.

        Examples
        --------
        >>> len(perm_res.plot_permutation().plot(bins=5).bars_)
        5
        """
        from matplotlib.ticker import MaxNLocator

        ax = self._axes(ax)
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


class TimelineDisplay(Display):
    """Tasks as horizontal bars per worker (host:pid) over wall-clock time.

    ``bars_[kind]`` holds the bars of the tasks of one kind, from the moment
    the worker was ready (``ready``) to the output; a worker's start-up
    before its first task (imports, loading the workdir) is drawn apart,
    hatched grey, in ``startup_`` (None when no task waited for one).

    Parameters
    ----------
    timeline : pandas.DataFrame
        One row per finished task: ``task, kind, start, ready, end, host, pid``
        (``res.timeline()``).

    Examples
    --------
    >>> disp = TimelineDisplay.from_results(res)
    >>> sorted(disp.bars_)
    ['final', 'fit', 'fit-all', 'select', 'select-all']
    """

    def __init__(self, *, timeline):
        self.timeline = timeline

    @classmethod
    def from_results(cls, results, *, ax=None):
        """Plot when and where each task of ``results`` ran; return the display.

        Parameters
        ----------
        results : Results
            A finished run.
        ax : matplotlib Axes, default None
            Where to draw; None makes a new figure.

        Returns
        -------
        TimelineDisplay
            With ``ax_``, ``figure_`` and ``bars_`` set.

        Examples
        --------
        >>> TimelineDisplay.from_results(res).ax_.get_xlabel()
        'seconds since the first task started'
        """
        return cls(timeline=results.timeline()).plot(ax)

    def plot(self, ax=None):
        """Draw one bar per task, one row per worker; return the display.

        Parameters
        ----------
        ax : matplotlib Axes, default None
            Where to draw; None makes a new constrained-layout figure.

        Returns
        -------
        TimelineDisplay
            ``self``, with ``ax_``, ``figure_`` and ``bars_``.

        Examples
        --------
        >>> TimelineDisplay(timeline=res.timeline()).plot().bars_["fit"]
        <BarContainer object of 18 artists>
        """
        ax = self._axes(ax)
        frame = self.timeline.dropna(subset=["start", "end"])
        origin = frame["start"].min() if len(frame) else 0.0
        workers = sorted({f"{h}:{p}" for h, p in zip(frame["host"], frame["pid"])})
        row = {worker: index for index, worker in enumerate(workers)}
        colors = {"fit": "#1f77b4", "score": "#1f77b4", "select": "#ff7f0e", "final": "#2ca02c",
                  "fit-all": "#17becf", "select-all": "#9467bd"}
        # A worker's start-up (loading the workdir before its first task) is
        # drawn apart, hatched grey: it is not the task's own time.
        ready = frame["ready"].fillna(frame["start"]) if "ready" in frame else frame["start"]
        setup = frame.assign(ready=ready)[ready > frame["start"]]
        self.startup_ = None
        if len(setup):
            ys = [row[f"{h}:{p}"] for h, p in zip(setup["host"], setup["pid"])]
            self.startup_ = ax.barh(ys, setup["ready"] - setup["start"], left=setup["start"] - origin, height=0.6,
                                    color="#e0e0e0", hatch="///", edgecolor="#9e9e9e", linewidth=0.4,
                                    label="worker start-up")
        frame = frame.assign(start=ready)
        self.bars_ = {}
        for kind, group in sorted(frame.groupby("kind"), key=lambda item: LAYER_OF_KIND.get(item[0], 9)):
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
        return self
