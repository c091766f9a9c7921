"""SIGKILL of a real ``mempamal run`` at six moments of one run, then resume.

Each moment is reached deterministically (lock file, output counts, marker
files left by the estimator), the CLI is killed with its workers (SIGKILL to
its process group: what a node crash or the OOM killer does), and the next run
resumes, taking over the lock the killed runner left.  After every kill, every output on disk must be complete and
trusted; no output seen after a kill may ever be rewritten (same mtime, same
writer pid); the final answer must be scikit-learn's and equal to an
uninterrupted run's.
"""

import os
import signal

import mempamal as mp
from mempamal import store
from mempamal.store.lock import read_holder

from slow_experiment import (
    cli, fingerprints_of_outputs, output_files, process_group_gone, script, start_cli, wait_until, write_script,
)


def _kill_group(process, workdir):
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    wait_until(lambda: process_group_gone(process.pid), timeout=30, what="the killed run's workers to exit")
    # The dead runner's lock stays behind; the next run must take it over.
    assert read_holder(workdir)["pid"] == process.pid


def _markers_from(folder, kind, pid=None):
    return [p for p in folder.glob(f"{kind}-*") if pid is None or p.name.split("-")[1] == str(pid)]


def test_sigkill_at_six_moments_resumes_to_sklearn_with_nothing_redone(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    path = write_script(tmp_path, delay=0.1, load_delay=0.3, markers=markers)
    workdir = tmp_path / "wd"
    built = script(path, "build", workdir)
    assert built.returncode == 0, built.stderr
    n_tasks = len(mp.Workflow.open(workdir).tasks)

    def at_least(fraction):
        return lambda process: len(output_files(workdir)) >= fraction * n_tasks

    def pool_started(process):  # a worker (not the driver) loads the workdir
        return [p for p in _markers_from(markers, "load") if p.name.split("-")[1] != str(process.pid)]

    moments = [
        ("start-up: lock taken, nothing done", lambda process: (workdir / "run.lock").exists()),
        ("pool start: a worker loading the workdir", pool_started),
        ("a quarter of the tasks done", at_least(0.25)),
        ("inside a select task (refitting)", lambda process: _markers_from(markers, "refit")),
        # no "over 80% done": killing between finished fits is the quarter's code path again
    ]
    kept, survived = {}, []
    for name, reached in moments:
        for marker in markers.iterdir():
            marker.unlink()
        process = start_cli("run", workdir, "-n", "2", "--no-progress")
        wait_until(lambda: reached(process) or process.poll() is not None, what=name)
        assert process.poll() is None, f"the run ended before '{name}': {process.communicate()}"
        _kill_group(process, workdir)
        survived.append(name)
        kept = _check_after_kill(workdir, kept, name)

    # Only `final` left: run the other tasks the way exported commands do.
    workflow = mp.Workflow.open(workdir)
    for task_id in workflow.pending_ids():
        if task_id != "final":
            assert mp.run_task(workdir, task_id) == "done"
    kept = _check_after_kill(workdir, kept, "tasks run one by one")
    assert mp.Workflow.open(workdir).pending_ids() == ["final"]

    # Inside `final`: a fresh worker loads the workdir for it (load marker).
    for marker in markers.iterdir():
        marker.unlink()
    process = start_cli("run", workdir, "-n", "2", "--no-progress")
    wait_until(lambda: pool_started(process), what="the worker running final to load the experiment")
    _kill_group(process, workdir)
    survived.append("inside final")
    kept = _check_after_kill(workdir, kept, "inside final")
    assert not store.output_path(workdir, "final").exists()

    # After `final`, while the driver loads the results it reports.
    process = start_cli("run", workdir, "-n", "2", "--no-progress")
    wait_until(lambda: _markers_from(markers, "load", process.pid), what="the driver to load the results")
    _kill_group(process, workdir)
    survived.append("after final, loading results")
    kept = _check_after_kill(workdir, kept, "after final")

    finished = cli("run", workdir, "-n", "2", "--no-progress")
    assert finished.returncode == 0, finished.stderr
    assert read_holder(workdir) is None
    assert len(survived) == 6
    redone = [name for name, stamp in kept.items() if fingerprints_of_outputs(workdir)[name] != stamp]
    assert redone == [], f"finished tasks were run again: {redone}"
    assert mp.Workflow.open(workdir).status()["pending"] == 0

    # scikit-learn's answer, and the same results.json as an uninterrupted run
    # of the same experiment (with no delay: it changes no score).
    verdict = script(path, "check", workdir, tmp_path / "uninterrupted")
    assert "MATCH" in verdict.stdout and "SAME" in verdict.stdout, verdict.stdout + verdict.stderr


def _check_after_kill(workdir, kept, moment):
    """Every output on disk is complete and trusted; none seen before changed."""
    now = fingerprints_of_outputs(workdir)  # json.loads of every file: complete
    for name, stamp in kept.items():
        assert now.get(name) == stamp, f"{name} changed after '{moment}'"
    status = mp.Workflow.open(workdir).status()
    assert status["untrusted"] == {}, status["untrusted"]
    assert status["done"] == len(now), (moment, status, len(now))
    return now
