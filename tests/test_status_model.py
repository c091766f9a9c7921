"""One status model: ``Workflow.status()``, ``Run.status()``, the CLI and the HTML say the same thing.

``running`` is a count everywhere (the lock holder is ``runner``), the five
states add up to the total, and reprs never ask a scheduler.
"""

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import mempamal as mp
from mempamal.graph.status import STATES, KindCounts, StatusCounts, TaskState


@pytest.fixture(scope="module")
def data():
    return make_classification(n_samples=60, n_features=5, random_state=0)


def build(tmp_path, data, name="wd"):
    X, y = data
    experiment = mp.Experiment(LogisticRegression(), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    return experiment.build(X, y, workdir=tmp_path / name)


def test_states_are_the_words_every_view_uses():
    assert STATES == ("done", "running", "pending", "failed", "blocked")
    assert all(isinstance(state, str) for state in TaskState) and TaskState.PENDING == "pending"


def test_workflow_and_run_status_are_one_record(tmp_path, data):
    workflow = build(tmp_path, data)
    before = workflow.status()
    assert isinstance(before, StatusCounts)
    assert before.running == 0 and before.runner is None and before.pending == before.total
    assert all(isinstance(counts, KindCounts) for counts in before.by_kind.values())
    run = workflow.submit(n_jobs=1, progress=False)
    run.wait()
    after_run, after_workflow = run.status(), workflow.status()
    assert isinstance(after_run, StatusCounts)
    for state in STATES + ("total",):
        assert after_run[state] == after_workflow[state]
    assert after_workflow.done == after_workflow.total and after_workflow.finished
    assert dict(after_run.by_kind) == dict(after_workflow.by_kind)


def test_running_is_a_count_and_the_lock_holder_is_the_runner(tmp_path, data):
    workflow = build(tmp_path, data)
    release, held = threading.Event(), threading.Event()

    from mempamal.store.lock import WorkdirLock

    def hold():
        with WorkdirLock(workflow.workdir):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(30)
        status = workflow.status()
        assert isinstance(status.running, int) and status.running == 0
        assert f"pid {os.getpid()}" in status.runner
    finally:
        release.set()
        thread.join()


def test_the_cli_prints_the_same_counts(tmp_path, data):
    workflow = build(tmp_path, data)
    workflow.run(n_jobs=1, progress=False)
    printed = subprocess.run([sys.executable, "-m", "mempamal", "status", str(workflow.workdir), "--json"],
                             capture_output=True, text=True, check=True).stdout
    document = json.loads(printed)
    status = workflow.status()
    assert {state: document[state] for state in STATES} == {state: status[state] for state in STATES}
    assert document["by_kind"] == {kind: dict(counts) for kind, counts in status.by_kind.items()}
    table = subprocess.run([sys.executable, "-m", "mempamal", "status", str(workflow.workdir)],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    rows = [line for line in table if line.startswith("  ") and "/" in line]
    # The counts column lines up whatever the kind's name (select-all is the longest).
    assert len({line.index("/") for line in rows}) == 1, rows


@pytest.fixture
def counting_squeue(tmp_path, monkeypatch):
    """A ``squeue`` first on PATH that records each call (and answers nothing)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    calls = tmp_path / "squeue-calls"
    script = folder / "squeue"
    script.write_text(f"#!/bin/sh\necho called >> {calls}\nexit 0\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return lambda: len(calls.read_text().splitlines()) if calls.exists() else 0


def test_reprs_never_ask_the_scheduler(tmp_path, data, counting_squeue):
    workflow = build(tmp_path, data)
    submissions = workflow.workdir / "submissions"
    submissions.mkdir(mode=0o700)
    (submissions / "slurm.json").write_text(json.dumps({"arrays": [{"job_id": "12", "size": 3, "bundles": []}]}))
    repr(workflow)
    workflow._repr_html_()
    assert counting_squeue() == 0
    status = workflow.status()  # asked explicitly: the scheduler's view is part of the answer
    assert counting_squeue() == 1 and status.jobs["backend"] == "slurm"
    assert workflow.status(scheduler=False).jobs is None and counting_squeue() == 1


def test_status_counts_add_up_after_a_failure(tmp_path, data):
    X, y = data
    y_bad = np.where(np.arange(len(y)) < 40, y, 7)  # a class the first folds never see: some fits fail
    experiment = mp.Experiment(LogisticRegression(), param_grid={"C": [1.0]}, cv=3, inner_cv=2, error_score="raise")
    workflow = experiment.build(X, y_bad.astype(float) * 0.5, workdir=tmp_path / "bad")
    with pytest.raises(Exception):
        workflow.run(n_jobs=1, progress=False)
    status = workflow.status()
    assert status.failed > 0
    assert sum(status[state] for state in STATES) == status.total
    for counts in status.by_kind.values():
        assert sum(counts[state] for state in STATES) == counts.total
    assert status.line().startswith(f"{status.done}/{status.total} tasks done")
