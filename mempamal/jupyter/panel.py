"""The live panel of a :class:`mempamal.Run` in a notebook.

A timer thread refreshes a small widget (progress bar, elapsed / ETA, outer
folds as they finish) from the workdir files while the kernel keeps
executing other cells.  When the run ends, the panel's output is replaced by
static HTML (``update_display``), so a saved notebook reopened later shows
the final state instead of "Error displaying widget".

Registered for ``Run`` objects when the extension loads: a cell ending with
``run`` or ``wf.submit(...)`` shows the panel.
"""

import contextvars
import html
import threading

import ipywidgets as widgets
from IPython.display import display

from .static import Static


class RunPanel(widgets.VBox):
    """Progress, elapsed / ETA and finished outer folds of a run, refreshed from the files.

    Examples
    --------
    >>> panel = RunPanel(wf.submit(n_jobs=1))
    >>> panel.refresh(); panel.bar.value
    29
    """

    def __init__(self, run):
        self.run = run
        total = run.status()["total"]
        self.bar = widgets.IntProgress(value=0, min=0, max=max(total, 1), description="tasks",
                                       layout=widgets.Layout(width="420px"))
        self.line = widgets.HTML()
        self.folds = widgets.HTML("<i>no outer fold finished yet</i>")
        super().__init__([widgets.HTML(f"<b>mempamal run</b> <code>{run.workflow.workdir}</code>"),
                          widgets.HBox([self.bar, self.line]), self.folds])
        self.refresh()

    def refresh(self):
        """Read the workdir once and update every part of the panel.

        Examples
        --------
        >>> run = wf.submit(n_jobs=1)
        >>> panel = RunPanel(run); run.join(); panel.refresh()
        True
        >>> panel.bar.value == run.status()["done"]
        True
        """
        from mempamal.display import folds_html

        counts = self.run.status()
        self.bar.value = counts["done"]
        self.bar.bar_style = {"failed": "danger", "cancelled": "warning", "finished": "success"}.get(
            self.run.state, "info" if not counts["failed"] else "danger")
        from mempamal.display import run_jobs_line

        jobs = run_jobs_line(self.run)  # one squeue call for a job-based run, nothing otherwise
        self.line.value = f"&nbsp;{html.escape(self.run.summary_line())}" + (
            f"<br>&nbsp;{html.escape(jobs)}" if jobs else "")
        frame = self.run.results()
        if not frame.empty:
            self.folds.value = folds_html(frame)

    def __repr__(self):
        # What a reopened notebook or a terminal shows instead of the widget.
        return f"mempamal run panel: {self.run.summary_line()}"


def show_run(run, interval=1.0):
    """Display ``run`` as a live panel; static HTML once it has ended.

    Examples
    --------
    >>> run = wf.submit(n_jobs=1); res = run.wait()
    >>> show_run(run)
    finished on local: 29/29 tasks done, 3/3 outer folds, ... s elapsed
    """
    from IPython import get_ipython

    from mempamal.display import run_html

    if not has_widget_frontend(get_ipython()):
        print(run.summary_line())  # terminal IPython: one readable line, no widget
        return None
    if run.done():
        display(Static(run_html(run), repr(run)))
        return None
    panel = RunPanel(run)
    handle = display(panel, display_id=True)
    context = contextvars.copy_context()  # updates belong to this cell
    thread = threading.Thread(target=context.run, args=(_follow, run, panel, handle, interval),
                              name="mempamal-panel", daemon=True)
    thread.start()
    return panel


def _follow(run, panel, handle, interval):
    from mempamal.display import run_html

    try:
        while not run.join(interval):
            panel.refresh()
    finally:
        # The live widget gives way to static HTML that survives save and reopen.
        handle.update(Static(run_html(run), repr(run)))
        panel.close()


def has_widget_frontend(ipython):
    """True in a kernel (a front end that can draw widgets); False in terminal IPython.

    Examples
    --------
    >>> has_widget_frontend(None)
    False
    """
    return getattr(ipython, "kernel", None) is not None
