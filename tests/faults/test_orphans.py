"""Nothing keeps running after its driver is gone; a killed worker's task is retried.

Real processes and real signals: ``mempamal run`` is started as a
subprocess on a slow tiny experiment and SIGKILLed mid-run; every process it
started (loky workers, ipyparallel controller, engines, nannies, watchdog)
carries a marker in its environment, and none may be left 10 s later.  The
workdir then resumes to scikit-learn's answer without redoing finished tasks.
"""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from sklearn.datasets import load_iris

import mempamal as mp

from slurm_cluster import require_slurm
from conftest import SLOW_MODULE, assert_matches_sklearn, squeue_job_ids

psutil = pytest.importorskip("psutil", reason="the orphan checks list processes with psutil")

X, y = load_iris(return_X_y=True)

#: A killed driver's processes must all be gone within this many seconds.
SURVIVOR_DEADLINE = 10


def _marked(marker):
    """Live processes whose environment carries ``MEMPAMAL_ORPHAN_TEST=marker``."""
    found = []
    for process in psutil.process_iter():
        try:
            if (process.environ().get("MEMPAMAL_ORPHAN_TEST") == marker
                    and process.status() != psutil.STATUS_ZOMBIE):
                found.append(process)
        except psutil.Error:
            pass
    return found


def _slow_workflow(tmp_path, monkeypatch, delay=0.3):
    """A nested CV whose fits sleep; ``slowmod`` importable here and in fresh local workers."""
    (tmp_path / "slowmod.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))  # every run starts its own workers: they get this sys.path
    from slowmod import SlowLogistic

    grid = {"C": [0.1, 1.0, 10.0]}
    experiment = mp.Experiment(SlowLogistic(delay=delay), param_grid=grid, cv=3, inner_cv=2)
    reference = mp.Experiment(SlowLogistic(delay=0), param_grid=grid, cv=3, inner_cv=2)
    return experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1), reference


def _kill_driver_mid_run(tmp_path, workflow, command):
    """SIGKILL the driver ``command`` once 2 outputs exist; return (survivors after 10 s, seconds until none)."""
    marker = uuid.uuid4().hex
    env = {**os.environ, "MEMPAMAL_ORPHAN_TEST": marker, "TMPDIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    driver = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    outputs = workflow.workdir / "outputs"
    deadline = time.monotonic() + 180
    while len(list(outputs.glob("*/*.json"))) < 2 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert driver.poll() is None, driver.stderr.read().decode()
    assert len(_marked(marker)) > 1  # the driver really has workers to leave behind
    driver.kill()
    killed_at = time.monotonic()
    driver.wait()
    while _marked(marker) and time.monotonic() - killed_at < SURVIVOR_DEADLINE:
        time.sleep(0.1)
    survivors = _marked(marker)
    for process in survivors:  # do not leave them to the next test
        process.kill()
    return [p.pid for p in survivors], time.monotonic() - killed_at


def _outputs_with_times(workflow):
    return {path.name: path.stat().st_mtime_ns for path in (workflow.workdir / "outputs").glob("*/*.json")}


@pytest.mark.parametrize("backend", ["local", "ipyparallel", "dask"])
def test_sigkilled_driver_leaves_no_process_and_the_run_resumes_to_sklearns_answer(tmp_path, monkeypatch,
                                                                                      backend):
    needs = {"ipyparallel": "ipyparallel", "dask": "distributed"}
    if backend in needs:
        pytest.importorskip(needs[backend], reason=f"the {backend} backend needs {needs[backend]}")
    workflow, reference = _slow_workflow(tmp_path, monkeypatch)
    command = [sys.executable, "-m", "mempamal", "run", str(workflow.workdir), "-b", backend, "-n", "2",
               "--no-progress"]
    survivors, seconds = _kill_driver_mid_run(tmp_path, workflow, command)
    assert survivors == [], f"{len(survivors)} process(es) still running {seconds:.1f} s after SIGKILL"
    print(f"{backend}: no process left {seconds:.1f} s after SIGKILL")  # the figure, with pytest -s
    _resume_redoes_nothing_and_matches_sklearn(workflow, reference)


def _resume_redoes_nothing_and_matches_sklearn(workflow, reference):
    finished = _outputs_with_times(workflow)
    assert 0 < len(finished) < len(workflow.tasks)
    # Nothing left behind keeps writing, and the resumed run redoes nothing finished.
    results = workflow.run(backend="local", n_jobs=2, progress=False)
    assert {name: mtime for name, mtime in _outputs_with_times(workflow).items() if name in finished} == finished
    assert_matches_sklearn(results, reference, X, y)


def test_sigkilled_driver_of_slurm_engines_leaves_no_process_and_no_job(tmp_path, monkeypatch):
    require_slurm()
    pytest.importorskip("ipyparallel", reason="the ipyparallel backend needs ipyparallel")
    workflow, reference = _slow_workflow(tmp_path, monkeypatch)
    script = ("import sys, mempamal as mp; mp.Workflow.open(sys.argv[1]).run("
              "backend='ipyparallel', engines='slurm', n_jobs=2, progress=False)")
    jobs_before = squeue_job_ids("ipengine-mempamal")
    survivors, seconds = _kill_driver_mid_run(tmp_path, workflow, [sys.executable, "-c", script,
                                                                   str(workflow.workdir)])
    assert survivors == [], f"{len(survivors)} process(es) still running {seconds:.1f} s after SIGKILL"
    print(f"ipyparallel, Slurm engines: no process left {seconds:.1f} s after SIGKILL")
    deadline = time.monotonic() + 30  # a cancelled job stays "completing" a moment in squeue
    while squeue_job_ids("ipengine-mempamal") - jobs_before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert squeue_job_ids("ipengine-mempamal") - jobs_before == set()
    _resume_redoes_nothing_and_matches_sklearn(workflow, reference)


def test_a_sigkilled_local_worker_has_its_tasks_retried_with_exact_results(tmp_path, monkeypatch):
    workflow, reference = _slow_workflow(tmp_path, monkeypatch)
    outputs = workflow.workdir / "outputs"
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    killed = []

    def kill_a_worker_mid_run():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            workers = [p for p in psutil.Process().children(recursive=True)
                       if p.pid not in before and "resource_tracker" not in " ".join(p.cmdline())]
            if len(list(outputs.glob("*/*.json"))) >= 3 and workers:
                workers[0].send_signal(signal.SIGKILL)
                killed.append(workers[0].pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker_mid_run)
    killer.start()
    try:
        results = workflow.run(backend="local", n_jobs=2, progress=False)
    finally:
        killer.join()
    assert killed, "no worker was killed"
    assert killed[0] not in {p.pid for p in psutil.Process().children(recursive=True)}
    assert workflow.status()["pending"] == 0
    assert_matches_sklearn(results, reference, X, y)


def test_ctrl_c_while_an_ipyparallel_cluster_starts_leaves_no_process(tmp_path, monkeypatch):
    pytest.importorskip("ipyparallel", reason="the ipyparallel backend needs ipyparallel")
    workflow, _ = _slow_workflow(tmp_path, monkeypatch)
    marker = uuid.uuid4().hex
    env = {**os.environ, "MEMPAMAL_ORPHAN_TEST": marker, "TMPDIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    driver = subprocess.Popen([sys.executable, "-m", "mempamal", "run", str(workflow.workdir), "-b", "ipyparallel",
                               "-n", "2", "--no-progress"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120

    def started():  # the controller (or an engine) runs: the cluster is being started
        return any("ipyparallel" in " ".join(p.cmdline()) for p in _marked(marker) if p.pid != driver.pid)

    while not started() and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert driver.poll() is None
    driver.send_signal(signal.SIGINT)
    assert driver.wait(timeout=120) == 130, driver.stderr.read().decode()
    stopped_at = time.monotonic()
    while _marked(marker) and time.monotonic() - stopped_at < SURVIVOR_DEADLINE:
        time.sleep(0.1)
    survivors = _marked(marker)
    for process in survivors:
        process.kill()
    assert survivors == []
    assert not list(workflow.workdir.glob("outputs/*/*.json"))  # interrupted before any task ran
