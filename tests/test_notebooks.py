"""The notebooks run top to bottom in a real Jupyter kernel, isolated from the user's files."""

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def kernel_environment(tmp_path):
    """The test's environment minus Jupyter/IPython settings, with private HOME and config dirs."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTER", "IPYTHON")) and k not in ("MPLBACKEND", "PYTHONSTARTUP")}
    for name, folder in [("HOME", "home"), ("IPYTHONDIR", "ipython"), ("JUPYTER_CONFIG_DIR", "jupyter-config"),
                         ("JUPYTER_DATA_DIR", "jupyter-data"), ("JUPYTER_RUNTIME_DIR", "jupyter-runtime"),
                         ("MPLCONFIGDIR", "matplotlib")]:
        env[name] = str(tmp_path / folder)
        os.makedirs(env[name], exist_ok=True)
    return env


def execute(notebook, tmp_path, timeout=240):
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}, shutdown_kernel="immediate")
    client.execute(env=kernel_environment(tmp_path))
    return notebook


def test_notebooks_are_stored_without_outputs():
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), path.name


def test_magic_is_loaded_in_a_fresh_kernel_without_load_ext(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(
        "import sys\nprint(sys.executable)\nprint('mempamal' in get_ipython().magics_manager.magics['cell'])")]
    execute(notebook, tmp_path, timeout=60)
    lines = notebook.cells[0].outputs[0]["text"].split()
    assert lines == [sys.executable, "True"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_without_error_and_shows_plots(path, tmp_path):
    notebook = execute(nbformat.read(path, as_version=4), tmp_path)
    images = [out for cell in notebook.cells for out in cell.get("outputs", [])
              if "image/png" in out.get("data", {})]
    assert images, f"{path.name} shows no plot"
