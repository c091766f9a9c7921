"""The notebooks run top to bottom in a real Jupyter kernel, isolated from the user's files."""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mempamal.jupyter.install_startup import FILE_NAME, LAB_OVERRIDES, startup_dir, startup_source

ROOT = Path(__file__).parent.parent

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


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
    installed = startup_dir() / FILE_NAME
    assert installed.exists(), f"{installed} is missing: run 'python -m mempamal.jupyter.install_startup' (make does)"
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
    texts = [out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
             for cell in notebook.cells for out in cell.get("outputs", [])]
    for stray in ("del WorkflowController", "<IPython.core.display.HTML object>"):
        assert not [text for text in texts if stray in text], f"{path.name} prints {stray!r}"


def test_wheel_installs_the_startup_file_into_the_environment(tmp_path):
    """A regular (non-editable) install puts the start-up file in {prefix}/etc/ipython/startup."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "mempamal", "jupyter-config"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, source / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("mempamal-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read(f"mempamal-0.1.0.data/data/etc/ipython/startup/{FILE_NAME}").decode()
        overrides = json.loads(archive.read(f"mempamal-0.1.0.data/data/{LAB_OVERRIDES}"))
    assert shipped == startup_source()
    assert overrides == {"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True}}


def test_install_startup_writes_and_removes_the_file_and_it_loads_the_magics(tmp_path):
    command = [sys.executable, "-m", "mempamal.jupyter.install_startup", "--prefix", str(tmp_path)]
    subprocess.run(command, check=True, capture_output=True)
    installed = startup_dir(tmp_path) / FILE_NAME
    assert installed.read_text() == startup_source()
    lab_settings = tmp_path / LAB_OVERRIDES
    assert json.loads(lab_settings.read_text())["@jupyter-widgets/jupyterlab-manager:plugin"]["saveState"] is True

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    try:
        shell.safe_execfile(str(installed), shell.user_ns, raise_exceptions=True)
        assert "mempamal" in shell.magics_manager.magics["cell"]
        assert "_mempamal_autoload" not in shell.user_ns  # leaves the user's namespace clean
    finally:
        shell.run_line_magic("unload_ext", "mempamal")
        InteractiveShell.clear_instance()
    subprocess.run(command + ["--remove"], check=True, capture_output=True)
    assert not installed.exists() and not lab_settings.exists()


def test_cell_magic_in_a_kernel_shows_summary_one_plot_and_one_line_errors(tmp_path):
    cells = [
        "%%mempamal -n 1 -w wd -o res\n"
        "from sklearn.datasets import load_iris\nfrom sklearn.linear_model import LogisticRegression\n"
        "X, y = load_iris(return_X_y=True)\nestimator = LogisticRegression(max_iter=300)\ncv = 3",
        "%%mempamal -n 1 -w wd2\nestimator = None\ndel y",
        "%%mempamal -n 1 -w wd3\nestimator = None\n1 / 0",
        "print(list(res.test_scores['score']))",
    ]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    for cell in notebook.cells[1:3]:
        cell.metadata["tags"] = ["raises-exception"]  # nbclient goes on after this cell's error
    execute(notebook, tmp_path, timeout=120)
    run, error, body_error, check = (cell.outputs for cell in notebook.cells)
    kinds = [mime for out in run for mime in out.get("data", {}) if mime in ("text/html", "image/png")]
    assert kinds == ["text/html", "image/png"]  # the Results summary, then exactly one plot
    assert "mempamal Results" in next(out["data"]["text/html"] for out in run if "text/html" in out.get("data", {}))
    # IPython prints a UsageError as one line on stderr, without a traceback.
    assert [(out["output_type"], out.get("name")) for out in error] == [("stream", "stderr")]
    (line,) = error[0]["text"].strip().splitlines()
    assert line.startswith("UsageError: %%mempamal: the cell must define") and "missing ['y']" in line
    # An error of the cell's own code: the user's lines (numbered as in the cell), then one line.
    traceback, usage = body_error
    assert traceback["ename"] == "ZeroDivisionError" and "magics.py" not in "".join(traceback["traceback"])
    assert "----> 3 1 / 0" in re.sub(r"\x1b\[[0-9;]*m", "", "".join(traceback["traceback"]))
    assert usage["text"] == "UsageError: %%mempamal: the cell raised ZeroDivisionError; nothing was built.\n"
    import mempamal as mp

    scores = mp.Results.load(tmp_path / "wd").test_scores["score"]
    assert check[0]["text"].strip() == str(list(scores))
