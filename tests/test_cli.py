"""The command line: task, run, status, results, export, demo — as a user types them."""

import json
import os
import subprocess
import sys

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp

from conftest import assert_matches_sklearn


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mempamal", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def _experiment(**kwargs):
    return mp.Experiment(LogisticRegression(max_iter=300), **{**dict(param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=3), **kwargs})


def test_task_lines_from_commands_export_run_the_whole_graph(tmp_path):
    X, y = load_iris(return_X_y=True)
    small = dict(inner_cv=2, final_fit=False)  # one process per task: no final search (test_final_model's)
    workflow = _experiment(**small).build(X, y, workdir=tmp_path / "wd", chunk_size=2)
    exported = cli("export", workflow.workdir, "--format", "commands", "-o", tmp_path / "cmds.json")
    assert exported.returncode == 0, exported.stderr
    entries = json.loads((tmp_path / "cmds.json").read_text())
    assert [e["id"] for e in entries] == [t.id for t in workflow.tasks]
    assert entries[-1]["deps"] == [t.id for t in workflow.tasks if t.kind in ("select", "select-all")]
    for entry in entries:  # in dependency order, exactly the exported command line
        done = subprocess.run(entry["cmd"], shell=True, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert_matches_sklearn(mp.Results.load(workflow.workdir), _experiment(**small), X, y)


def test_status_run_and_results_commands(tmp_path):
    X, y = load_iris(return_X_y=True)
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd")
    status = cli("status", workflow.workdir, "--json")
    assert json.loads(status.stdout)["pending"] == len(workflow.tasks)
    ran = cli("run", workflow.workdir, "-n", "2", "--no-progress")
    assert ran.returncode == 0, ran.stderr
    assert "mean" in ran.stdout
    results = cli("results", workflow.workdir, "--json")
    raw = json.loads(results.stdout)
    reference = mp.Results.load(workflow.workdir)
    np.testing.assert_array_equal(raw["test_scores"]["score"], reference.test_scores["score"])
    text = cli("results", workflow.workdir).stdout
    assert "best parameters per outer fold" in text
    assert f"{len(workflow.tasks)}/{len(workflow.tasks)} tasks done" in cli("status", workflow.workdir).stdout


def test_task_errors_exit_nonzero_with_a_message_naming_the_task(tmp_path):
    X, y = load_iris(return_X_y=True)
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd")
    failed = cli("task", workflow.workdir, "no-such-task")
    assert failed.returncode == 1
    assert "no-such-task" in failed.stderr and "Traceback" not in failed.stderr
    missing = cli("status", tmp_path / "nowhere")
    assert missing.returncode == 1 and "not a mempamal workdir" in missing.stderr


def test_demo_prints_summary_best_params_and_saves_plot(tmp_path):
    done = cli("demo", "-w", tmp_path / "demo", "-n", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "roc_auc" in done.stdout and "fold 4:" in done.stdout
    png = tmp_path / "demo" / "scores.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert png.stat().st_mode & 0o777 == 0o600  # user-only, like every workdir file


def test_output_into_a_closed_pipe_ends_quietly_without_traceback(tmp_path):
    X, y = load_iris(return_X_y=True)
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd")
    workflow.run(n_jobs=1, progress=False)
    for args in (["status", str(workflow.workdir)], ["results", str(workflow.workdir), "--json"]):
        reader, writer = os.pipe()
        os.close(reader)  # the reader (think `| head -1`) is already gone
        process = subprocess.run([sys.executable, "-m", "mempamal", *args], stdout=writer,
                                 stderr=subprocess.PIPE, text=True, timeout=120)
        os.close(writer)
        assert "Traceback" not in process.stderr and "BrokenPipe" not in process.stderr, process.stderr
        assert process.returncode == 141


def test_results_json_has_best_params_per_fold_final_params_and_summary_as_plain_numbers(tmp_path):
    X, y = load_iris(return_X_y=True)
    workflow = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": np.logspace(-2, 0, 3)},
                             cv=3, inner_cv=2, scoring=["accuracy", "f1_macro"], refit="accuracy",
                             ).build(X, y, workdir=tmp_path / "wd")
    workflow.run(n_jobs=1, progress=False)
    reference = mp.Results.load(workflow.workdir)
    printed = cli("results", workflow.workdir, "--json")
    assert printed.returncode == 0, printed.stderr
    document = json.loads(printed.stdout)
    assert document["best_params"] == [{"C": float(p["C"])} for p in reference.best_params]
    final = getattr(reference, "best_params_", None)  # the final model's search, where it exists
    assert document["best_params_"] == (None if final is None else {k: float(v) for k, v in final.items()})
    summary = reference.summary()
    for metric in ("accuracy", "f1_macro"):
        for column in ("mean", "std", "median"):
            assert document["summary"][metric][column] == summary.loc[metric, column]
    np.testing.assert_array_equal(document["test_scores"]["accuracy"], reference.test_scores["accuracy"])
    text = cli("results", workflow.workdir).stdout
    assert "np.float64" not in text
    assert f"0: {{'C': {float(reference.best_params[0]['C'])!r}}}" in text
