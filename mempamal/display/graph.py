"""The task graph as a picture and a table, readable from 10 to 100,000 tasks.

Small graphs (up to ``FULL_GRAPH_MAX_TASKS``) are drawn task by task.
Larger ones are *aggregated*: one node per kind x outer fold (``fit o2``,
``select o2``), all permutations folded into one column per kind, each node
labelled ``done/total`` and coloured by its status.  A graph of 331 or
50,000 tasks then has as many nodes as a 5-fold nested CV.
"""

import html

import numpy as np

#: Beyond this many tasks the graph is drawn aggregated.
FULL_GRAPH_MAX_TASKS = 60
LAYER_OF_KIND = {"fit": 0, "score": 0, "select": 1, "final": 2, "fit-all": 0, "select-all": 1}
LAYER_NAMES = {0: "fit / score", 1: "select", 2: "final"}
STATUS_COLOR = {"done": "#2ca02c", "partly done": "#a6dba0", "pending": "#c7c7c7", "failed": "#d62728",
                "blocked": "#ff9896"}  # blocked: waits on a failed task (the words of `mempamal status`)


def new_axes(ax):
    """``ax``, or the axes of a new constrained-layout figure when ``ax`` is None.

    Constrained layout keeps rotated tick labels, legends and colorbars
    inside the figure.

    Examples
    --------
    >>> new_axes(None).figure.get_layout_engine().__class__.__name__
    'ConstrainedLayoutEngine'
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(layout="constrained")
    return ax


class Display:
    """What every Display shares: the axes a ``plot`` draws on become ``ax_`` and ``figure_``.

    Like scikit-learn's displays, a subclass takes its data as keyword-only
    ``__init__`` arguments, builds them in a ``from_results`` (or
    ``from_workflow``) class method that also plots, and draws in
    ``plot(ax=None, *, ...)``, which returns the display itself.

    Examples
    --------
    >>> class Empty(Display):
    ...     def plot(self, ax=None):
    ...         self._axes(ax)
    ...         return self
    >>> Empty().plot().ax_ is not None
    True
    """

    def _axes(self, ax):
        """``ax`` (or new axes), recorded as ``ax_``/``figure_`` -- the one place they are set."""
        ax = new_axes(ax)
        self.ax_, self.figure_ = ax, ax.figure
        return ax


class GraphDisplay(Display):
    """The task graph layered fit → select → final, coloured by status; aggregated when large.

    ``positions_`` maps each drawn node (a task id, or ``(kind, column)``
    when aggregated) to its ``(x, y)``; ``aggregated_`` says which form was
    drawn.

    Parameters
    ----------
    tasks : list of Task
        The workflow's tasks (``wf.tasks``).
    status : dict
        ``{task id: "done" | "failed" | "pending"}``.

    Examples
    --------
    >>> disp = GraphDisplay.from_workflow(wf)
    >>> disp.aggregated_, len(disp.positions_)
    (False, 29)
    """

    def __init__(self, *, tasks, status):
        self.tasks = tasks
        self.status = status

    @classmethod
    def from_workflow(cls, workflow, *, aggregate=None, ax=None):
        """Draw the graph of ``workflow`` coloured by its tasks' status; return the display.

        Parameters
        ----------
        workflow : Workflow
            An open or freshly built workflow.
        aggregate : bool or None, default None
            Passed to :meth:`plot`.
        ax : matplotlib Axes, default None
            Where to draw; None makes a new figure.

        Returns
        -------
        GraphDisplay
            With ``ax_``, ``figure_``, ``positions_`` and ``aggregated_`` set.

        Examples
        --------
        >>> disp = GraphDisplay.from_workflow(wf)
        >>> disp.ax_.get_title()
        '29 tasks: 18 fit, 3 select, 6 fit-all, 1 select-all, 1 final'
        """
        done, failed = workflow.done_ids(), set(workflow.failed_ids())
        blocked = set(workflow.blocked_ids(done, failed)) if failed else set()
        status = {t.id: "done" if t.id in done else "failed" if t.id in failed
                  else "blocked" if t.id in blocked else "pending" for t in workflow.tasks}
        return cls(tasks=workflow.tasks, status=status).plot(ax, aggregate=aggregate)

    def plot(self, ax=None, *, aggregate=None):
        """Draw the graph; return the display.

        Parameters
        ----------
        ax : matplotlib Axes, default None
            Where to draw; None makes a new constrained-layout figure.
        aggregate : bool or None, default None
            True draws one box per kind x outer fold, False one point per
            task; None chooses by size (see ``FULL_GRAPH_MAX_TASKS``).

        Returns
        -------
        GraphDisplay
            ``self``, with ``ax_``, ``figure_``, ``positions_``, ``aggregated_``.

        Examples
        --------
        >>> GraphDisplay.from_workflow(wf).plot(aggregate=True).aggregated_
        True
        """
        ax = self._axes(ax)
        self.aggregated_ = len(self.tasks) > FULL_GRAPH_MAX_TASKS if aggregate is None else aggregate
        if self.aggregated_:
            self._plot_aggregated(ax)
        else:
            self._plot_tasks(ax)
        ax.set_yticks([0, -1, -2])
        ax.set_yticklabels([LAYER_NAMES[layer] for layer in (0, 1, 2)])
        ax.set_ylim(-2.5, 0.5)
        ax.set_xticks([])
        for side in ("top", "right", "bottom"):
            ax.spines[side].set_visible(False)
        counts = {}
        for task in self.tasks:
            counts[task.kind] = counts.get(task.kind, 0) + 1
        ax.set_title(f"{len(self.tasks)} tasks: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
        return self

    def _plot_tasks(self, ax):
        layers = {}
        for task in self.tasks:
            layers.setdefault(LAYER_OF_KIND[task.kind], []).append(task)
        self.positions_ = {}
        for layer, members in layers.items():
            for x, task in zip(np.linspace(0, 1, len(members) + 2)[1:-1], members):
                self.positions_[task.id] = (x, -layer)
        for task in self.tasks:
            for dep in task.deps:
                (x0, y0), (x1, y1) = self.positions_[dep], self.positions_[task.id]
                ax.plot([x0, x1], [y0, y1], color="#bbbbbb", lw=0.5, zorder=1)
        for status, color in STATUS_COLOR.items():
            for permuted, marker in ((False, "o"), (True, "D")):
                points = [self.positions_[t.id] for t in self.tasks
                          if self.status[t.id] == status and (t.permutation is not None) == permuted]
                if points:
                    label = f"{status} ({len(points)})" + (" permuted y" if permuted else "")
                    ax.scatter(*zip(*points), color=color, marker=marker, s=25, zorder=2, label=label)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))

    def _plot_aggregated(self, ax):
        nodes = aggregate_tasks(self.tasks, self.status)
        columns = sorted({column for _, column in nodes if column is not None}, key=_column_order)
        x_of = {column: x for column, x in zip(columns, np.linspace(0, 1, len(columns) + 2)[1:-1])}
        self.positions_ = {key: (x_of.get(key[1], 0.5), -LAYER_OF_KIND[key[0]]) for key in nodes}
        for key, node in nodes.items():
            for dep in node["deps"]:
                (x0, y0), (x1, y1) = self.positions_[dep], self.positions_[key]
                ax.plot([x0, x1], [y0, y1], color="#999999", lw=0.8, zorder=1)
        width = min(0.9 / max(len(columns), 1), 0.2)
        n_permutations = len({t.permutation for t in self.tasks if t.permutation is not None})
        for key, node in nodes.items():
            x, y = self.positions_[key]
            color = STATUS_COLOR[node_status(node)]
            permuted = key[1] == PERMUTATIONS
            ax.add_patch(_box(x, y, width, color, hatched=permuted))
            # The search on all the data is no outer fold: named as what it is.
            where = (f"perm ×{n_permutations}" if permuted else "final search\n(all data)" if key[1] == ALL_DATA
                     else key[1] or "")
            ax.text(x, y, f"{key[0]}\n{where}\n{node['done']}/{node['total']}".replace("\n\n", "\n"),
                    ha="center", va="center", fontsize=7 if len(columns) > 6 else 8, zorder=3,
                    bbox={"facecolor": "white", "alpha": 0.6, "pad": 0.5, "linewidth": 0} if permuted else None)
        for status, color in STATUS_COLOR.items():
            ax.scatter([], [], marker="s", color=color, label=status)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), title="one box: kind x outer fold",
                  title_fontsize=8)
        ax.set_xlim(0, 1)


#: The column of the aggregated graph holding every permutation.
PERMUTATIONS = "perm"
#: The column of the final search on all the data (``final_fit=True``).
ALL_DATA = "all"


def aggregate_tasks(tasks, status):
    """``{(kind, column): {done, failed, total, deps}}``: columns ``o<k>``, ``all`` (the final
    search on all the data), ``perm``, None (final).

    Examples
    --------
    >>> nodes = aggregate_tasks(wf.tasks, {t.id: "pending" for t in wf.tasks})
    >>> nodes[("fit", "o0")]["total"]
    6
    """
    column_of, nodes = {}, {}
    for task in tasks:
        if task.kind == "final":
            column = None
        elif task.permutation is not None:
            column = PERMUTATIONS
        elif task.outer is None:
            column = ALL_DATA
        else:
            column = f"o{task.outer}"
        key = (task.kind, column)
        column_of[task.id] = key
        node = nodes.setdefault(key, {"done": 0, "failed": 0, "blocked": 0, "total": 0, "deps": set()})
        node["total"] += 1
        node["done"] += status[task.id] == "done"
        node["failed"] += status[task.id] == "failed"
        node["blocked"] += status[task.id] == "blocked"
        node["deps"].update(column_of[dep] for dep in task.deps)
    return nodes


def node_status(node):
    """One status for a box: failed wins, then blocked, done, partly done, pending.

    Examples
    --------
    >>> node_status({"done": 2, "failed": 0, "total": 6})
    'partly done'
    """
    if node["failed"]:
        return "failed"
    if node.get("blocked"):
        return "blocked"
    if node["done"] == node["total"]:
        return "done"
    return "partly done" if node["done"] else "pending"


def _column_order(column):
    # Outer folds, then the final search on all the data, then permutations.
    return {PERMUTATIONS: (2, 0), ALL_DATA: (1, 0)}.get(column) or (0, int(column[1:]))


def _box(x, y, width, color, hatched):
    from matplotlib.patches import FancyBboxPatch

    return FancyBboxPatch((x - width / 2, y - 0.3), width, 0.6, boxstyle="round,pad=0.01,rounding_size=0.02",
                          facecolor=color, edgecolor="#555555", hatch="///" if hatched else None, zorder=2)


def graph_png_html(workflow, size=(6.4, 3.6), dpi=100):
    """``<img>`` of the task graph, drawn without pyplot.

    The size matches matplotlib's default figure width at the inline
    backend's resolution, like every other plot.  A bare ``Figure`` is never
    registered with pyplot, so the inline backend does not show it a second
    time at the end of the cell.

    Examples
    --------
    >>> graph_png_html(wf)[:40]
    "<img alt='task graph' src='data:image/pn"
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=dpi, layout="constrained")
    GraphDisplay.from_workflow(workflow, ax=figure.add_subplot())
    return figure_png_html(figure, alt="task graph")


def figure_png_html(figure, alt="plot"):
    """``<img>`` holding ``figure`` as an inline PNG (static: survives save and reopen).

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> figure_png_html(Figure(figsize=(1, 1))).startswith("<img alt='plot' src='data:image/png;base64,")
    True
    """
    import base64
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{encoded}'/>"


def task_table_html(workflow, per_kind=4):
    """The first tasks of each kind (main split set, then permutations) as an HTML table.

    Examples
    --------
    >>> task_table_html(wf)[:60]
    '<b>first tasks of each kind</b> (all in tasks.json)<table><t'
    """
    shown, counts = [], {}
    for task in workflow.tasks:
        group = (task.kind, task.permutation is not None)
        counts[group] = counts.get(group, 0) + 1
        if counts[group] <= per_kind:
            shown.append(task)
    rows = "".join(
        f"<tr><td>{html.escape(t.id)}</td><td>{t.kind}</td><td>{len(t.deps)}</td>"
        f"<td>{len(t.points or ())}</td></tr>" for t in shown)
    return ("<b>first tasks of each kind</b> (all in tasks.json)<table><tr><th>id</th><th>kind</th>"
            f"<th>deps</th><th>grid points</th></tr>{rows}</table>")
