"""Portable exports run the graph with real bash and real make, and agree with sklearn."""

import json
import shutil
import subprocess

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp
from mempamal import store

from conftest import assert_matches_sklearn, comparable


def _experiment():
    # no final search: every task is a process here, and test_final_model covers the final search
    return mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2,
                         final_fit=False)


def _build(tmp_path, name="wd"):
    X, y = load_iris(return_X_y=True)
    return _experiment().build(X, y, workdir=tmp_path / name, chunk_size=2), X, y


def test_shell_export_runs_in_order_skips_finished_and_matches_sklearn(tmp_path):
    workflow, X, y = _build(tmp_path)
    first = workflow.tasks[0].id
    mp.run_task(workflow.workdir, first)
    stamp = store.output_path(workflow.workdir, first).stat().st_mtime_ns
    script = workflow.export(tmp_path / "run.sh", format="shell")
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"running {first}" not in done.stderr
    assert store.output_path(workflow.workdir, first).stat().st_mtime_ns == stamp
    assert_matches_sklearn(mp.Results.load(workflow.workdir), _experiment(), X, y)


def test_shell_export_stops_on_first_failure(tmp_path):
    workflow, _, _ = _build(tmp_path)
    script = workflow.export(tmp_path / "run.sh", format="shell")
    (workflow.workdir / "splits" / "main.npz").unlink()  # every task now fails
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert done.returncode != 0
    assert done.stderr.count("running ") == 1


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_makefile_export_runs_graph_with_make_j2_and_matches_local_run(tmp_path):
    workflow, X, y = _build(tmp_path)
    makefile = workflow.export(tmp_path / "Makefile", format="makefile")
    done = subprocess.run(["make", "-j", "2", "-f", str(makefile)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = mp.Results.load(workflow.workdir)
    assert_matches_sklearn(results, _experiment(), X, y)
    local, _, _ = _build(tmp_path, "local")
    local.run(n_jobs=1, progress=False)
    assert comparable(json.loads((local.workdir / "results.json").read_text())) == comparable(results.raw)
    again = subprocess.run(["make", "-q", "-f", str(makefile)], cwd=tmp_path)
    assert again.returncode == 0, "make should consider everything up to date"


def test_export_rewrites_python_and_workdir_for_cluster_paths(tmp_path):
    workflow, _, _ = _build(tmp_path)
    path = workflow.export(tmp_path / "cmds.json", python="/opt/py/bin/python", workdir="/shared/wd")
    entries = json.loads(path.read_text())
    assert entries[0]["cmd"].startswith("/opt/py/bin/python -m mempamal task /shared/wd ")


def test_unknown_export_format_names_the_valid_ones(tmp_path):
    workflow, _, _ = _build(tmp_path)
    with pytest.raises(ValueError, match=r"'format'.*'commands', 'shell', 'makefile', 'soma-workflow'"):
        workflow.export(tmp_path / "x", format="yaml")
