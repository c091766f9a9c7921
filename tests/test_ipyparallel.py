"""ipyparallel specifics on a real cluster: engine death, existing clusters, isolation."""

import os
import re
import signal
import textwrap
import threading
import time

import pytest
from sklearn.datasets import load_iris

import mempamal as mp

from slurm_cluster import require_slurm
from conftest import GATED_MODULE, SLOW_MODULE, assert_matches_sklearn, comparable, running_pids, squeue_job_ids

X, y = load_iris(return_X_y=True)


def _cluster_processes(marker):
    """Controller, engines and engine nannies whose IPython dir is under ``marker``.

    Found by environment, not command line: a nanny's command line is just
    ``python -m ipyparallel.engine.nanny``.
    """
    import psutil

    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("IPYTHONDIR", "").startswith(str(marker)):
                found.append(process.pid)
        except psutil.Error:
            pass
    return found


def _gated_experiment(tmp_path, monkeypatch):
    """A nested search whose fits wait at ``tmp_path/gate``; engines started in tmp_path import its module."""
    (tmp_path / "gatemod.py").write_text(GATED_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # engines start in this cwd, so they import gatemod too
    (tmp_path / "gate").mkdir()
    from gatemod import GatedLogistic

    return (mp.Experiment(GatedLogistic(gate=str(tmp_path / "gate")), param_grid={"C": [0.1, 1.0]}, cv=3,
                          inner_cv=2, final_fit=False),
            mp.Experiment(GatedLogistic(), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2, final_fit=False))


def test_an_engine_killed_mid_task_does_not_fail_it_the_task_goes_to_the_other_engine(tmp_path, monkeypatch):
    import psutil
    from mempamal.backends.ipyparallel import LocalCluster

    experiment, reference = _gated_experiment(tmp_path, monkeypatch)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    with LocalCluster(2) as local:
        pids = local.client[:].apply_sync(os.getpid)

        def kill_the_engine_running_a_task():
            [pid] = running_pids(tmp_path / "gate")
            assert pid in pids
            psutil.Process(pid).kill()
            killed.append(pid)
            (tmp_path / "gate" / "open").touch()

        killed = []
        killer = threading.Thread(target=kill_the_engine_running_a_task)
        killer.start()
        results = workflow.run(backend="ipyparallel", client=local.client, progress=False)  # retries=1
        killer.join()
        assert killed and killed[0] not in local.client[:].apply_sync(os.getpid)  # one engine did all the rest
    assert_matches_sklearn(results, reference, X, y)


def test_when_every_engine_is_gone_the_run_ends_saying_so_and_resumes_on_new_engines(tmp_path, monkeypatch):
    import psutil
    from mempamal.backends import ipyparallel as ipp_backend

    monkeypatch.setattr(ipp_backend, "ENGINE_WAIT_SECONDS", 2)
    experiment, reference = _gated_experiment(tmp_path, monkeypatch)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    with ipp_backend.LocalCluster(2) as local:
        pids = local.client[:].apply_sync(os.getpid)

        def kill_both_engines_mid_task():
            running = running_pids(tmp_path / "gate", n=2)
            assert sorted(running) == sorted(pids)
            for pid in running:
                psutil.Process(pid).kill()
            (tmp_path / "gate" / "open").touch()

        killer = threading.Thread(target=kill_both_engines_mid_task)
        killer.start()
        with pytest.raises(mp.WorkersLost) as info:  # a cluster of the user's: no engine is started for them
            workflow.run(backend="ipyparallel", client=local.client, progress=False)
        killer.join()
        message = str(info.value)
        assert message.startswith("Every ipyparallel engine of the run is gone (none for ")
        assert "They did not fail" in message and "start engines (ipcluster start -n N)" in message
        assert "failed" not in message.split("They did not fail")[1]
        assert info.value.failed == {} and info.value.not_run == len(workflow.tasks)
        assert workflow.status()["failed"] == 0
        # New engines: the same workdir resumes, and its answer is scikit-learn's.
        local.add_engine()
        # Not client.wait_for_engines: it re-raises the "engine set stopped"
        # ipyparallel records when the killed engines' set ends (a race).
        deadline = time.monotonic() + 120
        while not local.client.ids:
            assert time.monotonic() < deadline, "the new engine never registered"
            time.sleep(0.2)
        results = workflow.run(backend="ipyparallel", client=local.client, progress=False)
    assert_matches_sklearn(results, reference, X, y)


@pytest.fixture(scope="module")
def cluster():
    from mempamal.backends.ipyparallel import LocalCluster

    with LocalCluster(2) as local:
        yield local


def test_a_running_cluster_given_by_client_or_by_profile_and_cluster_id_is_left_running(cluster, tmp_path):
    pids = sorted(cluster.client[:].apply_sync(os.getpid))
    experiment = mp.Experiment(mp_estimator(), cv=3)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    workflow.run(backend="ipyparallel", client=cluster.client, progress=False)
    assert sorted(cluster.client[:].apply_sync(os.getpid)) == pids
    other = experiment.build(X, y, workdir=tmp_path / "other")
    results = other.run(backend="ipyparallel", profile_dir=cluster.cluster.profile_dir,
                        cluster_id=cluster.cluster.cluster_id, progress=False)
    assert sorted(cluster.client[:].apply_sync(os.getpid)) == pids
    assert comparable(results.raw) == comparable(mp.Results.load(workflow.workdir).raw)


def test_a_task_that_raises_on_its_engine_is_reported_by_id_with_the_remote_traceback(cluster, tmp_path):
    workflow = mp.Experiment(mp_estimator(), cv=3).build(X, y, workdir=tmp_path / "wd")
    engines = cluster.client[:]
    # The engines cannot unpickle mempamal's task function: the call itself raises there.
    engines.execute("import sys; _saved = sys.modules.pop('mempamal.backends.ipyparallel', None); "
                    "sys.modules['mempamal.backends.ipyparallel'] = None", block=True)
    try:
        with pytest.raises(mp.WorkflowError) as info:
            workflow.run(backend="ipyparallel", client=cluster.client, progress=False)
    finally:
        engines.execute("sys.modules['mempamal.backends.ipyparallel'] = _saved", block=True)
    failed = info.value.failed
    assert {"score-o0", "score-o1", "score-o2"} <= set(failed)
    assert "'score-o1'" in failed["score-o1"] and "Remote traceback" in failed["score-o1"]
    assert "\x1b[" not in failed["score-o1"]
    assert failed["final"].startswith("not run")
    # Nothing was half-done: the engines work again and the run resumes.
    workflow.run(backend="ipyparallel", client=cluster.client, progress=False)


def test_with_retries_0_a_task_whose_engine_died_is_reported_and_the_others_finish(cluster, tmp_path, monkeypatch):
    # Last user of the module's cluster: it loses an engine here.
    (tmp_path / "slowmod.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    engines = cluster.client[:]
    engines.execute(f"import sys; sys.path.insert(0, {str(tmp_path)!r})", block=True)
    from slowmod import SlowLogistic

    workflow = mp.Experiment(SlowLogistic(delay=1.5), cv=3).build(X, y, workdir=tmp_path / "wd")
    victim_id = cluster.client.ids[0]
    victim_pid = cluster.client[victim_id].apply_sync(os.getpid)
    watcher = cluster.cluster.connect_client_sync()  # a Client is not thread-safe: one per thread

    def kill_the_victim_once_it_runs_a_task():
        while watcher.queue_status(targets=victim_id)["tasks"] == 0:
            time.sleep(0.05)
        os.kill(victim_pid, signal.SIGKILL)
        watcher.close()

    threading.Thread(target=kill_the_victim_once_it_runs_a_task, daemon=True).start()
    with pytest.raises(mp.WorkflowError) as info:
        workflow.run(backend="ipyparallel", client=cluster.client, retries=0, progress=False)
    died = {task_id: message for task_id, message in info.value.failed.items()
            if "not run to the end (worker lost): its ipyparallel engine died 1 time(s)" in message}
    assert len(died) == 1 and "did not raise" in next(iter(died.values()))
    assert str(info.value).startswith("0 task(s) failed, 2 not run because their worker died")
    assert workflow.status()["by_kind"]["score"]["done"] == 2
    assert workflow.status()["failed"] == 0  # pending, as the error counts it
    assert info.value.failed["final"].startswith("not run")


def test_auto_started_cluster_is_private_and_stopped(tmp_path, monkeypatch):
    import tempfile

    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))  # where LocalCluster makes its dir
    home = os.environ["HOME"]
    before = set(os.listdir(home))
    experiment = mp.Experiment(mp_estimator(), cv=3)
    results = experiment.build(X, y, workdir=tmp_path / "wd").run(backend="ipyparallel", n_jobs=2, progress=False)
    assert_matches_sklearn(results, experiment, X, y)
    assert _cluster_processes(private_tmp) == []  # nannies included, no grace period
    assert list(private_tmp.iterdir()) == []
    assert set(os.listdir(home)) == before
    assert not os.path.exists(os.environ["IPYTHONDIR"])


def mp_estimator():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=300)


def test_ctrl_c_aborts_engines_stops_private_cluster_and_keeps_finished_work(tmp_path):
    import subprocess
    import sys

    (tmp_path / "slowmod.py").write_text(SLOW_MODULE)
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import sys
        from sklearn.datasets import load_iris
        import mempamal as mp
        from slowmod import SlowLogistic
        X, y = load_iris(return_X_y=True)
        exp = mp.Experiment(SlowLogistic(), param_grid={"C": [0.1, 1.0, 10.0]}, cv=3, inner_cv=2)
        wf = exp.build(X, y, workdir=sys.argv[1], chunk_size=1)
        try:
            wf.run(backend="ipyparallel", n_jobs=2, progress=False)
        except KeyboardInterrupt:
            print("INTERRUPTED")
    """))
    workdir = tmp_path / "wd"
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    process = subprocess.Popen([sys.executable, str(script), str(workdir)], cwd=tmp_path,
                               env={**os.environ, "TMPDIR": str(private_tmp)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((workdir / "outputs").glob("*/*.json")) if workdir.exists() else []) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=90)
    assert "INTERRUPTED" in stdout, stderr
    assert _cluster_processes(private_tmp) == []  # nannies included: they used to hang here
    workflow = mp.Workflow.open(workdir)
    assert 0 < workflow.status()["done"] < len(workflow.tasks)


def test_auto_started_slurm_engines_are_jobs_in_squeue_give_sklearns_answer_and_are_stopped(tmp_path, monkeypatch):
    require_slurm()
    import tempfile

    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))  # where LocalCluster makes its dir
    monkeypatch.chdir(tmp_path)
    seen, done = set(), threading.Event()

    def watch_squeue():
        while not done.is_set():
            seen.update(squeue_job_ids("ipengine-mempamal"))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch_squeue, daemon=True)
    watcher.start()
    experiment = mp.Experiment(mp_estimator(), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    try:
        results = experiment.build(X, y, workdir=tmp_path / "wd").run(
            backend="ipyparallel", engines="slurm", n_jobs=2, progress=False)
    finally:
        done.set()
        watcher.join()
    assert seen, "no engine job was seen in squeue during the run"
    deadline = time.monotonic() + 60
    while seen & squeue_job_ids("ipengine-mempamal") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not seen & squeue_job_ids("ipengine-mempamal")  # cancelled with the cluster
    assert_matches_sklearn(results, experiment, X, y)
    assert _cluster_processes(private_tmp) == []
    assert sorted(os.listdir(tmp_path)) == ["tmp", "wd"]  # no sbatch script or job log in the cwd
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("options, message", [
    ({"engines": 3}, "'engines' parameter of the ipyparallel backend must be an ipyparallel launcher name"),
    ({"engines": ""}, "'engines' parameter of the ipyparallel backend must be an ipyparallel launcher name"),
    ({"cluster_options": "slurm"}, "'cluster_options' parameter of the ipyparallel backend must be a dict"),
    ({"engines": "slurm", "profile": "x"}, "'engines' and 'cluster_options' configure a cluster"),
    ({"threads_per_engine": 0}, "'threads_per_engine' parameter of the ipyparallel backend must be an int in the range [1, inf)"),
])
def test_bad_ipyparallel_options_are_refused_before_anything_runs(tmp_path, options, message):
    workflow = mp.Experiment(mp_estimator(), cv=3).build(X, y, workdir=tmp_path / "wd")
    with pytest.raises(ValueError, match=re.escape(message)):
        workflow.run(backend="ipyparallel", progress=False, **options)
    assert workflow.status()["done"] == 0
