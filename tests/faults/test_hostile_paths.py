"""Every export format survives a workdir path full of characters make and the shell
read specially, run for real (bash, make -j 2, each command, soma-workflow's reader),
and gives scikit-learn's scores."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_validate

import mempamal as mp

from trust_helpers import tree_snapshot

X, Y = load_iris(return_X_y=True)
# $, #, %, ;, :, blanks, both quotes, and would-be command substitutions that
# must stay inert: if make or the shell ever evaluated them, PWNED files appear.
HOSTILE = "we ird $HOME #x %y ;z 'q\" :c $(touch PWNED1) `touch PWNED2` $$ &|<>*?[ab]=1 {}"


def _build(tmp_path):
    folder = tmp_path / HOSTILE
    folder.mkdir()
    workflow = mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(X, Y, workdir=folder / "wd")
    assert str(workflow.workdir).count(HOSTILE) == 1
    return workflow


def _assert_ran_everything_right(workflow, tmp_path):
    assert workflow.status()["pending"] == 0
    expected = cross_validate(LogisticRegression(max_iter=300), X, Y, cv=3)["test_score"]
    np.testing.assert_allclose(mp.Results.load(workflow.workdir).test_scores["score"], expected, rtol=0, atol=1e-12)
    planted = [p for p in tmp_path.rglob("PWNED*")]
    assert not planted, f"a path was evaluated by a shell or make: {planted}"


def test_commands_export_each_command_runs_in_bash_with_a_hostile_workdir(tmp_path):
    workflow = _build(tmp_path)
    path = workflow.export(tmp_path / "commands.json", format="commands")
    entries = json.loads(path.read_text())
    seen = set()
    for entry in entries:
        assert set(entry["deps"]) <= seen, "commands are not in dependency order"
        done = subprocess.run(["bash", "-c", entry["cmd"]], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        seen.add(entry["id"])
    _assert_ran_everything_right(workflow, tmp_path)


def test_shell_export_runs_in_bash_with_a_hostile_workdir(tmp_path):
    workflow = _build(tmp_path)
    script = workflow.export(tmp_path / "run.sh", format="shell")
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _assert_ran_everything_right(workflow, tmp_path)
    again = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 0 and "running" not in again.stderr, "finished tasks must be skipped"


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
@pytest.mark.parametrize("bundling", [{}, {"tasks_per_job": 2}], ids=["one-rule-per-task", "bundles"])
def test_makefile_export_runs_with_make_j2_with_a_hostile_workdir(tmp_path, bundling):
    workflow = _build(tmp_path)
    makefile = workflow.export(tmp_path / "Makefile", format="makefile", **bundling)
    done = subprocess.run(["make", "-j", "2", "-f", str(makefile)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    _assert_ran_everything_right(workflow, tmp_path)
    # make sees the outputs it made under the escaped names: nothing left to do.
    again = subprocess.run(["make", "-q", "-f", str(makefile)], cwd=tmp_path)
    assert again.returncode == 0, "make should consider everything up to date"


def test_soma_workflow_export_reads_back_the_exact_commands_and_runs_with_a_hostile_workdir(tmp_path):
    pytest.importorskip("soma_workflow", reason="soma-workflow is not installed")
    from soma_workflow.client import Helper

    workflow = _build(tmp_path)
    path = workflow.export(tmp_path / "wf.json", format="soma-workflow")
    swf = Helper.unserialize(str(path))
    # Each job runs `python -m mempamal task WORKDIR ID`: key jobs by that id.
    by_name = {job.command[-1]: job for job in swf.jobs}
    expected = {task.id: list(task.command) for task in workflow.tasks}
    assert {name: list(job.command) for name, job in by_name.items()} == expected
    deps = {name: set() for name in by_name}
    for before, after in swf.dependencies:
        deps[after.command[-1]].add(before.command[-1])
    assert deps == {task.id: set(task.deps) for task in workflow.tasks}
    done_ids = set()
    while len(done_ids) < len(by_name):  # run in dependency order, as soma-workflow would
        ready = sorted(name for name in by_name if name not in done_ids and deps[name] <= done_ids)
        assert ready, "the dependency graph read back has a cycle"
        for name in ready:
            done = subprocess.run(list(by_name[name].command), capture_output=True, text=True, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            done_ids.add(name)
    _assert_ran_everything_right(workflow, tmp_path)


@pytest.mark.parametrize("where", ["workdir", "python"])
def test_makefile_export_refuses_a_path_make_cannot_express_and_writes_nothing(tmp_path, where):
    workflow = mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(X, Y, workdir=tmp_path / "wd")
    before = tree_snapshot(tmp_path)
    options = {"workdir": "/shared/new\nline"} if where == "workdir" else {"python": "/opt/py\tthon"}
    with pytest.raises(ValueError, match=rf"makefile export cannot express the '{where}' path"):
        workflow.export(tmp_path / "Makefile", format="makefile", **options)
    assert tree_snapshot(tmp_path) == before


def test_cli_run_status_and_results_work_in_a_hostile_workdir(tmp_path):
    import sys

    workflow = _build(tmp_path)
    for command in (["run", "-n", "2", "--no-progress"], ["status"], ["results", "--json"]):
        argv = [sys.executable, "-m", "mempamal", command[0], str(workflow.workdir), *command[1:]]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr
    _assert_ran_everything_right(workflow, tmp_path)
