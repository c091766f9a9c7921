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


def _arrays(text):
    """``[(level, size, the JOB variables it waits for)]`` of a ``slurm`` export, in submission order."""
    import re

    arrays = []
    for line in text.splitlines():
        match = re.match(r"JOB\d+=\$\(sbatch .*--job-name=mempamal-level(\d+)-a\d+ --array=0-(\d+)", line)
        if match:
            waits = re.search(r'--dependency=afterok:([^"]*)"', line)
            arrays.append((int(match.group(1)), int(match.group(2)) + 1,
                           set(re.findall(r"JOB\d+", waits.group(1))) if waits else set()))
    return arrays


def test_the_batch_script_keeps_every_array_within_max_array_size(tmp_path):
    X, y = load_iris(return_X_y=True)
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)  # 12 fits, 3 selects, final
    script = workflow.export(tmp_path / "submit.sh", format="slurm", tasks_per_job=1, max_array_size=4)
    arrays = _arrays(script.read_text())
    assert all(size <= 4 for _, size, _ in arrays), arrays
    level0 = [index for index, (level, _, _) in enumerate(arrays) if level == 0]
    assert sum(arrays[index][1] for index in level0) == 12 and len(level0) == 3
    for level, _, waits in arrays:  # the selects wait for every piece of the fits' level
        if level == 1:
            assert waits == {f"JOB{index}" for index in level0}, arrays
    assert "Arrays of at most 4 jobs" in script.read_text()


def test_without_a_slurm_here_the_batch_script_keeps_slurms_default_max_array_size(tmp_path, monkeypatch):
    from mempamal.backends.export import SLURM_DEFAULT_MAX_ARRAY_SIZE

    X, y = load_iris(return_X_y=True)
    grid = {"C": [float(c) for c in range(1, 168)]}  # 167 points x 3 x 2 = 1,002 fits: one more than 1,001
    workflow = mp.Experiment(LogisticRegression(), grid, cv=3, inner_cv=2, final_fit=False).build(
        X, y, workdir=tmp_path / "wd", chunk_size=1)
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol, no sacctmgr
    arrays = _arrays(workflow.export(tmp_path / "submit.sh", format="slurm", tasks_per_job=1).read_text())
    assert [size for level, size, _ in arrays if level == 0] == [SLURM_DEFAULT_MAX_ARRAY_SIZE, 1] == [1001, 1]


def test_a_bad_max_array_size_is_refused_before_the_script_is_written(tmp_path):
    workflow, _, _ = _build(tmp_path)
    with pytest.raises(ValueError, match="The 'max_array_size' parameter of the 'slurm' export must be an int in "
                                         r"the range \[1, inf\) or None; got 0"):
        workflow.export(tmp_path / "submit.sh", format="slurm", max_array_size=0)
    assert not (tmp_path / "submit.sh").exists()
