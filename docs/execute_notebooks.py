"""Execute the notebooks of ``notebooks/`` into ``docs/gallery/`` (``make gallery``).

The notebooks themselves are stored without outputs; the documentation
shows these executed copies, so every example shows its tables and plots
without the docs build running anything.  Each notebook runs in a fresh
kernel, in a temporary folder (its ``runs/`` do not land in the clone), with
private HOME, Jupyter and IPython folders.  ``tests/test_gallery.py`` fails
when a notebook's code differs from its executed copy: run ``make gallery``
again after editing a notebook.

Usage: ``python docs/execute_notebooks.py [NOTEBOOK ...]`` (default: all).
"""

import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE.parent / "notebooks"
GALLERY = HERE / "gallery"


def _environment(folder):
    """This environment minus the user's Jupyter/IPython settings, with private folders under ``folder``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTER", "IPYTHON")) and k not in ("MPLBACKEND", "PYTHONSTARTUP")}
    for name in ("HOME", "IPYTHONDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
                 "MPLCONFIGDIR"):
        env[name] = os.path.join(folder, name.lower())
        os.makedirs(env[name], exist_ok=True)
    return env


def _relative(value, folder):
    """``value`` (an output, nested) with the temporary folder's path removed: ``runs/02-bc``, as a reader's run shows."""
    if isinstance(value, str):
        return value.replace(folder.rstrip("/") + "/", "")
    if isinstance(value, list):
        return [_relative(item, folder) for item in value]
    if isinstance(value, dict):
        return type(value)((key, _relative(item, folder)) for key, item in value.items())
    return value


def execute(path, target):
    """Run the notebook at ``path`` top to bottom and write it, with its outputs, to ``target``."""
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="mempamal-gallery-") as folder:
        client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": folder}}, shutdown_kernel="immediate")
        client.execute(env=_environment(folder))
        for spelling in {os.path.realpath(folder), folder}:
            notebook.metadata = _relative(notebook.metadata, spelling)  # saved widget state too
            for cell in notebook.cells:
                if cell.cell_type == "code":
                    cell.outputs = _relative(cell.outputs, spelling)
    target.parent.mkdir(exist_ok=True)
    nbformat.write(notebook, target)


def main(names):
    paths = [Path(name) for name in names] or sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in paths:
        print(f"executing {path.name}", flush=True)
        execute(path, GALLERY / path.name)


if __name__ == "__main__":
    main(sys.argv[1:])
