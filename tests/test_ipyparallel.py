"""ipyparallel specifics on a real cluster: engine death, existing clusters, isolation."""

import os
import signal
import textwrap
import threading
import time

from sklearn.datasets import load_iris

import mempamal as mp

from conftest import assert_matches_sklearn

X, y = load_iris(return_X_y=True)


def _cluster_processes(marker):
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if marker in handle.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


SLOW_MODULE = textwrap.dedent("""
    import time
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.linear_model import LogisticRegression

    class SlowLogistic(ClassifierMixin, BaseEstimator):
        def __init__(self, C=1.0, delay=0.4):
            self.C, self.delay = C, delay
        def fit(self, X, y):
            time.sleep(self.delay)
            self.model_ = LogisticRegression(C=self.C, max_iter=300).fit(X, y)
            self.classes_ = self.model_.classes_
            return self
        def predict(self, X):
            return self.model_.predict(X)
""")


def test_killing_an_engine_mid_run_still_finishes_with_sklearns_answer(tmp_path, monkeypatch):
    (tmp_path / "slowmod.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # engines start in this cwd, so they import slowmod too
    from slowmod import SlowLogistic
    from mempamal.backends.ipyparallel import LocalCluster

    experiment = mp.Experiment(SlowLogistic(), param_grid={"C": [0.1, 1.0, 10.0]}, cv=3, inner_cv=2)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    with LocalCluster(2) as local:
        pids = local.client[:].apply_sync(os.getpid)
        outputs = workflow.workdir / "outputs"

        def kill_one_engine_mid_run():
            while len(list(outputs.glob("*.json"))) < 3:
                time.sleep(0.05)
            os.kill(pids[0], signal.SIGKILL)

        killer = threading.Thread(target=kill_one_engine_mid_run)
        killer.start()
        results = workflow.run(backend="ipyparallel", client=local.client, progress=False)
        killer.join()
        assert pids[0] not in local.client[:].apply_sync(os.getpid)
    assert_matches_sklearn(results, experiment, X, y)


def test_a_given_client_is_left_running(tmp_path):
    from mempamal.backends.ipyparallel import LocalCluster

    workflow = mp.Experiment(mp_estimator(), cv=3).build(X, y, workdir=tmp_path / "wd")
    with LocalCluster(1) as local:
        workflow.run(backend="ipyparallel", client=local.client, progress=False)
        assert len(local.client[:].apply_sync(os.getpid)) == 1


def test_auto_started_cluster_is_private_and_stopped(tmp_path):
    home = os.environ["HOME"]
    before = set(os.listdir(home))
    workflow = mp.Experiment(mp_estimator(), cv=3).build(X, y, workdir=tmp_path / "wd")
    workflow.run(backend="ipyparallel", n_jobs=2, progress=False)
    deadline = time.time() + 15
    while _cluster_processes(b"mempamal-ipp-") and time.time() < deadline:
        time.sleep(0.2)  # engine nannies exit a few seconds after the stop
    assert _cluster_processes(b"mempamal-ipp-") == []
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
    process = subprocess.Popen([sys.executable, str(script), str(workdir)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((workdir / "outputs").glob("*.json")) if workdir.exists() else []) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=90)
    assert "INTERRUPTED" in stdout, stderr
    deadline = time.time() + 15
    while _cluster_processes(b"mempamal-ipp-") and time.time() < deadline:
        time.sleep(0.2)
    assert _cluster_processes(b"mempamal-ipp-") == []
    workflow = mp.Workflow.open(workdir)
    assert 0 < workflow.status()["done"] < len(workflow.tasks)
