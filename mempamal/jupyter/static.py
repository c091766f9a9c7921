"""Static outputs: HTML that a saved notebook keeps, with a readable text form.

Whatever a run shows for good (summary, best parameters, plots) is emitted
as plain ``display_data`` (HTML, PNG), never only inside a widget: a notebook
saved and reopened without a kernel still shows it, and terminal IPython
prints the text form instead of ``<IPython.core.display.HTML object>``.
"""

from IPython.display import display


class Static:
    """An HTML fragment with a text form for terminals and plain-text viewers.

    Examples
    --------
    >>> Static("<b>3 tasks</b>", "3 tasks")
    3 tasks
    """

    def __init__(self, html, text):
        self.html, self.text = html, text

    def _repr_html_(self):
        return self.html

    def __repr__(self):
        return self.text


def show_figure(figure):
    """Display a matplotlib figure once as a static PNG, then close it.

    Closing keeps the inline backend from showing it a second time at the
    end of the cell (and keeps figures from piling up in long sessions).

    Examples
    --------
    >>> import contextlib, io
    >>> import matplotlib.pyplot as plt
    >>> figure = res.plot_scores().figure_
    >>> with contextlib.redirect_stdout(io.StringIO()):   # outside IPython: the figure's text form
    ...     show_figure(figure)
    >>> plt.fignum_exists(figure.number)   # shown once, then closed
    False
    """
    import matplotlib.pyplot as plt

    display(figure)
    plt.close(figure)


def preview_static(workflow):
    """Task counts, the graph (aggregated when large) and the first tasks of each kind, side by side.

    Examples
    --------
    >>> from IPython.display import display
    >>> display(preview_static(wf))
    <Workflow ...runs/iris: 29 tasks, 29 done>
    """
    from mempamal.display import graph_png_html, task_table_html, workflow_html

    return Static(workflow_html(workflow, graph=False)
                  + "<div style='display:flex;gap:16px;align-items:flex-start'>"
                  f"<div>{graph_png_html(workflow)}</div><div>{task_table_html(workflow)}</div></div>",
                  repr(workflow))
