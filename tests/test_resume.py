"""Files are the truth: same answers for any n_jobs/chunking, resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp
from mempamal import store

from conftest import assert_matches_sklearn, comparable


def _experiment(**kwargs):
    options = dict(param_grid={"C": [0.01, 0.1, 1.0, 10.0]}, cv=3, inner_cv=3, scoring=["accuracy", "f1_macro"],
                   refit="f1_macro", n_permutations=2, random_state=0)
    return mp.Experiment(LogisticRegression(max_iter=500), **{**options, **kwargs})


def test_results_identical_for_n_jobs_1_and_2_and_any_chunking(tmp_path):
    X, y = load_iris(return_X_y=True)
    raws = []
    for n_jobs, chunk_size in [(1, "auto"), (2, 1), (2, 3), (1, 4)]:
        workdir = tmp_path / f"wd-{n_jobs}-{chunk_size}"
        # one permutation: the permuted graph is chunked too; the final search is kept (chunked as well)
        _experiment(n_permutations=1).build(X, y, workdir=workdir, chunk_size=chunk_size).run(n_jobs=n_jobs, progress=False)
        raws.append(comparable(json.loads((workdir / "results.json").read_text())))
    assert all(raw == raws[0] for raw in raws[1:])


def test_rebuilding_the_same_experiment_reuses_finished_work(tmp_path):
    X, y = load_iris(return_X_y=True)
    workdir = tmp_path / "wd"
    workflow = _experiment().build(X, y, workdir=workdir)
    first = workflow.tasks[0].id
    mp.run_task(workdir, first)
    stamp = os.stat(store.output_path(workdir, first)).st_mtime_ns
    again = _experiment().build(X, y, workdir=workdir)
    assert again.status()["done"] == 1
    again.run(n_jobs=1, progress=False)
    assert os.stat(store.output_path(workdir, first)).st_mtime_ns == stamp


def test_rebuilding_with_other_chunking_drops_only_changed_tasks(tmp_path):
    X, y = load_iris(return_X_y=True)
    workdir = tmp_path / "wd"
    small = dict(n_permutations=0, final_fit=False)  # 4 grid points kept: chunks of 2 and of 4 differ
    _experiment(**small).build(X, y, workdir=workdir, chunk_size=2).run(n_jobs=1, progress=False)
    before = comparable(json.loads((workdir / "results.json").read_text()))
    workflow = _experiment(**small).build(X, y, workdir=workdir, chunk_size=4)
    status = workflow.status()
    assert 0 < status["done"] < status["total"]
    workflow.run(n_jobs=1, progress=False)
    assert comparable(json.loads((workdir / "results.json").read_text())) == before


def test_task_output_exists_means_done_and_is_skipped(tmp_path):
    X, y = load_iris(return_X_y=True)
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd")
    task_id = workflow.tasks[0].id
    assert mp.run_task(workflow.workdir, task_id) == "done"
    assert mp.run_task(workflow.workdir, task_id) == "skipped"


SLOW_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    import mempamal as mp

    class SlowLogistic(ClassifierMixin, BaseEstimator):
        # Defined in __main__: workers get it through cloudpickle.
        def __init__(self, C=1.0, delay=0.15):
            self.C, self.delay = C, delay
        def fit(self, X, y):
            time.sleep(self.delay)
            self.model_ = LogisticRegression(C=self.C, max_iter=500).fit(X, y)
            self.classes_ = self.model_.classes_
            return self
        def predict(self, X):
            return self.model_.predict(X)

    X, y = load_iris(return_X_y=True)
    # no final search (test_final_model's): 18 fits + 3 selects, still mid-run after 6
    exp = mp.Experiment(SlowLogistic(), param_grid={"C": [0.1, 1.0, 10.0]}, cv=3, inner_cv=2, final_fit=False)
    wf = exp.build(X, y, workdir=sys.argv[1], chunk_size=1)
    wf.run(n_jobs=2, progress=False)
""")


def test_sigkill_mid_run_then_rerun_finishes_identically_and_redoes_only_unfinished(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(SLOW_SCRIPT)
    workdir = tmp_path / "wd"
    process = subprocess.Popen([sys.executable, str(script), str(workdir)], start_new_session=True)
    outputs = workdir / "outputs"
    deadline = time.time() + 120
    while time.time() < deadline:
        done = list(outputs.glob("*/*.json")) if outputs.exists() else []
        if len(done) >= 6:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the driver and its workers
    process.wait()
    finished = {path.relative_to(outputs): path.stat().st_mtime_ns for path in outputs.glob("*/*.json")}
    workflow = mp.Workflow.open(workdir)
    assert 6 <= len(finished) < len(workflow.tasks), "the kill should land mid-run"
    assert not (workdir / "results.json").exists()
    # Every surviving output is complete JSON (atomic writes).
    for name in finished:
        json.loads((outputs / name).read_text())

    rerun = subprocess.run([sys.executable, str(script), str(workdir)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    for name, stamp in finished.items():
        assert (outputs / name).stat().st_mtime_ns == stamp, f"{name} was recomputed"
    assert mp.Workflow.open(workdir).status()["pending"] == 0

    # The resumed answer is scikit-learn's.
    check = tmp_path / "check.py"
    check.write_text(SLOW_SCRIPT.replace("wf.run(n_jobs=2, progress=False)", textwrap.dedent("""
        sys.path.insert(0, sys.argv[2])
        from conftest import assert_matches_sklearn
        assert_matches_sklearn(mp.Results.load(sys.argv[1]), exp, X, y)
        print("MATCH")
    """)))
    verdict = subprocess.run([sys.executable, str(check), str(workdir), os.path.dirname(__file__)],
                             capture_output=True, text=True)
    assert "MATCH" in verdict.stdout, verdict.stderr


def test_estimator_class_defined_in_main_runs_in_worker_processes(tmp_path):
    script = tmp_path / "main_class.py"
    script.write_text(SLOW_SCRIPT.replace("delay=0.15", "delay=0.0") + textwrap.dedent("""
        sys.path.insert(0, sys.argv[2])
        from conftest import assert_matches_sklearn
        assert_matches_sklearn(mp.Results.load(sys.argv[1]), exp, X, y)
        print("MATCH")
    """))
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "wd"), os.path.dirname(__file__)],
                          capture_output=True, text=True)
    assert "MATCH" in done.stdout, done.stderr


def test_interrupted_results_are_not_loadable_until_finished(tmp_path):
    X, y = load_iris(return_X_y=True)
    small = dict(param_grid={"C": [0.1, 1.0]}, n_permutations=1, final_fit=False)  # a p-value needs 1 permutation
    workflow = _experiment(**small).build(X, y, workdir=tmp_path / "wd")
    try:
        mp.Results.load(tmp_path / "wd")
    except mp.WorkdirError as exc:
        assert "unfinished" in str(exc)
    else:
        raise AssertionError("Results.load should refuse an unfinished workdir")
    results = workflow.run(n_jobs=1, progress=False)
    assert_matches_sklearn(results, _experiment(**small), X, y)
    assert np.isfinite(results.pvalue)


def test_ctrl_c_on_cli_run_stops_cleanly_keeping_finished_work(tmp_path):
    script = tmp_path / "build_only.py"
    # the full graph (inner_cv=3, final search): Ctrl-C after 4 outputs must land mid-run
    script.write_text(SLOW_SCRIPT.replace("wf.run(n_jobs=2, progress=False)", "")
                      .replace("inner_cv=2, final_fit=False)", "inner_cv=3)"))
    workdir = tmp_path / "wd"
    built = subprocess.run([sys.executable, str(script), str(workdir)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    process = subprocess.Popen([sys.executable, "-m", "mempamal", "run", str(workdir), "-n", "2", "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = workdir / "outputs"
    deadline = time.time() + 120
    while len(list(outputs.glob("*/*.json"))) < 4 and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted; finished tasks are kept" in stderr
    kept = list(outputs.glob("*/*.json"))
    assert kept and all(json.loads(path.read_text()) for path in kept)
    status = mp.Workflow.open(workdir).status()
    assert 0 < status["done"] < status["total"]
    finished = subprocess.run([sys.executable, "-m", "mempamal", "run", str(workdir), "--no-progress"],
                              capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
