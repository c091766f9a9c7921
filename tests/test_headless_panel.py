"""A notebook executed headlessly (nbclient, as nbconvert and papermill do) saves the run's final state."""

import nbformat

from test_notebooks import execute

SETUP = """\
import mempamal as mp
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
wf = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2).build(
    X, y, workdir="runs/headless")
"""


def saved_texts(cell):
    """Everything a saved cell shows: HTML and plain text of its outputs."""
    return " ".join(str(out.get("data", {}).get("text/html", "")) + str(out.get("data", {}).get("text/plain", ""))
                    for out in cell.get("outputs", []))


def test_the_panel_of_a_run_saved_headless_shows_its_end(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(SETUP),
                      nbformat.v4.new_code_cell("run = wf.submit(n_jobs=2)\nrun"),
                      nbformat.v4.new_code_cell("res = run.wait()\nprint(run.state)")]
    execute(notebook, tmp_path)
    assert notebook.cells[2].outputs[-1]["text"].strip() == "finished"
    shown = saved_texts(notebook.cells[1])
    assert "finished on local" in shown, shown[:500]
    assert "running on local" not in shown, shown[:500]
