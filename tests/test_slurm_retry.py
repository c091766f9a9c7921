"""Walltime, preemption, dead nodes on a real Slurm: a lost job is not a failed task (issue 25, part 3).

Each test makes one task slow *the first time only* (its first run leaves a
marker file: what a real job killed at its walltime, requeued or killed on
its node looks like), lets Slurm kill or requeue its job, and checks that
the run still ends with scikit-learn's answer, the resubmission logged.  A
task that raises stays a failure (test_slurm.py).  Skipped, with the
reason, without Slurm.
"""

import os
import subprocess
import time

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp

from mempamal.backends.slurm.backend import read_submission

from conftest import assert_matches_sklearn
from slurm_cluster import require_slurm

X, y = load_iris(return_X_y=True)


# Every run below passes check_first=False: the driver's fail-fast fit
# (engine/first_fit.py) would be the first fit, sleeping in the driver and
# taking the marker meant for a job.
def _slow_once(markers, seconds):
    """An experiment whose first fits (one per marker path) sleep ``seconds``; every later fit is quick.

    Defined in a function so that cloudpickle ships ``first_runs_sleep`` by
    value to the jobs; the markers are created *before* the sleep, so a
    killed job's rerun does not sleep again, and hold the array element
    (``41_3``) that sleeps.
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    def first_runs_sleep(data):
        for marker in markers:
            try:
                descriptor = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            element = f"{os.environ.get('SLURM_ARRAY_JOB_ID')}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
            os.write(descriptor, element.encode())
            os.close(descriptor)
            time.sleep(seconds)
            break
        return data

    return mp.Experiment(make_pipeline(FunctionTransformer(first_runs_sleep), LogisticRegression(max_iter=300)),
                         param_grid={"logisticregression__C": [0.1, 1.0]}, cv=3, inner_cv=2)


def _log(workflow):
    path = workflow.workdir / "submissions" / "slurm.log"
    return path.read_text() if path.exists() else ""


def _sleeping_element(marker, timeout=300):
    """The array element (``41_3``) sleeping in its first run: written in ``marker`` before it sleeps."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        element = open(marker).read() if os.path.exists(marker) else ""
        if element:  # created, then written: wait for both
            answer = subprocess.run(["squeue", "-h", "-r", "-o", "%T", "-j", element], capture_output=True, text=True)
            assert answer.stdout.strip() == "RUNNING", (element, answer.stdout, answer.stderr)
            return element
        time.sleep(0.5)
    raise AssertionError(f"no job started the slow fit within {timeout} s")


@pytest.fixture
def slurm():
    require_slurm()


def test_a_job_killed_at_its_walltime_is_resubmitted_and_the_answer_is_sklearns(slurm, tmp_path):
    marker = str(tmp_path / "slept")
    experiment = _slow_once([marker], seconds=300)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    with pytest.warns(RuntimeWarning, match="ended TIMEOUT"):
        results = workflow.run(backend="slurm", n_jobs=2, tasks_per_job=4, progress=False, poll_seconds=0.5,
                               sbatch_options=["--time=00:01:00"], check_first=False)
    assert_matches_sklearn(results, experiment, X, y)
    log = _log(workflow)
    print(log)  # the closing note of issue 25 quotes it
    assert "TIMEOUT (time limit 00:01:00)" in log and "retry 1 of 2" in log, log
    assert "bundles halved after a timeout" in log, log
    record = read_submission(workflow.workdir)
    assert record["attempt"] == 1 and any(why.startswith("TIMEOUT") for why in record["lost"].values())
    # smaller bundles after the timeout: at most 2 tasks per job in the retry round (4 before)
    assert max(len(bundle) for array in record["arrays"] for bundle in array["bundles"]) <= 2


def test_jobs_killed_on_their_node_are_resubmitted(slurm, tmp_path):
    """``scancel --signal=KILL`` (Slurm: CANCELLED) and ``--signal=KILL --batch`` (FAILED, signal 9)."""
    markers = [str(tmp_path / "first"), str(tmp_path / "second")]
    experiment = _slow_once(markers, seconds=120)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    run = workflow.submit(backend="slurm", n_jobs=2, tasks_per_job=2, poll_seconds=0.5, check_first=False)
    try:
        first = _sleeping_element(markers[0])
        subprocess.run(["scancel", "--signal=KILL", first], check=True)
        second = _sleeping_element(markers[1])  # its rerun, or another element of the first round
        subprocess.run(["scancel", "--signal=KILL", "--batch", second], check=True)
        with pytest.warns(RuntimeWarning, match="resubmitting"):
            results = run.wait(timeout=600)
    finally:
        run.cancel()
    assert_matches_sklearn(results, experiment, X, y)
    log = _log(workflow)
    assert f"Slurm job {first} ended CANCELLED" in log, log
    assert f"Slurm job {second} ended FAILED (killed by signal 9)" in log, log


def test_a_requeued_job_runs_again_without_failing_the_run(slurm, tmp_path):
    marker = str(tmp_path / "slept")
    experiment = _slow_once([marker], seconds=120)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    run = workflow.submit(backend="slurm", n_jobs=2, tasks_per_job=4, poll_seconds=0.5, check_first=False)
    try:
        element = _sleeping_element(marker)
        subprocess.run(["scontrol", "requeue", element], check=True)  # Slurm runs it again itself
        results = run.wait(timeout=600)
    finally:
        run.cancel()
    assert_matches_sklearn(results, experiment, X, y)
    assert "resubmitting" not in _log(workflow)  # Slurm reran it: nothing for the driver to resubmit


def test_a_task_that_raises_is_not_retried(slurm, tmp_path):
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [1.0, -1.0]}, cv=3, inner_cv=2,
                               error_score="raise")
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    with pytest.raises(mp.WorkflowError) as info:
        workflow.run(backend="slurm", n_jobs=2, progress=False, poll_seconds=0.5)
    assert "InvalidParameterError" in info.value.failed["fit-o0-i0-c1"]
    assert _log(workflow) == ""  # nothing lost, nothing resubmitted
    assert read_submission(workflow.workdir)["attempt"] == 0


def test_max_retries_is_checked_before_anything_is_written(tmp_path):
    workflow = mp.Experiment(LogisticRegression(), cv=3).build(X, y, workdir=tmp_path / "wd")
    with pytest.raises(ValueError, match="The 'max_retries' parameter of the 'slurm' backend must be an int"):
        workflow.run(backend="slurm", max_retries=-1, progress=False)
    assert not (workflow.workdir / "submissions").exists()
