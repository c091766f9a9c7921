"""The same tests on every registered backend: same answers, resume, failures by id."""

import json
import warnings

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp
from mempamal import store

from conftest import GATED_MODULE, assert_matches_sklearn, comparable, kept_environment, running_pids

X, y = load_iris(return_X_y=True)

EXPERIMENTS = {
    "plain": lambda: mp.Experiment(LogisticRegression(max_iter=300), cv=3),
    "nested-multimetric": lambda: mp.Experiment(
        LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2,
        scoring=["accuracy", "f1_macro"], refit="f1_macro"),
    "permutations": lambda: mp.Experiment(LogisticRegression(max_iter=300), cv=3, n_permutations=2, random_state=0),
}


@pytest.fixture(scope="module")
def ipp_client():
    """One real ipyparallel cluster for the module, in a temporary IPython dir."""
    from mempamal.backends.ipyparallel import LocalCluster

    with LocalCluster(2) as local:
        yield local.client


@pytest.fixture(scope="module")
def dask_client():
    """One real Dask LocalCluster (2 worker processes) for the module."""
    distributed = pytest.importorskip("distributed", reason="the dask backend needs distributed (mempamal[dask])")
    import logging

    with kept_environment():  # undone at once, not only when the module ends
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.ERROR)
    with kept_environment(), cluster, distributed.Client(cluster) as client:
        yield client


#: Backends tested on a running cluster shared by the module (auto-start is tested in their own files).
SHARED_CLUSTERS = {"ipyparallel": "ipp_client", "dask": "dask_client"}


#: Cases on a real Slurm (skipped, with the reason, without one): (backend, options).
#: ipyparallel starts its own engines job per run and cancels it after, so no
#: job holds the node's CPUs between tests.
SLURM_CASES = {
    "ipyparallel+slurm-engines": ("ipyparallel", {"engines": "slurm"}),
    "slurm": ("slurm", {"poll_seconds": 0.2}),
}


@pytest.fixture(params=mp.available_backends() + sorted(set(SLURM_CASES) - {"slurm"}) + ["soma-workflow+slurm"])
def backend_options(request, tmp_path_factory):
    """(name, options) of each registered backend; cluster backends reuse the module's cluster.

    Slurm routes (native ``slurm``, ipyparallel's Slurm engines, soma-workflow
    with a Slurm resource) skip with the reason when no Slurm answers
    (``ci/slurm/start.sh`` starts one; under ``.ci/run`` they fail instead).
    """
    from slurm_cluster import SOMA_RESOURCE, require_slurm, write_soma_slurm_config

    name = request.param
    if name in SLURM_CASES:
        require_slurm()
        return SLURM_CASES[name]
    if name == "soma-workflow+slurm":
        require_slurm(accounting=True)  # soma-workflow follows Slurm jobs through sacct
        config = write_soma_slurm_config(tmp_path_factory.mktemp("soma-config"))
        return "soma-workflow", {"resource_id": SOMA_RESOURCE, "config": config}
    fixture = SHARED_CLUSTERS.get(name)
    options = {"client": request.getfixturevalue(fixture)} if fixture else {}
    return name, options


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    """results.json (timings removed) of each case run in-process by the local backend, once."""
    cache = {}

    def reference(case):
        if case not in cache:
            workdir = tmp_path_factory.mktemp("reference") / case
            workflow = EXPERIMENTS[case]().build(X, y, workdir=workdir, chunk_size=2)
            workflow.run(backend="local", n_jobs=1, progress=False)
            cache[case] = comparable(json.loads((workflow.workdir / "results.json").read_text()))
        return cache[case]

    return reference


@pytest.mark.parametrize("case", sorted(EXPERIMENTS))
def test_backend_gives_the_local_backends_and_sklearns_answer(backend_options, case, local_reference, tmp_path):
    name, options = backend_options
    workflow = EXPERIMENTS[case]().build(X, y, workdir=tmp_path / "wd", chunk_size=2)
    results = workflow.run(backend=name, n_jobs=2, progress=False, **options)
    assert comparable(results.raw) == local_reference(case)
    assert_matches_sklearn(results, EXPERIMENTS[case](), X, y)


def test_backend_resumes_running_only_unfinished_tasks(backend_options, tmp_path):
    name, options = backend_options
    workflow = EXPERIMENTS["nested-multimetric"]().build(X, y, workdir=tmp_path / "wd", chunk_size=2)
    first = [task.id for task in workflow.tasks[:3]]
    for task_id in first:
        mp.run_task(workflow.workdir, task_id)
    stamps = {i: store.output_path(workflow.workdir, i).stat().st_mtime_ns for i in first}
    workflow.run(backend=name, n_jobs=2, progress=False, **options)
    assert {i: store.output_path(workflow.workdir, i).stat().st_mtime_ns for i in first} == stamps
    assert workflow.status()["pending"] == 0


def test_backend_reports_failed_task_by_id_and_skips_dependents(backend_options, tmp_path):
    name, options = backend_options
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [1.0, -1.0]}, cv=3,
                               inner_cv=2, error_score="raise")
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((mp.WorkflowError, ValueError)) as info:
            workflow.run(backend=name, n_jobs=2, progress=False, **options)
    error = info.value
    assert isinstance(error, mp.WorkflowError) == (name not in ("local", "ipyparallel", "dask")), type(error)
    if not isinstance(error, mp.WorkflowError):
        # error_score="raise" where the task ran in a Python process the backend
        # controls: the estimator's own error, raised from the run's WorkflowError.
        assert name in ("local", "ipyparallel", "dask") and "'C' parameter" in str(error)
        error = error.__cause__  # the WorkflowError listing every task
    failed = error.failed
    assert "fit-o0-i0-c1" in failed and "C" in failed["fit-o0-i0-c1"]
    assert failed["select-o0"].startswith("not run") and failed["final"].startswith("not run")
    assert "fit-o0-i0-c0" not in failed


def test_a_new_backend_is_one_class_and_one_registry_line(tmp_path):
    from mempamal.backends.base import _REGISTRY
    from mempamal.backends.tracker import DependencyTracker

    class InProcessBackend(mp.Backend):
        def run(self, workflow, task_ids, n_jobs=None, progress=True):
            tracker, failed = DependencyTracker(workflow, task_ids), {}
            while tracker.ready:
                task_id = tracker.ready.popleft()
                mp.run_task(workflow.workdir, task_id)
                tracker.record(task_id, None, failed)
            return failed

    mp.register_backend("in-process-test", InProcessBackend)
    try:
        experiment = EXPERIMENTS["nested-multimetric"]()
        results = experiment.build(X, y, workdir=tmp_path / "wd").run(backend="in-process-test", progress=False)
        assert_matches_sklearn(results, experiment, X, y)
    finally:
        _REGISTRY.pop("in-process-test")


def test_a_worker_pool_of_five_primitives_gets_the_shared_dispatch_loop(tmp_path):
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from mempamal.backends.dispatch_loop import WorkerPool, dispatch
    from mempamal.backends.local import run_batch

    class ThreadPool(WorkerPool):
        def __init__(self, workdir, executor):
            self.workdir, self.executor, self.batches = workdir, executor, []

        def capacity(self):
            return 4

        def submit(self, batch):
            self.batches.append(len(batch))
            return self.executor.submit(run_batch, self.workdir, batch)

        def wait(self, handles, timeout):
            return wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)[0]

        def result(self, handle):
            return handle.result()

        def abort(self, handles):
            for future in handles:
                future.cancel()

    class ThreadBackend(mp.Backend):
        def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None):
            with ThreadPoolExecutor(2) as executor:
                self.pool = ThreadPool(str(workflow.workdir), executor)
                return dispatch(workflow, task_ids, self.pool, stop=stop)

    experiment = EXPERIMENTS["permutations"]()
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    backend = ThreadBackend()
    results = workflow.run(backend=backend, progress=False)
    assert_matches_sklearn(results, experiment, X, y)
    assert sum(backend.pool.batches) == len(workflow.tasks)


def _slow_experiment():
    """Nested CV whose every fit sleeps 0.2 s: long enough to cancel in the middle."""
    import time

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    def slow_identity(data):
        time.sleep(0.2)
        return data

    return mp.Experiment(make_pipeline(FunctionTransformer(slow_identity), LogisticRegression(max_iter=300)),
                         param_grid={"logisticregression__C": [0.1, 1.0]}, cv=3, inner_cv=2,
                         final_fit=False)  # 12 fits are enough to stop in the middle; final search: test_final_model


def test_backend_stops_when_its_stop_event_is_set_from_another_thread(backend_options, tmp_path):
    import threading
    import time

    name, options = backend_options
    experiment = _slow_experiment()
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    stop, outcome = threading.Event(), {}

    def drive():
        try:
            workflow.run(backend=name, n_jobs=2, progress=False, stop=stop, **options)
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    driver = threading.Thread(target=drive)
    driver.start()
    deadline = time.monotonic() + 120
    while workflow.status()["done"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    driver.join(timeout=120)
    assert not driver.is_alive()
    assert isinstance(outcome["error"], mp.RunCancelled)
    assert workflow.status()["pending"] > 0  # really stopped before the end
    results = workflow.run(backend=name, n_jobs=2, progress=False, **options)
    assert_matches_sklearn(results, experiment, X, y)


def test_a_local_worker_killed_mid_task_does_not_fail_it_and_the_run_gives_sklearns_answer(tmp_path, monkeypatch):
    """The dispatch loop's lost-worker rules on the local route too (the OOM killer, a SIGKILL)."""
    import threading

    import psutil

    (tmp_path / "gatemod.py").write_text(GATED_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))  # loky's workers start with this sys.path
    (tmp_path / "gate").mkdir()
    from gatemod import GatedLogistic

    experiment = mp.Experiment(GatedLogistic(gate=str(tmp_path / "gate")), param_grid={"C": [0.1, 1.0]}, cv=3,
                               inner_cv=2)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)

    def kill_the_worker_running_a_task():
        [pid] = running_pids(tmp_path / "gate")
        assert pid in {child.pid for child in psutil.Process().children(recursive=True)}
        psutil.Process(pid).kill()
        (tmp_path / "gate" / "open").touch()

    killer = threading.Thread(target=kill_the_worker_running_a_task)
    killer.start()
    results = workflow.run(backend="local", n_jobs=2, progress=False)
    killer.join()
    assert_matches_sklearn(results, mp.Experiment(GatedLogistic(), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2),
                           X, y)
