"""Every export gets its documented mode, whatever the umask: scripts 0700, other files 0600."""

import os
import stat
import subprocess

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp

X, y = load_iris(return_X_y=True)
EXPECTED = {"commands": 0o600, "shell": 0o700, "makefile": 0o600, "soma-workflow": 0o600, "slurm": 0o700}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    return mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(
        X, y, workdir=tmp_path_factory.mktemp("modes") / "wd")


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_export_mode_does_not_depend_on_the_umask(workflow, tmp_path, fmt, umask):
    if fmt == "soma-workflow":
        pytest.importorskip("soma_workflow.client")
    old = os.umask(umask)
    try:
        path = workflow.export(tmp_path / f"export-{fmt}", format=fmt)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == EXPECTED[fmt], oct(path.stat().st_mode)


def test_documented_modes_are_the_ones_written():
    from mempamal.backends.export import EXPORT_MODES

    assert EXPORT_MODES == EXPECTED


def test_an_existing_world_readable_file_is_replaced_user_only(workflow, tmp_path):
    target = tmp_path / "run.sh"
    target.write_text("old")
    target.chmod(0o755)
    workflow.export(target, format="shell")
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    # and the 0700 script really runs the graph (the owner can execute it)
    done = subprocess.run([str(target)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert workflow.status()["done"] == len(workflow.tasks)
