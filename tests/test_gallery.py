"""The documentation's gallery (docs/gallery/, executed copies of notebooks/) cannot drift from the notebooks.

``make gallery`` executes each notebook of ``notebooks/`` into
``docs/gallery/``; the docs show those copies with their outputs.  Editing a
notebook without running ``make gallery`` again fails here, naming it.
"""

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
GALLERY = ROOT / "docs" / "gallery"


def _cells(path):
    return [(cell.cell_type, cell.source) for cell in nbformat.read(path, as_version=4).cells]


def test_the_gallery_holds_one_copy_per_notebook():
    assert [p.name for p in NOTEBOOKS], "no notebooks found"
    assert sorted(p.name for p in GALLERY.glob("*.ipynb")) == [p.name for p in NOTEBOOKS], \
        "docs/gallery/ differs from notebooks/: run `make gallery`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_copy_has_the_notebooks_cells_and_their_outputs(path):
    copy = GALLERY / path.name
    assert copy.exists(), f"{copy} is missing: run `make gallery`"
    assert _cells(copy) == _cells(path), f"{path.name} changed since docs/gallery/ was executed: run `make gallery`"
    notebook = nbformat.read(copy, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), f"{copy.name}: a code cell was not executed"
    outputs = [out for cell in code for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"], f"{copy.name} holds an error"
    assert any("image/png" in out.get("data", {}) for out in outputs), f"{copy.name} shows no plot"
    assert "mempamal-gallery-" not in copy.read_text(), f"{copy.name} shows the temporary folder it ran in"


def test_a_changed_cell_is_caught(tmp_path):
    """The comparison reads the sources: one edited line in a notebook is a difference."""
    original = nbformat.read(NOTEBOOKS[0], as_version=4)
    first = next(cell for cell in original.cells if cell.cell_type == "code")
    first.source += "\nprint('edited')"
    edited = tmp_path / NOTEBOOKS[0].name
    nbformat.write(original, edited)
    assert _cells(edited) != _cells(GALLERY / NOTEBOOKS[0].name)

