"""Driving a JupyterLab notebook from Playwright: open, run cells, read outputs, save.

``window.jupyterapp`` (``--LabApp.expose_app_in_browser``) gives the page's
own JupyterLab application: commands are what the menus run, and the cell
models hold exactly what is saved to the ``.ipynb``.
"""

import json
import shutil
import time
from pathlib import Path

WIDGET_ERROR = "Error displaying widget"
NOTEBOOKS = Path(__file__).parents[2] / "notebooks"

_NOTEBOOK = "window.jupyterapp.shell.currentWidget"


def open_notebook(page, lab, name, timeout=90):
    """Open ``name`` (relative to the lab root) and wait for an idle kernel.

    A fresh workspace each time: no tab of an earlier test is restored.
    """
    import uuid

    page.goto(lab.url(f"lab/workspaces/{uuid.uuid4().hex[:12]}/tree/{name}"))
    page.wait_for_function(
        f"() => window.jupyterapp && {_NOTEBOOK} && {_NOTEBOOK}.context && {_NOTEBOOK}.context.isReady"
        f" && {_NOTEBOOK}.sessionContext.session && {_NOTEBOOK}.sessionContext.session.kernel"
        f" && {_NOTEBOOK}.sessionContext.session.kernel.status === 'idle'",
        timeout=timeout * 1000)


def command(page, name, args=None):
    """Run a JupyterLab command (what a menu entry or a shortcut does)."""
    page.evaluate("([name, args]) => window.jupyterapp.commands.execute(name, args)", [name, args or {}])


def run_cell(page, index):
    """Select cell ``index`` and run it (Ctrl-Enter)."""
    page.evaluate(f"(index) => {{ {_NOTEBOOK}.content.activeCellIndex = index; }}", index)
    command(page, "notebook:run-cell")


def wait_until_idle(page, timeout=180):
    """Wait until no cell is queued or running and the kernel is idle."""
    page.wait_for_function(
        f"""() => {{
            const notebook = {_NOTEBOOK}.content;
            const busy = notebook.widgets.some(cell => cell.model.type === 'code' &&
                (cell.promptNode && cell.promptNode.textContent.includes('*')));
            return !busy && {_NOTEBOOK}.sessionContext.session.kernel.status === 'idle';
        }}""", timeout=timeout * 1000, polling=250)


def cell_outputs(page, index):
    """The outputs of cell ``index`` as they would be saved (nbformat dicts)."""
    return json.loads(page.evaluate(
        f"(index) => JSON.stringify({_NOTEBOOK}.content.widgets[index].model.outputs.toJSON())", index))


def cell_text(page, index):
    """What cell ``index``'s output area shows, as text."""
    return page.evaluate(
        f"(index) => {{ const cell = {_NOTEBOOK}.content.widgets[index];"
        " const area = cell.node.querySelector('.jp-Cell-outputArea');"
        " return area ? area.innerText : ''; }", index)


def notebook_text(page):
    return page.evaluate(f"() => {_NOTEBOOK}.content.node.innerText")


def n_cells(page):
    return page.evaluate(f"() => {_NOTEBOOK}.content.widgets.length")


def save(page):
    command(page, "docmanager:save")
    page.wait_for_function(f"() => !{_NOTEBOOK}.context.model.dirty", timeout=30000)


def shutdown_kernel(page):
    page.evaluate(f"() => {_NOTEBOOK}.sessionContext.shutdown()")


def poll(page, condition, timeout=120, interval=0.2):
    """Call ``condition()`` until it is true; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        page.wait_for_timeout(interval * 1000)


def copy_notebook(lab, name):
    """Put a project notebook into the lab's root folder (a fresh copy per test)."""
    shutil.copy(NOTEBOOKS / name, lab.root / name)
    return name
