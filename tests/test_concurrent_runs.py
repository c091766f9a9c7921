"""Runs of one process (cells of one notebook) own their workers: cancelling, failing or finishing one never
disturbs another.

Real workers on every batch backend: the local pool, a private ipyparallel
cluster per run, a private Dask LocalCluster per run.  Which processes are a
run's is read from its outputs (each records the pid of the worker that
wrote it); the answers of the runs that go on are scikit-learn's.
"""

import os
import time

import pytest
from sklearn.datasets import load_iris

import mempamal as mp

from conftest import SLOW_MODULE, assert_matches_sklearn, kept_environment

X, y = load_iris(return_X_y=True)
BACKENDS = ["local", "ipyparallel", "dask"]
#: Long enough that the other runs are still going when one is cancelled or fails.
DELAY = 0.4


def _installed(backend):
    module = {"ipyparallel": "ipyparallel", "dask": "distributed"}.get(backend)
    if module is not None:
        pytest.importorskip(module, reason=f"the {backend} backend is not installed")


@pytest.fixture
def slowmod(tmp_path, monkeypatch):
    """``slowmod`` importable here, in loky workers, in ipyparallel engines and in Dask workers."""
    (tmp_path / "slowmod.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # engines start in this cwd
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    import slowmod

    with kept_environment():  # Dask's nannies write their workers' settings into os.environ
        yield slowmod


def _experiment(slowmod, delay=DELAY, grid=(0.1, 1.0, 10.0), **options):
    return mp.Experiment(slowmod.SlowLogistic(delay=delay), param_grid={"C": list(grid)}, cv=3, inner_cv=2,
                         **options)


def _worker_pids(workflow):
    """Pids of the processes that wrote this workdir's outputs (its run's workers)."""
    import json

    pids = set()
    for path in (workflow.workdir / "outputs").glob("*/*.json"):
        try:
            pids.add(json.loads(path.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            pass  # being replaced right now
    return pids - {os.getpid()}


def _alive(pid):
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _poll_until(condition, timeout=300, interval=0.05):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


def _end_others_untouched(runs, workflows, gone_pids):
    """``gone_pids`` end; the other runs' workers are alive while they run; their results."""
    others = [(run, workflow) for run, workflow in zip(runs, workflows) if not run.done()]
    assert others, "the other runs ended before the one under test: nothing was shown"
    alive = {pid for run, workflow in others for pid in _worker_pids(workflow)}
    still_running = all(not run.done() for run, _ in others)
    if still_running:  # read while they run: their workers are theirs until they end
        assert alive and all(map(_alive, alive)), "another run lost its workers"
    _poll_until(lambda: not any(map(_alive, gone_pids)), timeout=60)
    return [run.wait(timeout=600) for run, _ in others]


#: A traceback in a thread of ours or of a library's (loky's manager thread
#: once died on InvalidStateError) is a failure, not a warning.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


@pytest.mark.parametrize("n_runs", [2, 3])
@pytest.mark.parametrize("backend", BACKENDS)
def test_cancelling_one_run_kills_only_its_workers_the_others_give_sklearns_answer(
        backend, n_runs, slowmod, tmp_path, capfd):
    _installed(backend)
    experiment = _experiment(slowmod)
    workflows = [experiment.build(X, y, workdir=tmp_path / f"wd{index}", chunk_size=1) for index in range(n_runs)]
    runs = [workflow.submit(backend=backend, n_jobs=2) for workflow in workflows]
    try:
        # Every run has workers computing, and the first one finished some work.
        _poll_until(lambda: len(_worker_pids(workflows[0])) >= 1 and all(map(_worker_pids, workflows))
                    and len(list((workflows[0].workdir / "outputs").glob("*/*.json"))) >= 2)
        victim_pids = _worker_pids(workflows[0])
        runs[0].cancel()
        assert runs[0].state == "cancelled"
        results = _end_others_untouched(runs[1:], workflows[1:], victim_pids)
    finally:
        for run in runs:
            run.cancel()
    assert len(results) == n_runs - 1
    reference = _experiment(slowmod, delay=0)
    for result in results:
        assert_matches_sklearn(result, reference, X, y)
    assert 0 < len(workflows[0].done_ids()) < len(workflows[0].tasks)  # its finished outputs stay
    errors = capfd.readouterr().err
    assert "Traceback" not in errors and "InvalidStateError" not in errors, errors


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_whose_task_raises_ends_failed_and_the_healthy_one_gives_sklearns_answer(
        backend, slowmod, tmp_path, capfd):
    _installed(backend)
    failing = _experiment(slowmod, grid=(-1.0, 1.0), error_score="raise")  # C=-1: LogisticRegression raises
    healthy = _experiment(slowmod)
    bad = failing.build(X, y, workdir=tmp_path / "bad", chunk_size=1)
    good = healthy.build(X, y, workdir=tmp_path / "good", chunk_size=1)
    runs = [bad.submit(backend=backend, n_jobs=2), good.submit(backend=backend, n_jobs=2)]
    try:
        _poll_until(lambda: bool(_worker_pids(bad)) or runs[0].done())
        with pytest.raises(ValueError, match="'C' parameter of LogisticRegression"):
            runs[0].wait(timeout=600)
        assert runs[0].state == "failed"
        _poll_until(lambda: bool(_worker_pids(good)))
        results = _end_others_untouched(runs[1:], [good], _worker_pids(bad))
    finally:
        for run in runs:
            run.cancel()
    assert_matches_sklearn(results[0], _experiment(slowmod, delay=0), X, y)
    errors = capfd.readouterr().err
    assert "Traceback" not in errors and "InvalidStateError" not in errors, errors


def test_two_runs_at_once_on_one_local_backend_instance_each_have_their_own_workers(slowmod, tmp_path, capfd):
    from mempamal.backends.local import LocalBackend

    experiment = _experiment(slowmod)
    workflows = [experiment.build(X, y, workdir=tmp_path / f"wd{index}", chunk_size=1) for index in range(2)]
    with LocalBackend() as local:
        runs = [workflow.submit(backend=local, n_jobs=2) for workflow in workflows]
        try:
            _poll_until(lambda: all(len(_worker_pids(workflow)) >= 1 for workflow in workflows))
            assert not _worker_pids(workflows[0]) & _worker_pids(workflows[1])
            victim_pids = _worker_pids(workflows[0])
            runs[0].cancel()
            results = _end_others_untouched(runs[1:], workflows[1:], victim_pids)
        finally:
            for run in runs:
                run.cancel()
        # The survivor's healthy workers stay warm for the instance's next run ...
        warm = _worker_pids(workflows[1])
        assert all(map(_alive, warm))
    # ... until the instance is closed.
    _poll_until(lambda: not any(map(_alive, warm)), timeout=60)
    assert_matches_sklearn(results[0], _experiment(slowmod, delay=0), X, y)
    errors = capfd.readouterr().err
    assert "Traceback" not in errors, errors


@pytest.fixture
def shared_cluster(request, slowmod):
    """``(run options, worker pids)`` of a running cluster the runs share (one the user started)."""
    backend = request.param
    _installed(backend)
    if backend == "ipyparallel":
        from mempamal.backends.ipyparallel import LocalCluster

        with LocalCluster(2) as local:
            yield {"client": local.client}, lambda: set(local.client[:].apply_sync(os.getpid))
        return
    import logging

    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
        yield {"client": client}, lambda: set(client.run(os.getpid).values())


@pytest.mark.parametrize("shared_cluster", ["ipyparallel", "dask"], indirect=True)
def test_cancelling_one_run_on_a_shared_cluster_leaves_every_worker_to_the_other(shared_cluster, slowmod, tmp_path,
                                                                                  capfd):
    options, worker_pids = shared_cluster
    backend = "ipyparallel" if "ipyparallel" in type(options["client"]).__module__ else "dask"
    before = worker_pids()
    experiment = _experiment(slowmod)
    workflows = [experiment.build(X, y, workdir=tmp_path / f"wd{index}", chunk_size=1) for index in range(2)]
    runs = [workflow.submit(backend=backend, progress=False, **options) for workflow in workflows]
    try:
        _poll_until(lambda: len(list((workflows[0].workdir / "outputs").glob("*/*.json"))) >= 2)
        runs[0].cancel()
        assert runs[0].state == "cancelled" and not runs[1].done()
        result = runs[1].wait(timeout=600)
    finally:
        for run in runs:
            run.cancel()
    assert worker_pids() == before  # the cancelled run interrupted or killed none of the shared workers
    assert_matches_sklearn(result, _experiment(slowmod, delay=0), X, y)
    errors = capfd.readouterr().err
    assert "Traceback" not in errors and "InvalidStateError" not in errors, errors
