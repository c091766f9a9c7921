"""The slurm backend on a private Slurm of two nodes with their own host names (issue 25, part 1).

Nodes ``n1`` and ``n2`` are slurmd daemons in their own UTS namespaces
(``ci/slurm/start-private.sh``), sharing this machine's filesystem as
cluster nodes share a workdir.  Every task output records the host it ran on.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp
from mempamal import store
from mempamal.store import integrity
from mempamal.store.lock import read_holder

from conftest import assert_matches_sklearn
from private_slurm import private_slurm_fixture

X, y = load_iris(return_X_y=True)
private_slurm = private_slurm_fixture(nodes=2)


@pytest.fixture
def cluster(private_slurm, monkeypatch):
    """The private cluster, with SLURM_CONF pointing at it for this test (and the jobs it submits)."""
    monkeypatch.setenv("SLURM_CONF", private_slurm.conf)
    yield private_slurm
    private_slurm.cancel_all()


def _slow_experiment(delay=0.3):
    """Every fit sleeps ``delay`` s (a local function: cloudpickle ships it by value to the jobs)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    def slow_identity(data):
        time.sleep(delay)
        return data

    return mp.Experiment(make_pipeline(FunctionTransformer(slow_identity), LogisticRegression(max_iter=300)),
                         param_grid={"logisticregression__C": [0.1, 1.0]}, cv=3, inner_cv=2, final_fit=False)


def _hosts(workflow):
    """``{task_id: host}`` read from the task outputs (the ``host`` key every output carries)."""
    hosts = {}
    for task_id in store.finished_task_ids(workflow.workdir):
        output = integrity.load_output(store.output_path(workflow.workdir, task_id))[0]
        hosts[task_id] = output["host"]
    return hosts


def _driver(workdir, env, **options):
    code = textwrap.dedent(f"""
        import mempamal as mp
        mp.Workflow.open({str(workdir)!r}).run(backend="slurm", progress=False, **{options!r})
    """)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)


def _wait_until(condition, timeout=180, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)


def test_jobs_of_one_run_land_on_both_nodes(cluster, tmp_path):
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    results = workflow.run(backend="slurm", tasks_per_job=2, progress=False, poll_seconds=0.2)
    assert_matches_sklearn(results, experiment, X, y)
    hosts = _hosts(workflow)
    assert set(hosts) == {task.id for task in workflow.tasks}
    assert set(hosts.values()) == {"n1", "n2"}, hosts  # not this machine's own name: the nodes'


def test_a_node_killed_mid_run_then_a_rerun_finishes_with_sklearns_answer(cluster, tmp_path):
    workflow = _slow_experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    driver = _driver(workflow.workdir, cluster.env, tasks_per_job=1, poll_seconds=0.2)
    try:
        # both nodes busy with this run's jobs, some outputs written
        _wait_until(lambda: set(_hosts(workflow).values()) == {"n1", "n2"}, what="outputs from both nodes")
        killed = cluster.kill_node("n1")  # slurmd and its running jobs: SIGKILL, as a node lost
        assert len(killed) >= 2, killed   # slurmd plus at least one job process
        os.kill(driver.pid, signal.SIGINT)  # the user interrupts the run
        _, stderr = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode != 0 and "KeyboardInterrupt" in stderr, stderr[-2000:]
    before = _hosts(workflow)
    assert 0 < len(before) < len(workflow.tasks)
    # slurmctld notices the dead node by itself (SlurmdTimeout=10 in the private slurm.conf)
    assert "down" in cluster.wait_node("n1", ("down",))
    results = workflow.run(backend="slurm", tasks_per_job=1, progress=False, poll_seconds=0.2)
    assert_matches_sklearn(results, _slow_experiment(), X, y)
    after = _hosts(workflow)
    assert {after[task_id] for task_id in set(after) - set(before)} == {"n2"}  # the rest ran on the live node
    assert all(after[task_id] == host for task_id, host in before.items())   # nothing done was redone


def _lock_probe(env, host, workdir, stale_seconds=None):
    """A second driver on host ``host`` (its own UTS namespace) trying to run ``workdir``.

    Prints ``refused: <message>`` or ``took over <holder host> <holder pid>``.
    """
    code = textwrap.dedent(f"""
        import socket
        from mempamal.exceptions import WorkdirLocked
        from mempamal.store.lock import WorkdirLock
        assert socket.gethostname() == {host!r}
        lock = WorkdirLock({str(workdir)!r}, stale_seconds={stale_seconds!r})
        try:
            lock.acquire()
        except WorkdirLocked as exc:
            print("refused:", exc)
        else:
            print("took over", (lock.took_over or {{}}).get("host"), (lock.took_over or {{}}).get("pid"))
            lock.release()
    """)
    command = [sys.executable, "-c", code]
    if host != os.uname().nodename:
        command = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_workdir_lock_across_hosts(cluster, tmp_path):
    """Another host is refused while the holder lives; its dead pid is judged only on its own host."""
    here = os.uname().nodename
    workflow = _slow_experiment(delay=1.0).build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    driver = _driver(workflow.workdir, cluster.env, tasks_per_job=1, poll_seconds=0.2)
    try:
        _wait_until(lambda: read_holder(workflow.workdir) is not None, what="the first driver's lock")
        answer = _lock_probe(cluster.env, "n2", workflow.workdir)
        assert answer.startswith("refused:") and f"pid {driver.pid} on host {here}" in answer, answer
        driver.kill()  # SIGKILL: the lock file stays, naming a dead pid on this host
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert read_holder(workflow.workdir)["pid"] == driver.pid
    # On host n2 the pid means nothing: refused while the heartbeat is young...
    answer = _lock_probe(cluster.env, "n2", workflow.workdir)
    assert answer.startswith("refused:") and f"on host {here}" in answer, answer
    # ...taken over once the heartbeat is older than the stale limit...
    time.sleep(2.5)
    assert _lock_probe(cluster.env, "n2", workflow.workdir, stale_seconds=2) == f"took over {here} {driver.pid}"
    # ...while on the holder's own host the dead pid is enough, whatever the heartbeat's age.
    cluster.cancel_all()
    second = _driver(workflow.workdir, cluster.env, tasks_per_job=1, poll_seconds=0.2)
    try:
        _wait_until(lambda: (read_holder(workflow.workdir) or {}).get("pid") == second.pid, what="a second lock")
        second.kill()
        second.wait()
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    assert _lock_probe(cluster.env, here, workflow.workdir) == f"took over {here} {second.pid}"
