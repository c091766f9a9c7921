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
import time

import ipywidgets as widgets
from IPython.display import display

from .static import Static


#: Seconds between two drawings of the search heatmap: a PNG per refresh
#: would cost more than the progress bar it sits under.
SEARCH_INTERVAL = 5.0


class RunPanel(widgets.VBox):
    """Progress, elapsed / ETA and finished outer folds of a run, refreshed from the files.

    A nested run has a second tab, the inner search filling in
    (:class:`mempamal.display.SearchDisplay` as a PNG), redrawn at most every
    :data:`SEARCH_INTERVAL` seconds and only when more fits finished.

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
        self.search = widgets.HTML("<i>no inner fit finished yet</i>")
        self._search_drawn = (None, float("-inf"))  # (fits done when drawn, when)
        body = self.folds
        if run.workflow.table.nested:
            body = widgets.Tab([self.folds, self.search])
            for index, title in enumerate(("outer folds", "inner search")):
                body.set_title(index, title)
        super().__init__([widgets.HTML(f"<b>mempamal run</b> <code>{run.workflow.workdir}</code>"),
                          widgets.HBox([self.bar, self.line]), body])
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
        self.refresh_search(counts)

    def refresh_search(self, counts=None, force=False):
        """Redraw the inner search tab if more fits finished and :data:`SEARCH_INTERVAL` passed.

        Examples
        --------
        >>> panel = RunPanel(wf.submit(n_jobs=1)); panel.refresh_search(force=True)
        >>> panel.search.value.startswith("<img")
        True
        """
        if not self.run.workflow.table.nested:
            return
        counts = self.run.status() if counts is None else counts
        n_fits = counts["by_kind"].get("fit", {}).get("done", 0)
        drawn, when = self._search_drawn
        if not force and (n_fits == drawn or time.monotonic() - when < SEARCH_INTERVAL):
            return
        self._search_drawn = (n_fits, time.monotonic())
        if n_fits:
            self.search.value = search_png_html(self.run.workflow)

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

    if not has_widget_frontend(get_ipython()):
        print(run.summary_line())  # terminal IPython: one readable line, no widget
        return None
    if run.done():
        display(final_state(run))
        return None
    panel = RunPanel(run)
    handle = display(panel, display_id=True)
    FinalStates.of(get_ipython()).add(run, handle)
    context = contextvars.copy_context()  # updates belong to this cell
    thread = threading.Thread(target=context.run, args=(_follow, run, panel, handle, interval),
                              name="mempamal-panel", daemon=True)
    thread.start()
    return panel


def final_state(run):
    """The static HTML a panel gives way to when its run has ended (survives save and reopen).

    Examples
    --------
    >>> run = wf.submit(n_jobs=1); res = run.wait()
    >>> final_state(run)._repr_html_()[:19]
    '<b>mempamal Run</b>'
    """
    from mempamal.display import run_html

    search = search_png_html(run.workflow) if run.workflow.table.nested else ""
    return Static(run_html(run) + search, repr(run))


def search_png_html(workflow):
    """The inner search of ``workflow`` so far, as an inline PNG (drawn off pyplot: no figure left open).

    Examples
    --------
    >>> search_png_html(wf).startswith("<img alt='inner search'")
    True
    """
    from matplotlib.figure import Figure

    from mempamal.display import SearchDisplay, figure_png_html

    display = SearchDisplay.read(workflow)
    figure = Figure(figsize=(6.4, 1.6 + 0.3 * len(display.candidates)), layout="constrained")
    display.plot(figure.subplots())
    return figure_png_html(figure, alt="inner search")


def _follow(run, panel, handle, interval):
    try:
        while not run.join(interval):
            panel.refresh()
    finally:
        # The live widget gives way to static HTML that survives save and reopen.
        handle.update(final_state(run))
        panel.close()


class FinalStates:
    """The panels of one IPython shell still owed their final state, delivered after each cell.

    The panel's thread updates it the moment its run ends, with the parent
    of the cell that showed it: a live front end redraws it, but a headless
    one (nbclient, nbconvert, papermill) reads only the messages of the cell
    executing now and drops that update.  So after every cell (IPython's
    ``post_run_cell`` event, in the kernel's main thread, under the cell
    being executed) the panels of ended runs are updated again -- in the
    cell that waited for the run -- and forgotten.  One per shell, kept on
    the shell: its lifetime is the kernel's.

    Examples
    --------
    >>> states = FinalStates.of(get_ipython())   # needs an IPython shell  # doctest: +SKIP
    >>> FinalStates().deliver()                  # after each cell: the ended runs' panels updated
    """

    def __init__(self):
        self._owed = []
        self._lock = threading.Lock()

    @classmethod
    def of(cls, ipython):
        """The shell's FinalStates, made and hooked to ``post_run_cell`` on first use.

        Examples
        --------
        >>> FinalStates.of(get_ipython()) is FinalStates.of(get_ipython())   # needs an IPython shell  # doctest: +SKIP
        True
        """
        states = getattr(ipython, "_mempamal_final_states", None)
        if states is None:
            states = cls()
            ipython._mempamal_final_states = states
            ipython.events.register("post_run_cell", states.deliver)
        return states

    def add(self, run, handle):
        """Owe ``handle`` (a display handle) the final state of ``run``.

        Examples
        --------
        >>> FinalStates().add(run, display(panel, display_id=True))   # needs an IPython shell  # doctest: +SKIP
        """
        with self._lock:
            self._owed.append((run, handle))

    def deliver(self, *_):
        """Update the display of every ended run once more, then forget it.

        Examples
        --------
        >>> FinalStates().deliver()          # nothing owed: nothing happens
        """
        with self._lock:
            ended = [(run, handle) for run, handle in self._owed if run.done()]
            self._owed = [(run, handle) for run, handle in self._owed if not run.done()]
        for run, handle in ended:
            handle.update(final_state(run))


def has_widget_frontend(ipython):
    """True in a kernel (a front end that can draw widgets); False in terminal IPython.

    Examples
    --------
    >>> has_widget_frontend(None)
    False
    """
    return getattr(ipython, "kernel", None) is not None
