"""One runner per workdir: real second processes, real kills, real lock files."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp
from mempamal.store import lock as lock_module
from mempamal.store.lock import STALE_SECONDS, WorkdirLock, WorkdirLocked, read_holder

from slow_experiment import (
    REBUILD_OTHER_GRID, cli, fingerprints_of_outputs, output_files, script, start_cli, wait_until, write_script,
)

def _write_lock(workdir, host, pid, age, pids=None):
    """A lock file as another runner writes it (pid space: ours by default)."""
    path = workdir / "run.lock"
    path.write_text(json.dumps({"host": host, "pid": pid, "pids": pids or lock_module._pid_space(),
                                "started": time.time() - age, "token": "planted", "purpose": "run"}))
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_second_runner_and_rebuild_are_refused_naming_the_holder_then_wait_redoes_nothing(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    path = write_script(tmp_path, delay=0.05, markers=markers)
    workdir = tmp_path / "wd"
    assert script(path, "build", workdir).returncode == 0
    (markers / "hold").touch()  # the first run stays at its first fits until released
    first = start_cli("run", workdir, "-n", "2", "--no-progress")
    wait_until(lambda: list(markers.glob("load-*")), what="the first run's workers to start")

    second = cli("run", workdir, "-n", "1", "--no-progress")
    assert second.returncode == 1
    assert f"pid {first.pid} on host {socket.gethostname()}" in second.stderr, second.stderr
    assert "locked by another mempamal process" in second.stderr and "run since" in second.stderr
    assert "Traceback" not in second.stderr

    # The bug of issue 10: a rebuild with another grid under a running run.
    (tmp_path / "rebuild.py").write_text(REBUILD_OTHER_GRID)
    rebuild = subprocess.run([sys.executable, str(tmp_path / "rebuild.py"), str(workdir)],
                             capture_output=True, text=True)
    assert rebuild.returncode != 0
    assert "WorkdirLocked" in rebuild.stderr and f"pid {first.pid}" in rebuild.stderr

    # In the same process, the Python API says the same; status shows the runner.
    with pytest.raises(WorkdirLocked, match=f"pid {first.pid}"):
        mp.Workflow.open(workdir).run(n_jobs=1, progress=False)
    assert f"pid {first.pid}" in mp.Workflow.open(workdir).status().runner

    waiting = start_cli("run", workdir, "-n", "2", "--no-progress", "--wait")
    time.sleep(1.0)  # the waiting runner is queued behind the first one
    assert waiting.poll() is None
    (markers / "hold").unlink()
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    after_first = fingerprints_of_outputs(workdir)
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    assert fingerprints_of_outputs(workdir) == after_first, "the waiting runner redid finished tasks"
    assert not (workdir / "run.lock").exists()
    verdict = script(path, "check", workdir)
    assert "MATCH" in verdict.stdout, verdict.stderr


# A runner killed with SIGKILL leaves its lock, taken over by the next run:
# see test_kills.py, which checks it after each of its seven kills.


def test_lock_of_another_host_is_respected_until_its_heartbeat_is_stale(tmp_path):
    _write_lock(tmp_path, "compute-node-7", 4242, age=1.0)
    with pytest.raises(WorkdirLocked, match="pid 4242 on host compute-node-7"):
        WorkdirLock(tmp_path).acquire()
    refused = cli("run", tmp_path, "--wait", "1")  # not a workdir: refused before the lock
    assert refused.returncode == 1
    _write_lock(tmp_path, "compute-node-7", 4242, age=STALE_SECONDS + 5)
    with WorkdirLock(tmp_path) as taken:
        assert taken.took_over["host"] == "compute-node-7"
        assert read_holder(tmp_path)["pid"] == os.getpid()
    # Same host name, other pid namespace (another container): a pid that is
    # dead here says nothing; only the heartbeat can make it stale.
    _write_lock(tmp_path, socket.gethostname(), _dead_pid(), age=1.0, pids="other-boot/pid:[1]")
    with pytest.raises(WorkdirLocked):
        WorkdirLock(tmp_path).acquire()
    _write_lock(tmp_path, socket.gethostname(), _dead_pid(), age=1.0)
    with WorkdirLock(tmp_path) as taken:
        assert taken.took_over is not None


def test_waiting_for_a_lock_gives_up_after_the_timeout_naming_the_holder(tmp_path):
    X, y = load_iris(return_X_y=True)
    exp = mp.Experiment(LogisticRegression(max_iter=300), cv=3)
    workflow = exp.build(X, y, workdir=tmp_path / "wd")
    with WorkdirLock(workflow.workdir):  # this test process is the live holder
        started = time.monotonic()
        refused = cli("run", workflow.workdir, "-n", "1", "--wait", "1.5", "--no-progress")
        assert time.monotonic() - started >= 1.5
        assert refused.returncode == 1 and f"pid {os.getpid()}" in refused.stderr
        assert output_files(workflow.workdir) == []
        with pytest.raises(WorkdirLocked):
            exp.build(X, y, workdir=workflow.workdir, overwrite=True)
        with pytest.raises(WorkdirLocked):  # refused at once, in the caller's thread
            workflow.submit(n_jobs=1)
        queued = workflow.submit(n_jobs=1, wait=True)  # its driver thread waits...
        time.sleep(1.0)
        assert not queued.done()
        queued.cancel()  # ...until cancelled
        with pytest.raises(WorkdirLocked, match="Stopped waiting"):
            queued.wait(timeout=30)
    assert (workflow.workdir / "manifest.json").exists()
    workflow.run(n_jobs=1, progress=False)


def test_heartbeat_refreshes_the_lock_and_release_removes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "HEARTBEAT_SECONDS", 0.05)
    with WorkdirLock(tmp_path) as held:
        first = read_holder(tmp_path)["heartbeat"]
        wait_until(lambda: read_holder(tmp_path)["heartbeat"] > first, timeout=10, what="a heartbeat")
        assert held.holds()
    assert read_holder(tmp_path) is None


def test_bad_wait_argument_is_refused_naming_it(tmp_path):
    with pytest.raises(ValueError, match="The 'wait' parameter"):
        WorkdirLock(tmp_path, wait="soon")
    assert not (tmp_path / "run.lock").exists()


CONTENDER = textwrap.dedent("""
    import os, sys, time
    from mempamal.store.lock import WorkdirLock, WorkdirLocked
    workdir, go = sys.argv[1], sys.argv[2]
    while not os.path.exists(go):
        time.sleep(0.001)
    try:
        lock = WorkdirLock(workdir).acquire()
    except WorkdirLocked:
        print("REFUSED")
    else:
        print("WON")
        time.sleep(2.0)
        lock.release()
""")


def test_concurrent_takeover_of_a_stale_lock_has_exactly_one_winner(tmp_path):
    script_path = tmp_path / "contender.py"
    script_path.write_text(CONTENDER)
    for round_index in range(3):
        workdir = tmp_path / f"round{round_index}"
        workdir.mkdir()
        _write_lock(workdir, socket.gethostname(), _dead_pid(), age=0.0)
        go = tmp_path / f"go{round_index}"
        contenders = [subprocess.Popen([sys.executable, str(script_path), str(workdir), str(go)],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                      for _ in range(4)]
        time.sleep(1.0)  # let every contender reach its start line
        go.touch()
        verdicts = [process.communicate(timeout=60)[0].strip() for process in contenders]
        # Whoever removed the stale lock, one contender holds the new one.
        assert sorted(verdicts) == ["REFUSED"] * 3 + ["WON"], verdicts
        assert read_holder(workdir) is None


def test_takeover_guard_left_by_a_dead_contender_does_not_block(tmp_path):
    _write_lock(tmp_path, socket.gethostname(), _dead_pid(), age=0.0)
    guard = tmp_path / "run.lock.takeover"
    guard.write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid(),
                                 "pids": lock_module._pid_space(), "token": "dead"}))
    with WorkdirLock(tmp_path, wait=10) as taken:
        assert taken.holds()
    assert not guard.exists() and read_holder(tmp_path) is None
