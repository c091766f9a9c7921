"""The native ``slurm`` backend and export on a real Slurm (skipped, with the reason, without one).

Same answers, resume and failures-by-id are checked for ``slurm`` by
test_backends.py; here what only Slurm has: arrays waiting on ``afterok``,
the hand-submitted export, Ctrl-C of a real driver process, re-attaching
after the driver was killed, path rewriting, and what the shared
filesystem must guarantee.  Graphs stay iris-sized; jobs run as this user
with this interpreter, workdirs under the test's temporary folder.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp

from conftest import assert_matches_sklearn
from slurm_cluster import require_slurm

X, y = load_iris(return_X_y=True)


def _experiment(**kwargs):
    options = dict(param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    options.update(kwargs)
    return mp.Experiment(LogisticRegression(max_iter=300), **options)


def _plain():
    return mp.Experiment(LogisticRegression(max_iter=300), cv=3)


def _slow_experiment(final_fit=False):
    """Every fit sleeps 0.2 s (defined here so cloudpickle ships it by value to the jobs)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    def slow_identity(data):
        time.sleep(0.2)
        return data

    return mp.Experiment(make_pipeline(FunctionTransformer(slow_identity), LogisticRegression(max_iter=300)),
                         param_grid={"logisticregression__C": [0.1, 1.0]}, cv=3, inner_cv=2,
                         final_fit=final_fit)  # the final search on Slurm: test_final_model


def _queued(job_ids):
    """Our jobs still in Slurm's queue (pending, running, completing)."""
    if not job_ids:
        return []
    answer = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(job_ids)],
                            capture_output=True, text=True)
    return answer.stdout.split("\n") if answer.stdout.strip() else []


def _wait_until(condition, timeout=180, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)


def _driver(workdir, **options):
    """A separate Python process running ``Workflow.run(backend="slurm")``, as a user would."""
    code = textwrap.dedent(f"""
        import mempamal as mp
        mp.Workflow.open({str(workdir)!r}).run(backend="slurm", progress=False, **{options!r})
    """)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _recorded_job_ids(workdir):
    path = workdir / "submissions" / "slurm.json"
    return [array["job_id"] for array in json.loads(path.read_text())["arrays"]] if path.exists() else []


# ------------------------------------------------------------ without Slurm
def test_bad_options_are_refused_before_anything_is_written(tmp_path):
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd")
    for options, message in [
        ({"partition": 3}, "The 'partition' parameter of the 'slurm' backend must be a non-empty str or None; got 3"),
        ({"sbatch_options": "--time=5"}, "The 'sbatch_options' parameter of the 'slurm' backend must be a list of str"),
        ({"job_seconds": -1}, "The 'job_seconds' parameter of the 'slurm' backend must be a float in the range (0, inf)"),
        ({"poll_seconds": 0}, "The 'poll_seconds' parameter of the 'slurm' backend must be a float in the range (0, inf)"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            workflow.run(backend="slurm", progress=False, **options)
    assert not (workflow.workdir / "submissions").exists()


def test_missing_slurm_commands_give_an_install_hint(tmp_path, monkeypatch):
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # a real PATH without Slurm's commands
    with pytest.raises(RuntimeError, match="needs Slurm's client commands.*Missing: sbatch, squeue, scancel"):
        workflow.run(backend="slurm", progress=False)
    assert not (workflow.workdir / "submissions").exists()


def test_outputs_written_by_another_process_are_seen_at_once(tmp_path):
    """The driver never caches which outputs exist: a job's output on the shared FS counts when it appears."""
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd")
    assert workflow.status()["done"] == 0
    other = subprocess.run([sys.executable, "-m", "mempamal", "task", str(workflow.workdir), "fit-o0-i0-c0",
                            "fit-o0-i1-c0"], capture_output=True, text=True)
    assert other.returncode == 0, other.stderr
    assert workflow.status()["done"] == 2
    assert {"fit-o0-i0-c0", "fit-o0-i1-c0"} <= workflow.done_ids()
    assert "fit-o0-i0-c0" not in workflow.pending_ids()


# --------------------------------------------------------------- with Slurm
@pytest.fixture
def slurm():
    require_slurm()


def test_levels_are_job_arrays_waiting_on_afterok(slurm, tmp_path):
    hostile = tmp_path / "it's a 100% \"run\" $HOME"  # quotes, %-patterns of sbatch, a variable
    workflow = _slow_experiment().build(X, y, workdir=hostile, chunk_size=1)
    seen, done = set(), threading.Event()

    def watch_queue():  # what squeue shows while the run goes on
        while not done.is_set():
            answer = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%j|%T|%r"], capture_output=True, text=True)
            seen.update(tuple(line.split("|")) for line in answer.stdout.splitlines())
            time.sleep(0.2)

    watcher = threading.Thread(target=watch_queue)
    watcher.start()
    try:
        results = workflow.run(backend="slurm", n_jobs=2, progress=False, poll_seconds=0.2)
    finally:
        done.set()
        watcher.join()
    assert_matches_sklearn(results, _slow_experiment(), X, y)
    record = json.loads((workflow.workdir / "submissions" / "slurm.json").read_text())
    assert [(a["level"], a["size"]) for a in record["arrays"]] == [(0, 2), (1, 2), (2, 1)]
    level1 = record["arrays"][1]["job_id"]
    waiting = {(job, reason) for job, name, state, reason in seen if job.startswith(f"{level1}_")}
    assert any(reason == "Dependency" for _, reason in waiting), seen  # afterok held it
    assert any(job == f"{level1}_1" for job, _ in waiting)             # an array element
    logs = list((hostile / "submissions").glob("slurm-*/logs/*.err"))
    assert len(logs) == 5, logs  # one stderr per array element, in the hostile folder


def test_exported_script_submitted_by_hand_runs_the_graph(slurm, tmp_path):
    workflow = _experiment(n_permutations=2, random_state=0).build(X, y, workdir=tmp_path / "w d", chunk_size=1)
    script = workflow.export(tmp_path / "submit.sh", format="slurm", tasks_per_job=20, n_jobs=2)
    text = script.read_text()
    assert "--dependency=afterok:" in text and "--array=0-" in text
    submitted = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    job_ids = [line.rsplit(" ", 1)[-1] for line in submitted.stdout.splitlines() if "submitted as job" in line]
    assert len(job_ids) == text.count("<<'MEMPAMAL_ARRAY_")
    _wait_until(lambda: not _queued(job_ids), what="the exported jobs")
    assert_matches_sklearn(mp.Results.load(workflow.workdir), _experiment(n_permutations=2, random_state=0), X, y)


def test_ctrl_c_of_the_driver_cancels_its_jobs_and_a_rerun_finishes(slurm, tmp_path):
    # with the final search: longer fit level, so Ctrl-C lands before the run ends
    workflow = _slow_experiment(final_fit=True).build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    driver = _driver(workflow.workdir, n_jobs=2, poll_seconds=0.2)
    try:
        _wait_until(lambda: workflow.status()["done"] > 0, what="a first output")
        os.kill(driver.pid, signal.SIGINT)  # what Ctrl-C sends
        _, stderr = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode != 0 and "KeyboardInterrupt" in stderr
    job_ids = _recorded_job_ids(workflow.workdir)
    assert job_ids and _queued(job_ids) == []  # cancelled before the driver returned
    done = workflow.done_ids()
    assert 0 < len(done) < len(workflow.tasks)
    time.sleep(2)
    assert workflow.done_ids() == done, "a cancelled job kept writing outputs"
    results = workflow.run(backend="slurm", n_jobs=2, progress=False, poll_seconds=0.2)
    assert_matches_sklearn(results, _slow_experiment(final_fit=True), X, y)


def test_attach_after_the_driver_was_killed_waits_for_the_same_jobs(slurm, tmp_path):
    from mempamal.backends.slurm.backend import SlurmBackend

    workflow = _slow_experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    driver = _driver(workflow.workdir, n_jobs=2, poll_seconds=0.2)
    try:
        _wait_until(lambda: len(_recorded_job_ids(workflow.workdir)) == 3, what="the submission record")
        os.kill(driver.pid, signal.SIGKILL)  # no clean-up at all: jobs stay queued
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    job_ids = _recorded_job_ids(workflow.workdir)
    assert _queued(job_ids), "the jobs should outlive a killed driver"
    run = workflow.attach()  # what a restarted kernel calls: SlurmBackend.attach in a driver thread
    assert run is not None and run.backend_name == "slurm"
    assert_matches_sklearn(run.wait(), _slow_experiment(), X, y)
    assert _queued(job_ids) == []
    assert SlurmBackend(poll_seconds=0.2).attach(workflow, progress=False) == {}  # over: nothing left to wait for


def test_python_and_remote_workdir_are_what_the_jobs_run(slurm, tmp_path):
    """Nodes that mount the workdir and the interpreter elsewhere: a symlink and a wrapper stand for them."""
    workflow = _plain().build(X, y, workdir=tmp_path / "wd")
    mount = tmp_path / "as-seen-by-nodes"
    mount.symlink_to(workflow.workdir)
    calls = tmp_path / "calls.txt"
    wrapper = tmp_path / "node-python"
    wrapper.write_text(f'#!/bin/sh\necho "$OMP_NUM_THREADS $@" >> {calls}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o700)
    results = workflow.run(backend="slurm", python=str(wrapper), remote_workdir=str(mount),
                           sbatch_options=["--cpus-per-task=2"], tasks_per_job=2, n_jobs=2, progress=False,
                           poll_seconds=0.2)
    assert_matches_sklearn(results, _plain(), X, y)
    lines = calls.read_text().splitlines()
    # BLAS threads = the CPUs Slurm gave the job; the nodes' paths in every command
    assert lines and all(line.startswith(f"2 -m mempamal task {mount} ") for line in lines)
    assert sorted(t for line in lines for t in line.split()[5:]) == sorted(t.id for t in workflow.tasks)


def test_cancel_stops_the_jobs_a_killed_driver_left_behind(slurm, tmp_path):
    from mempamal.backends.slurm.backend import SlurmBackend

    workflow = _slow_experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    driver = _driver(workflow.workdir, n_jobs=2, poll_seconds=0.2)
    try:
        _wait_until(lambda: len(_recorded_job_ids(workflow.workdir)) == 3, what="the submission record")
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    job_ids = SlurmBackend().cancel(workflow)
    assert job_ids == _recorded_job_ids(workflow.workdir) and _queued(job_ids) == []
    done = workflow.done_ids()
    time.sleep(2)
    assert workflow.done_ids() == done and "final" not in done


@pytest.fixture
def second_user():
    """A real second local user (useradd as root), removed afterwards."""
    import pwd
    import shutil

    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd to create a second user")
    name = "mempamal-other"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], capture_output=True)
    try:
        yield pwd.getpwnam(name).pw_uid
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def test_a_workdir_file_owned_by_another_uid_is_reported_with_the_reason(slurm, second_user, tmp_path):
    """What root-squash or uid mapping looks like: refused once by the driver, naming the file and the uid,
    before any job is submitted; a task run by itself (what a node runs) refuses it with the same reason."""
    workflow = _plain().build(X, y, workdir=tmp_path / "wd")
    os.chown(workflow.workdir / "experiment.pkl", second_user, -1)
    with pytest.raises(mp.WorkdirError) as info:
        workflow.run(backend="slurm", n_jobs=2, progress=False, poll_seconds=0.2)
    assert f"uid {second_user}" in str(info.value) and "experiment.pkl" in str(info.value)
    assert not (workflow.workdir / "submissions").exists()  # nothing was submitted
    with pytest.raises(mp.TaskError) as task_info:
        mp.run_task(workflow.workdir, "score-o0")
    assert f"uid {second_user}" in str(task_info.value) and "another user" in str(task_info.value)


def test_without_sacct_failures_come_from_the_output_files(slurm, tmp_path, monkeypatch):
    """Accounting is optional: with no sacct on PATH the outputs alone say what failed."""
    import shutil

    bin_dir = tmp_path / "bin-without-sacct"
    bin_dir.mkdir()
    for command in ("sbatch", "squeue", "scancel", "sinfo", "bash", "env"):
        (bin_dir / command).symlink_to(shutil.which(command))
    monkeypatch.setenv("PATH", str(bin_dir))
    experiment = _experiment(param_grid={"C": [1.0, -1.0]}, error_score="raise")
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    with pytest.raises(mp.WorkflowError) as info:
        workflow.run(backend="slurm", n_jobs=2, progress=False, poll_seconds=0.2)
    failed = info.value.failed
    assert "InvalidParameterError" in failed["fit-o0-i0-c1"] and "'C'" in failed["fit-o0-i0-c1"]
    assert failed["select-o0"].startswith("not run") and failed["final"].startswith("not run")
    assert {f"fit-o{k}-i{j}-c0" for k in range(3) for j in range(2)} <= workflow.done_ids()
    assert _queued(_recorded_job_ids(workflow.workdir)) == []


def test_status_shows_the_jobs_and_running_counts_array_elements_in_state_r(slurm, tmp_path, monkeypatch):
    workflow = _slow_experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    run = workflow.submit(backend="slurm", n_jobs=2, tasks_per_job=1, poll_seconds=0.2)
    views, running = [], []
    try:
        while not run.done():
            views.append(workflow.status()["jobs"])
            running.append(run.status()["running"])
            time.sleep(0.1)
    finally:
        run.cancel()
    results = run.wait()
    assert_matches_sklearn(results, _slow_experiment(), X, y)
    arrays = json.loads((workflow.workdir / "submissions" / "slurm.json").read_text())["arrays"]
    seen = [view for view in views if view is not None and "error" not in view]
    assert seen and all(view["backend"] == "slurm" for view in seen)
    # every element of every array recorded so far (one record write per sbatch), as squeue sees it;
    # never more running than the throttle
    totals = [v["pending"] + v["running"] + v["finished"] for v in seen]
    assert max(totals) == sum(a["size"] for a in arrays) and totals == sorted(totals)
    assert max(v["running"] for v in seen) >= 1 and all(v["running"] <= 2 for v in seen)
    assert 1 <= max(running) <= 2, running
    assert workflow.status()["jobs"] is None  # all done: the submission is history

    # squeue unreachable: the status still answers and says so
    workflow2 = _plain().build(X, y, workdir=tmp_path / "wd2")
    (workflow2.workdir / "submissions").mkdir()
    (workflow2.workdir / "submissions" / "slurm.json").write_text(json.dumps({"arrays": [
        {"job_id": "999999", "size": 3, "bundles": [["score-o0"], ["score-o1"], ["score-o2"]]}]}))
    monkeypatch.setenv("PATH", str(tmp_path / "no-such-bin"))
    jobs = workflow2.status()["jobs"]
    assert jobs["backend"] == "slurm" and "squeue did not answer" in jobs["error"]
    from mempamal.cli import main

    assert main(["status", str(workflow2.workdir)]) == 0
