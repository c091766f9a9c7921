"""Every code block of README.md runs, in order, in a fresh folder and a fresh HOME.

The Python blocks share one namespace (one IPython shell, so the
``%%mempamal`` cell goes through the real magic), the bash blocks run in the
same folder: the examples must compose, as for a newcomer pasting them one
after the other.  A block that cannot run here carries a visible
``<!-- skip-test: REASON -->`` line in the README source and is reported as
skipped with that reason.  New blocks are picked up without touching this file.
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
BLOCKS = find_blocks(README.read_text())
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
    results = {r["line"]: r for r in json.loads((folder / "results.json").read_text())}
    return results, work, home


@pytest.mark.parametrize("block", CODE, ids=[f"line{b.line}-{b.runner}" for b in CODE])
def test_readme_block_runs(block, executed):
    if block.skip is not None:
        pytest.skip(f"README line {block.line}: {block.skip}")
    results, _, _ = executed
    result = results[block.line]
    assert result["ok"], f"README block at line {block.line} failed:\n{block.code}\n{result['error']}"


def test_the_readme_has_runnable_blocks_and_every_skip_says_why():
    assert len([b for b in CODE if b.skip is None]) >= 6, [b.line for b in CODE]
    assert all(b.skip.strip() for b in CODE if b.skip is not None)
    languages = {b.language for b in BLOCKS if not b.runner}
    assert languages <= {"", "ini", "text", "console"}, languages  # a typo'd language would hide a block


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
    assert np.array_equal([b.line for b in find_blocks(README.read_text())], [b.line for b in BLOCKS])
