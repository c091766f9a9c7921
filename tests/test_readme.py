"""Every code block of README.md, then of the documentation pages, runs, in order, in a fresh folder and HOME.

The Python blocks share one namespace (one IPython shell, so the
``%%mempamal`` cell goes through the real magic), the bash blocks run in the
same folder: the examples must compose, as for a newcomer pasting them one
after the other (the README first, then the pages in the order of
``PAGES``).  Console blocks are sample sessions: what they show must be what
the commands print.  A block that cannot run here carries a visible
``<!-- skip-test: REASON -->`` line in its source and is reported as skipped
with that reason.  New blocks are picked up without touching this file.
"""

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

import mempamal as mp

from conftest import assert_matches_sklearn
from readme_snippets import find_blocks

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The manual's pages, in reading order (a page may use what an earlier one defined: `wf`, `res`).
PAGES = ["getting-started", "exactness", "workdir", "fault-tolerance", "research-loop", "jupyter", "cli", "scaling-out/index",
         "scaling-out/local", "scaling-out/slurm", "scaling-out/ipyparallel", "scaling-out/dask",
         "scaling-out/soma-workflow", "scaling-out/exports", "extending", "performance", "faq", "changelog",
         "development"]
SOURCES = [README] + [ROOT / "docs" / f"{page}.md" for page in PAGES]
BLOCKS = [block for path in SOURCES if path.exists()
          for block in find_blocks(path.read_text(), path.relative_to(ROOT).as_posix())]
CODE = [b for b in BLOCKS if b.runner]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run every runnable, unmarked block in one subprocess; ``{line: result}`` and the folder."""
    folder = tmp_path_factory.mktemp("readme")
    home = folder / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "IPYTHONDIR": str(home / ".ipython"), "MPLBACKEND": "Agg",
           "JUPYTER_CONFIG_DIR": str(home / ".jupyter"), "JUPYTER_DATA_DIR": str(home / ".local/share/jupyter"),
           # `mempamal` (the console script) of this environment comes first
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH")] if p)}
    todo = [{**asdict(b), "runner": b.runner} for b in CODE if b.skip is None]
    (folder / "blocks.json").write_text(json.dumps(todo))
    work = folder / "work"
    work.mkdir()
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("readme_snippets.py")),
                           str(folder / "blocks.json"), str(folder / "results.json")],
                          cwd=work, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = {r["key"]: r for r in json.loads((folder / "results.json").read_text())}
    return results, work, home


@pytest.mark.parametrize("block", CODE, ids=[f"{b.source}:{b.line}-{b.runner}" for b in CODE])
def test_readme_block_runs(block, executed):
    if block.skip is not None:
        pytest.skip(f"{block.key}: {block.skip}")
    results, _, _ = executed
    result = results[block.key]
    assert result["ok"], f"block at {block.key} failed:\n{block.code}\n{result['error']}"


def test_the_readme_has_runnable_blocks_and_every_skip_says_why():
    assert len([b for b in CODE if b.skip is None and b.source == "README.md"]) >= 3, [b.key for b in CODE]
    assert len([b for b in CODE if b.skip is None]) >= 10, [b.key for b in CODE]
    assert {"python", "bash", "console"} <= {b.runner for b in CODE if b.skip is None}
    assert all(b.skip.strip() for b in CODE if b.skip is not None)
    # a typo'd language would hide a block; {...} are MyST directives, ipython3 a cell shown, not run
    languages = {b.language for b in BLOCKS if not b.runner and not b.language.startswith("{")}
    assert languages <= {"", "ini", "text", "ipython3"}, languages


def test_readme_results_are_scikit_learns_and_the_examples_did_not_collide(executed):
    """The claims next to the code: "== cross_validate(GridSearchCV(...)) to 1e-12", one workdir each."""
    _, work, home = executed
    X, y = load_breast_cancer(return_X_y=True)
    workdirs = sorted(p.parent.relative_to(work).as_posix() for p in work.rglob("manifest.json"))
    assert len(workdirs) >= 2 and len(set(workdirs)) == len(workdirs), workdirs
    for workdir in workdirs:
        results = mp.Results.load(work / workdir)
        assert_matches_sklearn(results, results.experiment, X, y)
    assert not any(p.name.startswith(".soma-workflow") for p in home.iterdir())


def test_skip_markers_are_read_from_the_source():
    text = "intro\n\n<!-- skip-test: needs a cluster -->\n\n```python\nprint(1)\n```\n```bash\necho 2\n```\n"
    first, second = find_blocks(text)
    assert (first.line, first.runner, first.skip, first.code) == (5, "python", "needs a cluster", "print(1)\n")
    assert (second.runner, second.skip) == ("bash", None)
    with pytest.raises(ValueError, match="unclosed code block at line 1"):
        find_blocks("```python\nprint(1)\n")
    readme = [b for b in BLOCKS if b.source == "README.md"]
    assert np.array_equal([b.line for b in find_blocks(README.read_text())], [b.line for b in readme])
    # a MyST directive with an argument is one block, not a fence that swallows the next one
    directive, code = find_blocks("```{include} ../x.md\n:start-after: a\n```\n\n```python\nprint(3)\n```\n")
    assert (directive.language, directive.runner, code.runner, code.code) == ("{include}", None, "python", "print(3)\n")


def test_console_samples_must_be_what_the_commands_print(tmp_path):
    """The sample output of a console block is checked, not just shown ("..." stands for what varies)."""
    from readme_snippets import _run_console, console_sessions, sample_matches

    assert console_sessions("$ echo a\na\n$ true\n") == [("echo a", "a"), ("true", "")]
    assert sample_matches("3/3 tasks ...", "3/3 tasks done, 0 failed\n")
    assert not sample_matches("36/36 tasks done", "43/43 tasks done\n")
    assert _run_console("$ printf 'x\\ny\\n'\nx\ny\n")[0] is None
    error, _ = _run_console("$ echo 43/43\n36/36\n")
    assert "43/43" in error and "36/36" in error
    assert "exit 3" in _run_console("$ exit 3\n")[0]
