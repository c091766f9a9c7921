"""Polite polling (issue 25, part 5): one watcher per process, backing off; status reads its cache.

The law is checked by itself (no Slurm needed); the count of real
scheduler calls is taken with wrappers on ``PATH`` that log every
``squeue``/``sacct``/``sbatch``/``scancel``/``sinfo``/``scontrol`` call
(time, calling process) and exec the real command, around a real driver
process and a second process attached to its run.  The 1,000-bundle count
is ``benchmarks/bench_slurm_polling.py``.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
from sklearn.datasets import load_iris

import mempamal as mp
from mempamal.backends.slurm.watcher import (CRUISE_SECONDS, MAX_SECONDS, SlurmWatcher, next_interval, read_view,
                                             write_view)

from slurm_cluster import require_slurm

X, y = load_iris(return_X_y=True)
COMMANDS = ("squeue", "sacct", "sbatch", "scancel", "sinfo", "scontrol")


def _simulate(changes, seconds=1800, sacct_every=None):
    """Call times of the law over ``seconds``: ``changes(i)`` says if tick i saw a change; a sacct call
    follows every ``sacct_every``-th squeue, a floor after it (as ``SlurmWatcher.final_states`` waits)."""
    from mempamal.backends.slurm.watcher import floor_seconds

    now, interval, calls, tick = 0.0, 1.0, [], 0
    while now < seconds:
        made = 2 if sacct_every and tick % sacct_every == 0 else 1
        calls += [now] if made == 1 else [now, now + floor_seconds(now)]
        interval = next_interval(interval, changes(tick), age=now, calls=made)
        now += interval
        tick += 1
    return calls


def _most_in_a_minute(calls, after=60.0):
    later = [t for t in calls if t >= after]
    return max(sum(1 for t in later if start <= t < start + 60) for start in later) if later else 0


def test_the_law_keeps_a_busy_run_under_ten_calls_a_minute_after_its_first():
    busy = _simulate(lambda tick: True, sacct_every=3)       # the queue changes at every tick, sacct often
    assert _most_in_a_minute(busy) <= 60 / CRUISE_SECONDS == 10
    assert 10 < len([t for t in busy if t < 60]) <= 40       # a prompt start: several calls in the first minute
    idle = _simulate(lambda tick: False)                     # nothing changes: back off to a call a minute
    assert _most_in_a_minute(idle, after=300) <= 60 / MAX_SECONDS + 1
    assert len(idle) < 40


def _foreign_view(workdir, states):
    """Write a view of the queue from another process (what a driver's watcher leaves in the workdir)."""
    code = textwrap.dedent(f"""
        from mempamal.backends.slurm.watcher import write_view
        write_view({str(workdir)!r}, ["41"], {states!r}, fresh_for=30.0)
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_fresh_view_of_another_process_is_read_instead_of_asking_squeue(tmp_path, monkeypatch):
    (tmp_path / "submissions").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))  # any call would fail: none is made
    _foreign_view(tmp_path, {"41_0": ["RUNNING", "None"], "41_1": ["PENDING", "Resources"]})
    watcher = SlurmWatcher()
    assert watcher.view(tmp_path, ["41"]) == {"41_0": ("RUNNING", "None"), "41_1": ("PENDING", "Resources")}
    token = watcher.watch(tmp_path, ["41"])
    assert watcher.poll() and watcher.states(["41"])["41_0"] == ("RUNNING", "None")
    assert watcher.calls == 0
    watcher.unwatch(token)
    # this process's own view is no other process's: its watcher asks for itself
    write_view(tmp_path, ["41"], {"41_0": ["COMPLETED", "None"]}, fresh_for=30.0)
    assert read_view(tmp_path, foreign_only=True) is None and read_view(tmp_path)["states"]["41_0"][0] == "COMPLETED"
    # a stale view is nobody's: status asks squeue once (here it cannot: it says so)
    view = json.loads((tmp_path / "submissions" / "slurm-queue.cache").read_text())
    view["written"] -= 3600
    (tmp_path / "submissions" / "slurm-queue.cache").write_text(json.dumps(view))
    assert watcher.view(tmp_path, ["41"]) is None and watcher.calls == 1


def _wrappers(tmp_path):
    """A folder of logging wrappers around Slurm's commands; returns (folder, log file)."""
    folder, log = tmp_path / "slurm-bin", tmp_path / "calls.log"
    folder.mkdir()
    for command in COMMANDS:
        real = shutil.which(command)
        if real is None:
            continue
        script = folder / command
        script.write_text(f'#!/bin/sh\necho "$(date +%s.%N) $PPID {command}" >> "{log}"\nexec "{real}" "$@"\n')
        script.chmod(0o755)
    return folder, log


def _calls(log):
    rows = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    return [(float(t), int(pid), command) for t, pid, command in rows]


def _sleepy(seconds):
    """Every fit sleeps ``seconds`` in a Slurm job (cloudpickle ships the function by value to the jobs);
    scikit-learn's reference, computed here, does not wait."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    def sleep_then_identity(data):
        if "SLURM_JOB_ID" in os.environ:
            time.sleep(seconds)
        return data

    return mp.Experiment(make_pipeline(FunctionTransformer(sleep_then_identity), LogisticRegression(max_iter=300)),
                         param_grid={"logisticregression__C": [0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]},
                         cv=3, inner_cv=2, final_fit=False)


@pytest.fixture
def slurm():
    require_slurm()


def test_a_driver_makes_at_most_ten_calls_a_minute_and_an_attached_process_none(slurm, tmp_path, monkeypatch):
    folder, log = _wrappers(tmp_path)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    experiment = _sleepy(3.0)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)  # 48 fits of 3 s: ~2 min on 2 CPUs
    code = f"import mempamal as mp; mp.Workflow.open({str(workflow.workdir)!r}).run(backend='slurm', n_jobs=2, " \
           "tasks_per_job=1, progress=False)"
    driver = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (workflow.workdir / "submissions" / "slurm-queue.cache").exists():
            assert time.monotonic() < deadline and driver.poll() is None, "the driver never polled"
            time.sleep(0.2)
        run = workflow.attach()  # the driver holds the lock: this process only watches
        views = []
        while driver.poll() is None:  # a notebook refreshing its panel 5 times a second
            views.append(workflow.status()["jobs"]), run.status(), repr(run)
            time.sleep(0.2)
        assert driver.wait() == 0, driver.stderr.read()
        run.wait(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert_results = mp.Results.load(workflow.workdir)
    from conftest import assert_matches_sklearn

    assert_matches_sklearn(assert_results, experiment, X, y)
    # what the attached process showed: the driver's view of the queue
    assert any(view and view.get("running", 0) >= 1 for view in views), views[:5]
    calls = _calls(log)
    start, end = calls[0][0], max(t for t, _, _ in calls)
    print(f"{len(calls)} calls in {end - start:.0f} s:",
          {command: sum(c == command for _, _, c in calls) for command in COMMANDS})
    assert end - start > 90, "the run was too short to measure its second minute"
    driver_calls = [t - start for t, pid, _ in calls if pid == driver.pid]
    mine = [t - start for t, pid, _ in calls if pid == os.getpid()]
    assert _most_in_a_minute(driver_calls) <= 10, driver_calls
    assert len([t for t in mine if t >= 60]) == 0, mine  # the attached process read the driver's view
    assert _most_in_a_minute(sorted(driver_calls + mine)) <= 10
