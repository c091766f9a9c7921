"""JupyterLab in headless Chromium: live panels, a free kernel, static outputs after reopening.

Each test drives the real front end (clicks, typing, JupyterLab commands),
then reads what the page shows and what the saved ``.ipynb`` holds.
"""

import os
from pathlib import Path

import nbformat
import pytest

from lab_server import browser, chromium_path, lab, page  # noqa: F401 (fixtures)
from notebook_page import (WIDGET_ERROR, cell_text, command, copy_notebook, n_cells, notebook_text,
                           open_notebook, poll, run_cell, save, wait_until_idle)

SLOW_SETUP = '''import time
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

def slow_identity(X):
    time.sleep(0.25)  # slow enough to watch the run from the browser
    return X

X, y = load_iris(return_X_y=True)
slow = make_pipeline(FunctionTransformer(slow_identity), LogisticRegression(max_iter=300))'''

ASYNC_CELL = '''%%mempamal --async -n 2 -w runs/async -o res --overwrite
estimator = slow
param_grid = {"logisticregression__C": [0.1, 1.0]}
cv, inner_cv = 4, 2'''


def screenshot(page, name):
    """Saved under $MEMPAMAL_SCREENSHOTS when set (to look at them), else nowhere."""
    folder = os.environ.get("MEMPAMAL_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def write_notebook(lab, name, sources):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nbformat.write(notebook, lab.root / name)
    return name


def folds_done(text):
    """``k`` of the panel's "k/n outer folds" line, or None."""
    import re

    match = re.search(r"(\d+)/(\d+) outer folds", text)
    return None if match is None else int(match.group(1))


def assert_no_widget_errors(page):
    assert WIDGET_ERROR not in notebook_text(page)
    assert page.console_errors == []


def reopen(page, lab, name):
    """Close every tab, shut every kernel down, open ``name`` again: what a user sees the next day."""
    import json

    command(page, "application:close-all")
    for session in json.loads(lab.api("sessions")):
        lab.api(f"sessions/{session['id']}", method="DELETE")
    page.reload()
    open_notebook(page, lab, name)
    page.wait_for_timeout(2000)  # renderers settle
    if WIDGET_ERROR in notebook_text(page):
        # JupyterLab's widget renderer may run after the new kernel connected and
        # before the notebook's saved widget state is restored: ipywidgets' renderer
        # then says "model not found" and never retries (seen once in about a dozen
        # CI runs, under load). A user reloads; so does this test, once. A state that
        # was not saved (the real bug) fails again, and the assertions come after.
        page.console_errors.clear()
        page.reload()
        open_notebook(page, lab, name)
        page.wait_for_timeout(2000)


def saved_mimetypes(lab, name, index):
    notebook = nbformat.read(lab.root / name, as_version=4)
    return [set(output.get("data", {})) for output in notebook.cells[index].outputs]


def test_async_run_leaves_the_kernel_free_fills_folds_live_and_survives_reopening(lab, page):
    name = write_notebook(lab, "async.ipynb", [SLOW_SETUP, ASYNC_CELL, "print('kernel answers', 6 * 7)",
                                               "%mempamal wait"])
    open_notebook(page, lab, name)
    run_cell(page, 0)
    wait_until_idle(page)
    run_cell(page, 1)
    poll(page, lambda: "running on local" in cell_text(page, 1))
    run_cell(page, 2)  # while the run goes: the kernel must answer at once
    poll(page, lambda: "kernel answers 42" in cell_text(page, 2), timeout=20)
    assert "running on local" in cell_text(page, 1)
    seen = set()
    while "running on local" in cell_text(page, 1):
        folds = folds_done(cell_text(page, 1))
        if folds and not seen & {1, 2, 3}:
            screenshot(page, "async-live")
        seen.add(folds)
        page.wait_for_timeout(200)
    partial = {k for k in seen if k is not None and 0 < k < 4}
    assert partial, f"the fold table never showed some folds before the end: {seen}"
    screenshot(page, "async-finished")
    run_cell(page, 3)
    wait_until_idle(page)
    poll(page, lambda: "mempamal Results" in cell_text(page, 3))
    assert "finished on local: 26/26 tasks done, 4/4 outer folds" in cell_text(page, 1)
    assert_no_widget_errors(page)
    save(page)
    # The live panel was replaced by static HTML: the saved file holds no widget there.
    assert all("application/vnd.jupyter.widget-view+json" not in types for types in saved_mimetypes(lab, name, 1))
    assert any("image/png" in types for types in saved_mimetypes(lab, name, 3))
    reopen(page, lab, name)
    screenshot(page, "async-reopened")
    assert "finished on local" in cell_text(page, 1) and "mempamal Results" in cell_text(page, 3)
    assert page.locator(".jp-Cell-outputArea img").count() >= 1
    assert_no_widget_errors(page)


def test_builder_filled_in_the_browser_previews_runs_live_and_keeps_static_results(lab, page):
    name = write_notebook(lab, "builder.ipynb", [SLOW_SETUP, "builder = %mempamal gui\nbuilder"])
    open_notebook(page, lab, name)
    run_cell(page, 0)
    wait_until_idle(page)
    run_cell(page, 1)
    wait_until_idle(page)
    form = page.locator(".jp-Cell").nth(1)
    form.locator("select").first.select_option(label="slow (notebook)")
    form.locator("textarea").first.fill("logisticregression__C: [0.1, 1.0]")
    form.locator("textarea").first.press("Tab")  # commits the text to the kernel
    form.locator("input[type=text]").first.fill("runs/builder")
    form.locator("input[type=text]").first.press("Enter")
    poll(page, lambda: "ready" in form.inner_text(), timeout=30)
    form.locator("button", has_text="Preview").click()
    poll(page, lambda: form.locator("img[alt='task graph']").count() == 1, timeout=60)
    assert "first tasks of each kind" in form.inner_text()
    screenshot(page, "builder-preview")
    form.locator(".lm-TabBar-tab", has_text="Experiment").click()
    form.locator("button", has_text="Run").first.click()
    poll(page, lambda: "running on local" in form.inner_text(), timeout=60)
    assert form.locator("button", has_text="Preview").is_disabled()
    seen = set()
    while "running on local" in form.inner_text():
        folds = folds_done(form.inner_text())
        if folds and not seen & {1, 2, 3, 4}:
            screenshot(page, "builder-live")
        seen.add(folds)
        page.wait_for_timeout(200)
    assert {k for k in seen if k is not None and 0 < k < 5}, seen
    poll(page, lambda: "mempamal Results" in cell_text(page, 1), timeout=60)
    poll(page, lambda: not form.locator("button", has_text="Preview").is_disabled(), timeout=30)
    screenshot(page, "builder-finished")
    assert_no_widget_errors(page)
    save(page)
    reopen(page, lab, name)
    screenshot(page, "builder-reopened")
    # The form needs a kernel; the results below it are static and still there.
    assert "mempamal Results" in cell_text(page, 1)
    assert page.locator(".jp-Cell").nth(1).locator("img").count() >= 1


@pytest.mark.parametrize("notebook", ["05_widget_builder.ipynb", "07_launch_and_collect.ipynb"])
def test_notebook_runs_in_the_browser_without_widget_errors_and_reopens_with_static_results(lab, page, notebook):
    name = copy_notebook(lab, notebook)
    open_notebook(page, lab, name)
    command(page, "notebook:run-all-cells")
    page.wait_for_timeout(1000)
    wait_until_idle(page, timeout=300)
    page.wait_for_timeout(2500)  # a panel's last refresh turns it static
    text = notebook_text(page)
    assert "Traceback" not in text and "Error" not in text.replace("WorkflowError", "")
    assert_no_widget_errors(page)
    screenshot(page, f"{notebook[:2]}-ran")
    save(page)
    reopen(page, lab, name)
    screenshot(page, f"{notebook[:2]}-reopened")
    reopened = notebook_text(page)
    assert "mempamal Results" in reopened and page.locator(".jp-Cell-outputArea img").count() >= 1
    assert_no_widget_errors(page)
    assert n_cells(page) == len(nbformat.read(lab.root / name, as_version=4).cells)
