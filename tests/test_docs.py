"""The documentation builds with warnings as errors: a broken reference, a missing docstring,
a README section a page includes that was renamed, or a notebook that does not parse fails here.

Skips, saying so, when Sphinx and its extensions are not installed (they are
in the ``dev`` extra, which ``make test`` installs).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _sphinx(source, out, *extra):
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q", *extra,
                           str(source), str(out)], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    for module in ("sphinx", "numpydoc", "myst_nb"):
        if os.environ.get("CI"):  # .ci/run installs the dev extra: there a missing one is a failure
            __import__(module)
        pytest.importorskip(module, reason=f"{module} is needed to build the docs (pip install '.[dev]')")
    out = tmp_path_factory.mktemp("docs") / "html"
    start = time.monotonic()
    done = _sphinx(DOCS, out, "-E", "-d", str(out.parent / "doctrees"))
    print(f"docs build: {time.monotonic() - start:.1f} s")
    assert done.returncode == 0, done.stderr[-6000:] or done.stdout[-6000:]
    return out


def test_docs_build_without_warnings(built):
    assert (built / "index.html").is_file()


def test_every_page_the_issue_asks_for_is_there(built):
    pages = ["getting-started", "workdir", "exactness", "scaling-out/index", "scaling-out/local",
             "scaling-out/slurm", "scaling-out/ipyparallel", "scaling-out/dask", "scaling-out/soma-workflow",
             "scaling-out/exports", "jupyter", "cli", "fault-tolerance", "performance", "architecture",
             "extending", "api", "gallery"]
    missing = [page for page in pages if not (built / f"{page}.html").is_file()]
    assert not missing, missing
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert sorted(p.stem for p in (built / "gallery").glob("*.html")) == notebooks
    # the included README sections really arrived (a page of headings only would also build)
    assert "dask-jobqueue" in (built / "getting-started.html").read_text()
    assert "threads_per_worker" in (built / "scaling-out" / "local.html").read_text()
    assert "usage: mempamal run" in (built / "cli.html").read_text()


def test_api_reference_is_generated_from_the_code(built):
    page = (built / "api" / "modules" / "mempamal.experiment.html").read_text()
    assert 'id="mempamal.experiment.Experiment.build"' in page  # autodoc of the method itself
    import mempamal

    for name in mempamal.__all__:  # every public name has a page entry
        module = mempamal._EXPORTS[name]
        text = (built / "api" / "modules" / f"{module}.html").read_text()
        assert f'id="{module}.{name}"' in text, (name, module)


def test_a_broken_reference_fails_the_build(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    source = tmp_path / "src"
    source.mkdir()
    (source / "conf.py").write_text(
        f"exec(compile(open({str(DOCS / 'conf.py')!r}).read(), 'conf.py', 'exec'))\n"
        "HERE = __import__('pathlib').Path(__file__).resolve().parent\n"
        "def setup(app):\n    app.connect('missing-reference', _resolve_python_names)\n")
    (source / "index.md").write_text("# t\n\nSee {class}`mempamal.NoSuchThing` and {doc}`nowhere`.\n")
    done = _sphinx(source, tmp_path / "out")
    assert done.returncode != 0
    assert "mempamal.NoSuchThing" in done.stderr and "nowhere" in done.stderr, done.stderr
