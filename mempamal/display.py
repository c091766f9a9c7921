"""Display objects and HTML summaries, in scikit-learn's Display style.

``XDisplay.from_results(res)`` collects the data; ``.plot(ax=None)`` draws it
and returns the display with ``ax_`` and ``figure_`` set.
"""

import html

import numpy as np


def _axes(ax):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    return ax


class ScoresDisplay:
    """Outer-fold test scores of each metric, with their mean ± std.

    Examples
    --------
    >>> disp = ScoresDisplay.from_results(res)       # doctest: +SKIP
    >>> disp.plot().figure_.savefig("scores.png")    # doctest: +SKIP
    """

    def __init__(self, scores):
        self.scores = {metric: np.asarray(values) for metric, values in scores.items()}

    @classmethod
    def from_results(cls, results, metric=None):
        metrics = [metric] if metric else list(results.test_scores)
        return cls({m: results.test_scores[m] for m in metrics})

    def plot(self, ax=None):
        ax = _axes(ax)
        self.lines_ = {}
        for position, (metric, values) in enumerate(self.scores.items()):
            jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
            (points,) = ax.plot(position + jitter, values, "o", alpha=0.7, label=f"{metric} (folds)")
            mean, std = np.nanmean(values), np.nanstd(values)
            ax.errorbar([position + 0.3], [mean], yerr=[std], fmt="s", color=points.get_color(), capsize=4)
            ax.annotate(f"{mean:.3f} ± {std:.3f}", (position + 0.35, mean), va="center", fontsize=9)
            self.lines_[metric] = points
        ax.set_xticks(range(len(self.scores)))
        ax.set_xticklabels(list(self.scores))
        ax.set_xlim(-0.5, len(self.scores) - 0.5 + 0.6)
        ax.set_ylabel("outer test score")
        ax.set_title("Scores per outer fold")
        self.ax_, self.figure_ = ax, ax.figure
        return self


_KIND_LAYER = {"fit": 0, "score": 0, "select": 1, "final": 2}
_STATUS_COLOR = {"done": "#2ca02c", "pending": "#c7c7c7", "failed": "#d62728"}


class GraphDisplay:
    """The task graph, layered fit → select → final, colored by status."""

    def __init__(self, tasks, status):
        self.tasks = tasks
        self.status = status

    @classmethod
    def from_workflow(cls, workflow):
        done, failed = workflow.done_ids(), set(workflow.failed_ids())
        status = {t.id: "done" if t.id in done else "failed" if t.id in failed else "pending" for t in workflow.tasks}
        return cls(workflow.tasks, status)

    def plot(self, ax=None, max_tasks=2000):
        ax = _axes(ax)
        tasks = self.tasks if len(self.tasks) <= max_tasks else self.tasks[-max_tasks:]
        layers = {}
        for task in tasks:
            layers.setdefault(_KIND_LAYER[task.kind], []).append(task)
        self.positions_ = {}
        for layer, members in layers.items():
            xs = np.linspace(0, 1, len(members) + 2)[1:-1]
            for x, task in zip(xs, members):
                self.positions_[task.id] = (x, -layer)
        for task in tasks:
            for dep in task.deps:
                if dep in self.positions_:
                    (x0, y0), (x1, y1) = self.positions_[dep], self.positions_[task.id]
                    ax.plot([x0, x1], [y0, y1], color="#bbbbbb", lw=0.5, zorder=1)
        for status, color in _STATUS_COLOR.items():
            pts = [self.positions_[t.id] for t in tasks if self.status[t.id] == status]
            if pts:
                ax.scatter(*zip(*pts), color=color, s=25, zorder=2, label=f"{status} ({len(pts)})")
        ax.set_yticks([-layer for layer in sorted(layers)])
        ax.set_yticklabels([{0: "fit / score", 1: "select", 2: "final"}[layer] for layer in sorted(layers)])
        ax.set_xticks([])
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title(f"{len(self.tasks)} tasks")
        self.ax_, self.figure_ = ax, ax.figure
        return self


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


def workflow_html(workflow):
    status = workflow.status()
    rows = [(kind, f"{c['done']} / {c['total']} done") for kind, c in status["by_kind"].items()]
    rows.append(("failed", status["failed"]))
    return f"<b>mempamal Workflow</b> <code>{html.escape(str(workflow.workdir))}</code>" + _table(rows)


def results_html(results):
    summary = results.summary().to_html(float_format=lambda v: f"{v:.4f}")
    best = ""
    if results.nested:
        best = "<br><b>best parameters per outer fold</b>" + _table(
            [(fold, params) for fold, params in enumerate(results.best_params)])
    perm = ""
    if results.pvalue is not None:
        perm = f"<br>permutation test ({results.permutation_metric}): p-value = {results.pvalue:.4g}"
    return f"<b>mempamal Results</b> <code>{html.escape(str(results.workdir))}</code>{summary}{best}{perm}"
