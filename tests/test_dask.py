"""Dask specifics on real clusters: private LocalCluster, scheduler address, killed worker, Slurm."""

import contextlib
import logging
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

from slurm_cluster import require_slurm
from conftest import (GATED_MODULE, SLOW_MODULE, assert_matches_sklearn, kept_environment, running_pids,
                      squeue_job_ids)

distributed = pytest.importorskip("distributed", reason="the dask backend needs distributed (mempamal[dask])")
import dask  # noqa: E402 (installed with distributed)

X, y = load_iris(return_X_y=True)

def _children():
    """Our live child processes, but multiprocessing's resource tracker (one per interpreter, by design)."""
    import psutil

    found = set()
    for process in psutil.Process().children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(process.cmdline()):
                found.add(process.pid)
        except psutil.Error:
            pass
    return found


@pytest.fixture(autouse=True)
def _environment_restored():
    """Clusters made by the tests themselves write their workers' settings into os.environ."""
    with kept_environment():
        yield


def test_private_local_cluster_gives_sklearns_answer_and_leaves_no_process_or_setting(tmp_path):
    before, environment = _children(), dict(os.environ)
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    results = experiment.build(X, y, workdir=tmp_path / "wd").run(backend="dask", n_jobs=2, progress=False)
    assert_matches_sklearn(results, experiment, X, y)
    assert dict(os.environ) == environment  # no OMP_NUM_THREADS=1 left for what runs next
    deadline = time.monotonic() + 30
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _children() - before == set()


def test_a_scheduler_address_is_used_and_left_running(tmp_path):
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster:
        experiment = mp.Experiment(LogisticRegression(max_iter=300), cv=3)
        results = experiment.build(X, y, workdir=tmp_path / "wd").run(
            backend="dask", address=cluster.scheduler_address, progress=False)
        assert_matches_sklearn(results, experiment, X, y)
        with distributed.Client(cluster.scheduler_address) as client:
            assert len(client.nthreads()) == 1  # still there


@pytest.mark.parametrize("options, message", [
    ({"client": "tcp://x:1"}, "'client' parameter of the dask backend must be a distributed.Client"),
    ({"address": 8786}, "'address' parameter of the dask backend must be a scheduler address"),
    ({"retries": -1}, "'retries' parameter of the dask backend must be an int in the range [0, inf)"),
    ({"threads_per_worker": 0}, "'threads_per_worker' parameter of the dask backend must be an int in the range [1, inf)"),
])
def test_bad_dask_options_are_refused_before_anything_runs(tmp_path, options, message):
    workflow = mp.Experiment(LogisticRegression(), cv=3).build(X, y, workdir=tmp_path / "wd")
    with pytest.raises(ValueError, match=re.escape(message)):
        workflow.run(backend="dask", progress=False, **options)
    assert workflow.status()["done"] == 0


def test_an_unreachable_scheduler_address_is_a_clear_error(tmp_path, monkeypatch):
    from mempamal.backends import dask

    monkeypatch.setattr(dask, "CONNECT_SECONDS", 2)  # nothing listens there: no need to wait 30 s
    workflow = mp.Experiment(LogisticRegression(), cv=3).build(X, y, workdir=tmp_path / "wd")
    with pytest.raises(OSError, match="could not reach a scheduler at 'tcp://127.0.0.1:9'"):
        workflow.run(backend="dask", address="tcp://127.0.0.1:9", progress=False)


@contextlib.contextmanager
def _cluster_with_gated_tasks(tmp_path, monkeypatch, n_workers=2, allowed_failures=0):
    """A LocalCluster of worker processes that import GatedLogistic, even those its nannies restart."""
    (tmp_path / "gatemod.py").write_text(GATED_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    (tmp_path / "gate").mkdir()
    # allowed-failures=0: Dask does not reschedule a task whose worker died, it
    # gives up at once with KilledWorker (as after the 3 deaths it allows by default).
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}):
        with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, \
                distributed.Client(cluster) as client:
            yield client


def _kill_a_worker_running_a_task(client, gate):
    """SIGKILL the worker process that waits in a task at ``gate`` (checked to be one of the cluster's)."""
    import psutil

    [pid] = running_pids(gate)
    assert pid in client.run(os.getpid).values()
    worker = psutil.Process(pid)
    worker.kill()
    worker.wait(timeout=10)
    return pid


@pytest.mark.parametrize("allowed_failures", [0, 3], ids=["KilledWorker", "rescheduled-by-dask"])
def test_a_worker_killed_mid_task_does_not_fail_the_task_and_the_run_gives_sklearns_answer(
        tmp_path, monkeypatch, allowed_failures):
    with _cluster_with_gated_tasks(tmp_path, monkeypatch, allowed_failures=allowed_failures) as client:
        from gatemod import GatedLogistic

        gate = tmp_path / "gate"
        experiment = mp.Experiment(GatedLogistic(gate=str(gate)), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
        workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)

        def kill_then_open_the_gate():
            killed.append(_kill_a_worker_running_a_task(client, gate))
            (gate / "open").touch()

        killed = []
        killer = threading.Thread(target=kill_then_open_the_gate)
        killer.start()
        results = workflow.run(backend="dask", client=client, progress=False)  # retries=1
        killer.join()
        assert killed and killed[0] not in client.run(os.getpid).values()
    assert_matches_sklearn(results, mp.Experiment(GatedLogistic(), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2),
                           X, y)


def test_with_retries_0_the_task_of_a_killed_worker_is_not_run_not_failed_and_a_rerun_finishes(
        tmp_path, monkeypatch):
    with _cluster_with_gated_tasks(tmp_path, monkeypatch) as client:
        from gatemod import GatedLogistic

        gate = tmp_path / "gate"
        experiment = mp.Experiment(GatedLogistic(gate=str(gate)), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
        workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
        killer = threading.Thread(target=lambda: (_kill_a_worker_running_a_task(client, gate),
                                                  (gate / "open").touch()))
        killer.start()
        with pytest.raises(mp.WorkflowError) as info:
            workflow.run(backend="dask", client=client, retries=0, progress=False)
        killer.join()
        error = info.value
        assert str(error).startswith("0 task(s) failed, ") and "not run because their worker died" in str(error)
        lost = [i for i, message in error.failed.items() if "not run to the end (worker lost)" in message]
        assert lost and all("KilledWorker" in error.failed[i] and "did not raise" in error.failed[i] for i in lost)
        assert set(error.not_run) == set(error.failed) and not error.blocked
        status = workflow.status()
        assert status["failed"] == 0 and status["done"] + len(error.not_run) == status["total"]
        results = workflow.run(backend="dask", client=client, progress=False)
    assert_matches_sklearn(results, mp.Experiment(GatedLogistic(), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2),
                           X, y)


def test_a_task_that_raises_on_a_dask_worker_is_still_a_failure_not_a_lost_worker(tmp_path, monkeypatch):
    (tmp_path / "slowmod.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    from slowmod import SlowLogistic

    # C=-1 makes LogisticRegression raise; error_score="raise" makes that the task's failure.
    experiment = mp.Experiment(SlowLogistic(C=-1.0, delay=0), cv=3, error_score="raise", final_fit=False)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    with pytest.raises(ValueError) as info:
        workflow.run(backend="dask", n_jobs=1, progress=False)
    error = info.value.__cause__
    assert isinstance(error, mp.WorkflowError) and str(error).startswith("3 task(s) failed, 1 blocked")
    assert error.not_run == [] and all("worker lost" not in message for message in error.failed.values())
    assert workflow.status()["failed"] == 3


def test_when_every_dask_worker_is_gone_the_run_ends_saying_so(tmp_path, monkeypatch):
    import psutil
    from mempamal.backends import dask as dask_backend

    monkeypatch.setattr(dask_backend, "WORKER_WAIT_SECONDS", 3)
    (tmp_path / "gatemod.py").write_text(GATED_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    gate = tmp_path / "gate"
    gate.mkdir()
    from gatemod import GatedLogistic

    workflow = mp.Experiment(GatedLogistic(gate=str(gate)), cv=3).build(X, y, workdir=tmp_path / "wd")
    # A scheduler, and one worker process without a nanny (as `dask worker --no-nanny` on a node):
    # once it is killed, nothing starts another.
    with distributed.LocalCluster(n_workers=0, dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, \
            distributed.Client(cluster) as client:
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path),
                                                                                  os.environ.get("PYTHONPATH")]))}
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
                                   "--no-nanny", "--nthreads", "1", "--no-dashboard"], env=environment,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client.wait_for_workers(1, timeout=120)
            killer = threading.Thread(target=_kill_a_worker_running_a_task, args=(client, gate))
            killer.start()
            with pytest.raises(mp.WorkersLost) as info:
                workflow.run(backend="dask", client=client, progress=False)
            killer.join()
            assert not psutil.pid_exists(worker.pid)  # killed (and reaped by psutil)
        finally:
            worker.kill()
            worker.wait()
    message = str(info.value)
    assert message.startswith("Every Dask worker of the run is gone (none for ")
    n_tasks = len(workflow.tasks)
    assert f"{n_tasks} task(s) not run. They did not fail" in message and "cluster.scale(n)" in message
    assert info.value.not_run == n_tasks and info.value.failed == {}
    status = workflow.status()
    assert status["failed"] == 0 and status["done"] == 0


def test_ctrl_c_stops_the_private_cluster_and_keeps_finished_work(tmp_path):
    (tmp_path / "slowmod.py").write_text(SLOW_MODULE)
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import sys
        from sklearn.datasets import load_iris
        import mempamal as mp
        from slowmod import SlowLogistic
        if __name__ == "__main__":  # Dask starts its workers with spawn
            X, y = load_iris(return_X_y=True)
            exp = mp.Experiment(SlowLogistic(), param_grid={"C": [0.1, 1.0, 10.0]}, cv=3, inner_cv=2)
            wf = exp.build(X, y, workdir=sys.argv[1], chunk_size=1)
            try:
                wf.run(backend="dask", n_jobs=2, progress=False)
            except KeyboardInterrupt:
                print("INTERRUPTED", flush=True)
    """))
    import psutil

    workdir = tmp_path / "wd"
    process = subprocess.Popen([sys.executable, str(script), str(workdir)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    driver = psutil.Process(process.pid)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(workdir.glob("outputs/*/*.json"))) < 2:
        time.sleep(0.05)
    workers = driver.children(recursive=True)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=90)
    assert "INTERRUPTED" in stdout, stderr
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
    workflow = mp.Workflow.open(workdir)
    assert 0 < workflow.status()["done"] < len(workflow.tasks)


def test_dask_jobqueue_slurm_cluster_gives_sklearns_answer_with_jobs_in_squeue(tmp_path):
    require_slurm()
    # dask_jobqueue's runner module replaces Python's Ctrl-C handler with
    # sys.exit() when imported: keep it from breaking later tests' Ctrl-C.
    sigint_handler = signal.getsignal(signal.SIGINT)
    try:
        dask_jobqueue = pytest.importorskip("dask_jobqueue", reason="needs dask-jobqueue (mempamal[dask])")
    finally:
        signal.signal(signal.SIGINT, sigint_handler)
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    logs = tmp_path / "logs"
    cluster = dask_jobqueue.SLURMCluster(
        cores=1, processes=1, memory="1GB", walltime="00:10:00", python=sys.executable,
        job_name="mempamal-dask-test", log_directory=str(logs), local_directory=str(tmp_path / "scratch"),
        scheduler_options={"dashboard_address": None, "host": "127.0.0.1"})
    try:
        cluster.scale(jobs=2)
        seen = {}

        def watch_squeue():
            while "jobs" not in seen:
                jobs = squeue_job_ids("mempamal-dask-test")
                if jobs:
                    seen["jobs"] = jobs
                time.sleep(0.2)

        watcher = threading.Thread(target=watch_squeue, daemon=True)
        watcher.start()
        with distributed.Client(cluster) as client:
            results = workflow.run(backend="dask", client=client, progress=False)
        watcher.join(timeout=30)
        assert seen.get("jobs"), "no dask-jobqueue job was seen in squeue"
    finally:
        cluster.close()
    assert_matches_sklearn(results, experiment, X, y)


def test_a_dask_jobqueue_worker_whose_job_is_scancelled_mid_task_does_not_fail_it(tmp_path, monkeypatch):
    """A real Slurm job killed under its running task (`scancel --signal=KILL`): what a walltime or a preemption does."""
    require_slurm()
    sigint_handler = signal.getsignal(signal.SIGINT)  # see the test above
    try:
        dask_jobqueue = pytest.importorskip("dask_jobqueue", reason="needs dask-jobqueue (mempamal[dask])")
    finally:
        signal.signal(signal.SIGINT, sigint_handler)
    (tmp_path / "gatemod.py").write_text(GATED_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    # The jobs get this environment (sbatch --export=ALL): their workers import gatemod.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    gate = tmp_path / "gate"
    gate.mkdir()
    from gatemod import GatedLogistic

    experiment = mp.Experiment(GatedLogistic(gate=str(gate)), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # KilledWorker at the first death
        cluster = dask_jobqueue.SLURMCluster(
            cores=1, processes=1, memory="1GB", walltime="00:10:00", python=sys.executable,
            job_name="mempamal-dask-lost", log_directory=str(tmp_path / "logs"),
            local_directory=str(tmp_path / "scratch"), scheduler_options={"dashboard_address": None, "host": "127.0.0.1"})
    try:
        cluster.scale(jobs=2)
        with distributed.Client(cluster) as client:
            client.wait_for_workers(2, timeout=300)
            killed = []

            def scancel_the_job_running_a_task():
                [pid] = running_pids(gate, timeout=300)
                environment = dict(line.split("=", 1) for line in
                                   open(f"/proc/{pid}/environ").read().split("\0") if "=" in line)
                job = environment["SLURM_JOB_ID"]
                assert job in squeue_job_ids("mempamal-dask-lost")
                subprocess.run(["scancel", "--signal=KILL", job], check=True)
                import psutil

                psutil.Process(pid).wait(timeout=60)  # the worker died with its job
                killed.append(job)
                (gate / "open").touch()

            killer = threading.Thread(target=scancel_the_job_running_a_task)
            killer.start()
            results = workflow.run(backend="dask", client=client, progress=False)
            killer.join()
            assert killed
    finally:
        cluster.close()
    assert_matches_sklearn(results, mp.Experiment(GatedLogistic(), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2),
                           X, y)
