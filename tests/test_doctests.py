"""The docstring examples run, and skip only what needs a cluster or an IPython shell.

pytest runs them itself (``--doctest-modules`` and ``mempamal`` in
pyproject's ``testpaths``; their namespace is ``mempamal/conftest.py``).
This file checks that this stays so, and that every example still skipped
says why on its line.  ``python tests/test_doctests.py`` prints the counts.
"""

import doctest
import importlib
import pkgutil
import re
import sys
import tomllib
from pathlib import Path

import mempamal

ROOT = Path(__file__).resolve().parent.parent

#: What a doctest may skip for: what a test machine does not have.
SKIP_REASONS = ("needs a Slurm cluster", "needs a soma-workflow resource", "needs an ipyparallel cluster",
                "needs a Dask cluster", "needs an IPython shell")

_REASON = re.compile(r"#\s*(needs [^#]*?)\s*#\s*doctest:[^\n]*\+SKIP")


def examples():
    """``(module, doctest name, Example)`` of every docstring example of the package."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    for info in pkgutil.walk_packages(mempamal.__path__, "mempamal."):
        module = importlib.import_module(info.name)
        for test in finder.find(module, info.name):
            for example in test.examples:
                yield info.name, test.name, example


def counts():
    """Examples, their source lines, and how many of each are skipped."""
    found = {"examples": 0, "lines": 0, "skipped examples": 0, "skipped lines": 0}
    for _, _, example in examples():
        lines = example.source.count("\n")
        found["examples"] += 1
        found["lines"] += lines
        if example.options.get(doctest.SKIP):
            found["skipped examples"] += 1
            found["skipped lines"] += lines
    return found


def test_pytest_runs_the_docstring_examples():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "mempamal" in options["testpaths"]
    assert "--doctest-modules" in options["addopts"].split()
    assert (ROOT / "mempamal" / "conftest.py").exists()  # the examples' namespace


def test_every_skipped_example_says_why():
    unexplained = []
    for module, name, example in examples():
        if not example.options.get(doctest.SKIP):
            continue
        first_line = example.source.splitlines()[0]
        reason = _REASON.search(first_line)
        if reason is None or reason.group(1) not in SKIP_REASONS:
            unexplained.append(f"{name} (line {example.lineno + 1}): {first_line.strip()}")
    assert not unexplained, "skipped without one of SKIP_REASONS:\n" + "\n".join(unexplained)


def test_most_examples_run():
    found = counts()
    # What needs a cluster or a shell is a small part; a larger one means
    # examples were skipped instead of made to run.
    assert found["skipped examples"] <= 0.15 * found["examples"], found


if __name__ == "__main__":
    sys.exit(print(counts()))
