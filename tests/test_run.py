"""Workflow.submit / mp.Run: the caller stays free, the answer is still scikit-learn's."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import mempamal as mp

from conftest import assert_matches_sklearn

X, y = load_iris(return_X_y=True)


def slow_identity(X):
    """A transformer step that takes a while: runs last long enough to be watched."""
    time.sleep(0.08)
    return X


def slow_experiment(**options):
    estimator = make_pipeline(FunctionTransformer(slow_identity), LogisticRegression(max_iter=300))
    return mp.Experiment(estimator, param_grid={"logisticregression__C": [0.1, 1.0]}, cv=3, inner_cv=2,
                         **options)


def poll_until(condition, timeout=120, interval=0.02):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


def test_submit_returns_at_once_and_wait_gives_sklearns_answer(tmp_path):
    experiment = slow_experiment()
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    run = workflow.submit(n_jobs=1)
    assert not run.done() and run.state == "running"
    counts = run.status()
    assert counts["done"] + counts["running"] + counts["pending"] + counts["failed"] == len(workflow.tasks)
    poll_until(lambda: run.status()["running"] == 1 or run.done())  # the one task executing in this process
    results = run.wait()
    assert run.done() and run.state == "finished" and run.status()["running"] == 0
    assert_matches_sklearn(results, experiment, X, y)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_running_counts_the_tasks_executing_never_more_than_the_workers(tmp_path, n_jobs):
    """Not the ready tasks (12 fits are ready at once): one task per batch on a worker."""
    workflow = slow_experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    assert sum(not task.deps for task in workflow.tasks) > n_jobs
    run = workflow.submit(n_jobs=n_jobs)
    seen = []
    while not run.done():
        counts = run.status()
        seen.append(counts["running"])
        running_kinds = {kind for kind, c in counts["by_kind"].items() if c["running"]}
        assert running_kinds <= {"fit", "select", "fit-all", "select-all", "final"}
        time.sleep(0.01)
    results = run.wait()
    assert max(seen) <= n_jobs, seen
    assert max(seen) == n_jobs  # every worker was seen busy
    assert run.status()["running"] == 0
    assert_matches_sklearn(results, slow_experiment(), X, y)


def test_partial_results_grow_fold_by_fold_and_end_as_to_frame(tmp_path):
    experiment = slow_experiment(final_fit=False)  # the final search: test_final_model
    run = experiment.build(X, y, workdir=tmp_path / "wd").submit(n_jobs=1)
    seen = set()
    while not run.done():
        seen.add(len(run.results()))
        time.sleep(0.02)
    results = run.wait()
    # Selects run as soon as their fits are done: folds appear one by one.
    assert {1, 2} <= seen, seen
    pd.testing.assert_frame_equal(run.results(), results.to_frame())
    assert_matches_sklearn(results, experiment, X, y)


def test_plain_cv_partial_results_equal_cross_validate(tmp_path):
    estimator = LogisticRegression(max_iter=300)
    run = mp.Experiment(estimator, cv=4).build(X, y, workdir=tmp_path / "wd").submit(n_jobs=2)
    run.wait()
    reference = cross_validate(estimator, X, y, cv=4)
    np.testing.assert_allclose(run.results()["test_score"], reference["test_score"], rtol=0, atol=1e-12)


def test_cancel_keeps_finished_outputs_and_a_new_run_completes(tmp_path):
    experiment = slow_experiment()
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    run = workflow.submit(n_jobs=1)
    poll_until(lambda: run.status()["done"] >= 2)
    run.cancel()
    assert run.done() and run.state == "cancelled"
    with pytest.raises(mp.RunCancelled):
        run.wait()
    kept = workflow.done_ids()
    assert 2 <= len(kept) < len(workflow.tasks)
    assert_matches_sklearn(workflow.run(n_jobs=1, progress=False), experiment, X, y)


def test_wait_with_timeout_raises_and_the_run_goes_on(tmp_path):
    run = slow_experiment().build(X, y, workdir=tmp_path / "wd").submit(n_jobs=1)
    with pytest.raises(TimeoutError, match="still going"):
        run.wait(timeout=0.05)
    assert not run.done()
    assert run.wait().n_outer == 3


def test_failed_tasks_are_reraised_by_wait_as_workflow_error(tmp_path):
    experiment = mp.Experiment(LogisticRegression(C=-1.0), cv=3, error_score="raise")
    run = experiment.build(X, y, workdir=tmp_path / "wd").submit(n_jobs=1)
    # error_score="raise": the estimator's own error, raised from the WorkflowError of the run.
    with pytest.raises(ValueError, match="'C' parameter of LogisticRegression") as info:
        run.wait()
    assert isinstance(info.value.__cause__, mp.WorkflowError) and "score-o0" in str(info.value.__cause__)
    assert run.state == "failed" and run.status()["failed"] >= 1


@pytest.mark.parametrize("options, message", [
    ({"n_jobs": 0}, "'n_jobs' parameter"),
    ({"backend": "nope"}, "'backend' parameter"),
    ({"backend": "local", "threads_per_worker": 0}, "'threads_per_worker' parameter"),
])
def test_bad_arguments_raise_in_the_caller_before_anything_runs(tmp_path, options, message):
    workflow = mp.Experiment(LogisticRegression(), cv=3).build(X, y, workdir=tmp_path / "wd")
    with pytest.raises(ValueError, match=message):
        workflow.submit(**options)
    assert workflow.done_ids() == set()


def test_wait_rejects_a_negative_timeout(tmp_path):
    run = mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(X, y, workdir=tmp_path / "wd").submit()
    with pytest.raises(ValueError, match="'timeout' parameter of Run.wait"):
        run.wait(timeout=-1)
    run.wait()


def test_attach_with_nothing_running_returns_none(tmp_path):
    workflow = mp.Experiment(LogisticRegression(), cv=3).build(X, y, workdir=tmp_path / "wd")
    assert workflow.attach() is None


def test_reprs_are_readable_text_and_html(tmp_path):
    run = mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(X, y, workdir=tmp_path / "wd").submit()
    run.wait()
    assert "finished on local: 5/5 tasks done, 3/3 outer folds" in repr(run)
    page = run._repr_html_()
    assert "mempamal Run" in page and "outer folds finished" in page and "test_score" in page


SIGINT_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_run import slow_experiment, X, y
    workflow = slow_experiment().build(X, y, workdir={workdir!r})
    print("started", flush=True)
    workflow.run(n_jobs=1, progress=False)
""")


def test_ctrl_c_in_blocking_run_cancels_the_driver_and_the_process_exits(tmp_path):
    workdir = tmp_path / "wd"
    script = SIGINT_SCRIPT.format(tests=os.path.dirname(__file__), workdir=str(workdir))
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout.readline().strip() == "started"
        poll_until(lambda: len(list((workdir / "outputs").glob("*/*.json"))) >= 2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)  # a driver thread left running would hang here
    finally:
        process.kill()
    assert process.returncode != 0 and "KeyboardInterrupt" in stderr
    workflow = mp.Workflow.open(workdir)
    assert 2 <= len(workflow.done_ids()) < len(workflow.tasks)


class DetachedJobBackend(mp.JobBackend):
    """A job-based backend in miniature: one detached process runs the tasks, like a batch job.

    The job outlives the process that submitted it (its own session), and
    the submission is recorded in ``WORKDIR/submissions/detached.json``, the
    contract ``Workflow.attach`` relies on.
    """

    name = "detached"
    supports_stop = True
    JOB = "import sys, mempamal as mp\nfor task_id in sys.argv[2:]: mp.run_task(sys.argv[1], task_id)"

    def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None):
        # The job imports this module (the experiment's slow step lives here).
        environment = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.abspath(__file__))}
        job = subprocess.Popen([sys.executable, "-c", self.JOB, str(workflow.workdir), *task_ids],
                               start_new_session=True, env=environment)
        record = workflow.workdir / "submissions" / "detached.json"
        record.parent.mkdir(exist_ok=True)
        record.write_text(f'{{"pid": {job.pid}}}')
        return self.attach(workflow, stop=stop)

    def attach(self, workflow, stop=None, progress=True):
        import json

        record = workflow.workdir / "submissions" / "detached.json"
        pid = json.loads(record.read_text())["pid"]
        while _alive(pid):
            if stop is not None and stop.wait(0.1):
                os.kill(pid, signal.SIGKILL)
                raise mp.RunCancelled("the run was cancelled")
            time.sleep(0.1)
        record.unlink()
        return {}

    def jobs_status(self, workdir, submission):
        return {"running": int(_alive(submission["pid"]))}


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


DRIVER_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import mempamal as mp
    mp.register_backend("detached", "test_run:DetachedJobBackend")
    mp.Workflow.open({workdir!r}).run(backend="detached")
""")


def test_attach_follows_a_recorded_job_submission_after_its_driver_was_killed(tmp_path):
    experiment = slow_experiment(final_fit=False)  # the final search: test_final_model
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    script = DRIVER_SCRIPT.format(tests=os.path.dirname(__file__), workdir=str(workflow.workdir))
    driver = subprocess.Popen([sys.executable, "-c", script])
    try:
        poll_until(lambda: len(workflow.done_ids()) >= 1)
        driver.kill()  # the kernel dies; the job goes on
        driver.wait(timeout=30)
    finally:
        driver.kill()
    assert len(workflow.done_ids()) < len(workflow.tasks)
    mp.register_backend("detached", DetachedJobBackend)
    run = workflow.attach()
    assert run is not None and run.backend_name == "detached"
    assert_matches_sklearn(run.wait(), experiment, X, y)
    assert workflow.attach() is None  # the job is over: nothing to follow


EXIT_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_run import slow_experiment, X, y
    run = slow_experiment().build(X, y, workdir={workdir!r}).submit(n_jobs=2)
    while not run.status()["done"]:
        pass
    print("exiting", flush=True)  # without run.wait(): the run must not outlive the script
""")


def test_a_script_exiting_without_wait_cancels_its_run_and_leaves_no_worker(tmp_path):
    import psutil

    workdir = tmp_path / "wd"
    script = EXIT_SCRIPT.format(tests=os.path.dirname(__file__), workdir=str(workdir))
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    children = []
    try:
        assert process.stdout.readline().strip() == "exiting"
        try:
            children = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass
        process.wait(timeout=60)
    finally:
        process.kill()
    psutil.wait_procs(children, timeout=30)
    assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    workflow = mp.Workflow.open(workdir)
    assert 1 <= len(workflow.done_ids()) < len(workflow.tasks)


def test_attach_watches_another_process_holding_the_run_lock(tmp_path):
    pytest.importorskip("mempamal.store.lock", reason="needs the workdir run lock (mempamal/lock.py)")
    experiment = slow_experiment(final_fit=False)  # the final search: test_final_model
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    environment = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.abspath(__file__))}
    runner = subprocess.Popen([sys.executable, "-m", "mempamal", "run", str(workflow.workdir), "-n", "1"],
                              env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll_until(lambda: len(workflow.done_ids()) >= 1)
        run = workflow.attach()
        assert run is not None and run.backend_name.startswith(f"pid {runner.pid} on ")
        assert_matches_sklearn(run.wait(), experiment, X, y)
        assert runner.wait(timeout=60) == 0
    finally:
        runner.kill()
    assert workflow.attach() is None
