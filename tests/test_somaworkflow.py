"""Soma-Workflow specifics: the exported file, real light-mode runs, isolation, clean shutdown.

The answers every backend must give (plain, nested, permutations, resume,
failures) are checked for soma-workflow by test_backends.py; here: what only
soma-workflow has.  Each job is a ``python -m mempamal task`` process (~1 s),
so the graphs stay small.
"""

import _thread
import json
import os
import sys
import tempfile
import threading
import time
import warnings

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp
from mempamal import store

from conftest import assert_matches_sklearn, comparable

pytest.importorskip("soma_workflow")
X, y = load_iris(return_X_y=True)
TEMPDIR = tempfile.gettempdir()


def _experiment(**kwargs):
    options = dict(param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    options.update(kwargs)
    return mp.Experiment(LogisticRegression(max_iter=300), **options)


def _local_raw(experiment, tmp_path):
    workflow = experiment.build(X, y, workdir=tmp_path / "reference", chunk_size=2)
    workflow.run(backend="local", n_jobs=1, progress=False)
    return comparable(json.loads((workflow.workdir / "results.json").read_text()))


def _job_processes(workdir):
    """Live processes whose command line names ``workdir`` (i.e. its task jobs)."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(workdir) in " ".join(process.info["cmdline"] or ()):
            found.append(process.pid)
    return found


def _assert_left_nothing_behind(workdir):
    """No job process, soma thread, HOME file or process-wide setting outlives a run."""
    import soma_workflow.engine

    deadline = time.monotonic() + 0.5  # killed processes take a moment to be reaped; tasks take ~1 s
    while _job_processes(workdir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _job_processes(workdir) == []
    home = os.environ["HOME"]
    assert [name for name in os.listdir(home) if name.startswith(".soma")] == []
    assert "SOMA_WORKFLOW_CONFIG" not in os.environ
    assert soma_workflow.engine.refreshment_interval == 1.0
    assert tempfile.gettempdir() == TEMPDIR
    soma_threads = [t.name for t in threading.enumerate()
                    if t.name in ("scheduler_loop", "poll_thread") or type(t).__name__ == "EngineLoopThread"]
    assert soma_threads == []


# ------------------------------------------------------------------ export
def test_export_loads_back_with_soma_workflow_jobs_dependencies_and_groups(tmp_path):
    from soma_workflow.client import Helper

    workflow = _experiment(n_permutations=2, random_state=0).build(X, y, workdir=tmp_path / "wd", chunk_size=2)
    path = workflow.export(tmp_path / "wf.json", format="soma-workflow")
    assert sorted(os.listdir(tmp_path)) == ["wd", "wf.json"]  # no temporary file left
    loaded = Helper.unserialize(str(path))

    by_task = {job.command[-1]: job for job in loaded.jobs}
    assert sorted(by_task) == sorted(task.id for task in workflow.tasks)
    for task in workflow.tasks:
        assert by_task[task.id].command == [sys.executable, "-m", "mempamal", "task", str(workflow.workdir), task.id]
    assert by_task["fit-o2-i1-c0"].name == "fold 2 / fit-o2-i1-c0"
    assert by_task["perm-1-select-o0"].name == "perm 1 / fold 0 / select-o0"
    assert by_task["final"].name == "final"

    edges = {(a.command[-1], b.command[-1]) for a, b in loaded.dependencies}
    assert edges == {(dep, task.id) for task in workflow.tasks for dep in task.deps}

    def members(group):
        return [element.name for element in group.elements]

    root = {element.name: element for element in loaded.root_group}
    assert list(root) == ["fold 0", "fold 1", "fold 2", "final search", "permutations", "final"]
    assert members(root["final search"]) == ["final search / fit-all-i0-c0", "final search / fit-all-i1-c0",
                                             "final search / select-all"]
    assert members(root["fold 0"]) == ["fold 0 / fit-o0-i0-c0", "fold 0 / fit-o0-i1-c0", "fold 0 / select-o0"]
    assert members(root["permutations"]) == ["perm 0", "perm 1"]
    perm1 = root["permutations"].elements[1]
    assert members(perm1) == ["perm 1 / fold 0", "perm 1 / fold 1", "perm 1 / fold 2"]
    assert {g.name for g in loaded.groups} == {"fold 0", "fold 1", "fold 2", "final search", "permutations",
                                               "perm 0", "perm 1"} | {
        f"perm {m} / fold {k}" for m in range(2) for k in range(3)}


def test_export_honours_cluster_python_and_workdir(tmp_path):
    from soma_workflow.client import Helper

    workflow = mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(X, y, workdir=tmp_path / "wd")
    path = workflow.export(tmp_path / "wf.json", format="soma-workflow", python="/cluster/venv/bin/python",
                           workdir="/shared/runs/x")
    jobs = Helper.unserialize(str(path)).jobs
    assert sorted(job.command[-1] for job in jobs) == ["final", "score-o0", "score-o1", "score-o2", "select-all"]
    for job in jobs:
        assert job.command[:5] == ["/cluster/venv/bin/python", "-m", "mempamal", "task", "/shared/runs/x"]


def test_missing_soma_workflow_gives_an_install_hint(monkeypatch):
    from mempamal.backends.somaworkflow import backend as somaworkflow

    monkeypatch.setitem(sys.modules, "soma_workflow.client", None)  # what `import` sees when absent
    with pytest.raises(ImportError, match="pip install soma-workflow"):
        somaworkflow.SomaWorkflowBackend().run(None, [])


def test_backend_options_are_checked_before_any_work():
    from mempamal.backends.somaworkflow.backend import SomaWorkflowBackend

    with pytest.raises(ValueError, match="'isolated'.*cannot be used with resource_id"):
        SomaWorkflowBackend(resource_id="cluster", isolated=True)
    with pytest.raises(ValueError, match="'poll_interval'"):
        SomaWorkflowBackend(poll_interval=0)


# --------------------------------------------------------------------- run
def test_light_mode_run_of_nested_permutation_test_equals_local_and_sklearn(tmp_path):
    small = dict(n_permutations=1, random_state=0, final_fit=False)  # final search on soma-workflow: test_final_model
    experiment = _experiment(**small)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=2)
    results = workflow.run(backend="soma-workflow", n_jobs=2, progress=False)
    assert comparable(results.raw) == _local_raw(_experiment(**small), tmp_path)
    assert_matches_sklearn(results, experiment, X, y)
    state = workflow.workdir / "soma-workflow"
    assert (state / "soma-workflow.db").exists() and (state / "soma-workflow-shtmp").is_dir()
    _assert_left_nothing_behind(workflow.workdir)


def test_interrupted_run_kills_its_jobs_and_the_rerun_submits_only_the_rest(tmp_path, capsys):
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    outputs = workflow.workdir / "outputs"
    for task_id in ("fit-o0-i0-c0", "fit-o0-i0-c1"):
        mp.run_task(workflow.workdir, task_id)
    before = store.finished_task_ids(workflow.workdir)
    running_at_interrupt = []

    def interrupt_after_first_new_output():
        while store.finished_task_ids(workflow.workdir) == before:
            time.sleep(0.02)
        running_at_interrupt.extend(_job_processes(workflow.workdir))
        _thread.interrupt_main()

    threading.Thread(target=interrupt_after_first_new_output, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        workflow.run(backend="soma-workflow", n_jobs=2, progress=False)
    assert running_at_interrupt, "the interrupt should come while jobs run"
    _assert_left_nothing_behind(workflow.workdir)
    done = workflow.done_ids()
    assert len(before) < len(done) < len(workflow.tasks)
    time.sleep(1.5)
    assert workflow.done_ids() == done, "a job outlived the interrupted run"

    stamps = {task_id: store.output_path(workflow.workdir, task_id).stat().st_mtime_ns for task_id in done}
    results = workflow.run(backend="soma-workflow", n_jobs=2, progress=False)
    assert {task_id: store.output_path(workflow.workdir, task_id).stat().st_mtime_ns for task_id in done} == stamps
    assert_matches_sklearn(results, _experiment(), X, y)
    assert capsys.readouterr().out == ""  # soma-workflow's chatter is kept off stdout
    _assert_left_nothing_behind(workflow.workdir)


def test_failed_job_is_reported_with_its_stderr_and_dependents_not_run(tmp_path):
    experiment = _experiment(param_grid={"C": [1.0, -1.0]}, cv=2, error_score="raise", final_fit=False)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    state = tmp_path / "soma-state"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(mp.WorkflowError) as info:
            workflow.run(backend="soma-workflow", n_jobs=2, progress=False, isolated=state)
    failed = info.value.failed
    bad = [f"fit-o{k}-i{j}-c1" for k in range(2) for j in range(2)]
    assert sorted(task_id for task_id, message in failed.items() if "exit value 1" in message) == bad
    assert "InvalidParameterError" in failed["fit-o0-i0-c1"] and "'C'" in failed["fit-o0-i0-c1"]
    for task_id in ("select-o0", "select-o1", "final"):
        assert failed[task_id].startswith("not run")
    assert workflow.done_ids() == {f"fit-o{k}-i{j}-c0" for k in range(2) for j in range(2)}
    assert (state / "soma-workflow.db").exists() and not (workflow.workdir / "soma-workflow" / "soma-workflow.db").exists()
    _assert_left_nothing_behind(workflow.workdir)


# ------------------------------------------------- bundles, paths, resources
def test_export_with_bundles_has_one_job_per_bundle_and_bundle_dependencies(tmp_path):
    from soma_workflow.client import Helper

    from mempamal.backends.bundles import make_bundles

    workflow = _experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    path = workflow.export(tmp_path / "wf.json", format="soma-workflow", tasks_per_job=5, n_jobs=2)
    loaded = Helper.unserialize(str(path))
    bundles = make_bundles(workflow, [t.id for t in workflow.tasks], 2, tasks_per_job=5)
    by_first_task = {tuple(job.command[5:]): job for job in loaded.jobs}
    assert sorted(by_first_task) == sorted(b.task_ids for b in bundles)
    edges = {(tuple(a.command[5:]), tuple(b.command[5:])) for a, b in loaded.dependencies}
    by_id = {b.id: b for b in bundles}
    assert edges == {(by_id[dep].task_ids, b.task_ids) for b in bundles for dep in b.deps}


def test_run_uses_the_python_and_workdir_paths_the_nodes_see(tmp_path):
    """``python=`` / ``remote_workdir=`` rewrite runs, not only exports (a wrapper and a symlink stand for the nodes)."""
    experiment = mp.Experiment(LogisticRegression(max_iter=300), cv=3)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    mount = tmp_path / "as-seen-by-nodes"
    mount.symlink_to(workflow.workdir)
    calls = tmp_path / "calls.txt"
    wrapper = tmp_path / "node-python"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o700)
    results = workflow.run(backend="soma-workflow", n_jobs=2, progress=False, python=str(wrapper),
                           remote_workdir=str(mount))
    assert_matches_sklearn(results, experiment, X, y)
    lines = calls.read_text().splitlines()
    assert lines and all(line.startswith(f"-m mempamal task {mount} ") for line in lines)
    assert sorted(t for line in lines for t in line.split()[4:]) == sorted(t.id for t in workflow.tasks)
    _assert_left_nothing_behind(workflow.workdir)


def test_resource_options_are_checked_before_any_work(tmp_path):
    from mempamal.backends.somaworkflow.backend import SomaWorkflowBackend

    with pytest.raises(ValueError, match="The 'config' parameter of the soma-workflow backend needs a 'resource_id'"):
        SomaWorkflowBackend(config=tmp_path / "swf.cfg")
    with pytest.raises(ValueError, match="The 'tasks_per_job' parameter of the soma-workflow backend"):
        SomaWorkflowBackend(tasks_per_job=0)
    workflow = mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(X, y, workdir=tmp_path / "wd")
    with pytest.raises(ValueError, match="The 'config' parameter of the soma-workflow backend must be an existing"):
        workflow.run(backend="soma-workflow", resource_id="cluster", config=tmp_path / "missing.cfg", progress=False)
    (tmp_path / "swf.cfg").write_text("[other]\nSCHEDULER_TYPE = slurm\nSUBMITTING_MACHINES = somewhere\n")
    with pytest.raises(ValueError, match="The 'resource_id' parameter of the soma-workflow backend must name a section"):
        workflow.run(backend="soma-workflow", resource_id="cluster", config=tmp_path / "swf.cfg", progress=False)
    assert workflow.status()["done"] == 0


def test_slurm_resource_from_a_config_file_runs_bundles_as_slurm_jobs(tmp_path):
    from slurm_cluster import SOMA_RESOURCE, require_slurm, sacct_job_names, write_soma_slurm_config

    require_slurm(accounting=True)  # soma-workflow follows Slurm jobs through sacct
    config = write_soma_slurm_config(tmp_path)
    with open(config, "a") as handle:  # every job asks Slurm for 2 CPUs
        handle.write("NATIVE_SPECIFICATION = --cpus-per-task=2\n")
    path_before = os.environ["PATH"]
    experiment = _experiment()
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    threads = tmp_path / "threads.txt"  # what each job's interpreter was started with
    wrapper = tmp_path / "node-python"
    wrapper.write_text(f'#!/bin/sh\necho "$OMP_NUM_THREADS $OPENBLAS_NUM_THREADS" >> {threads}\n'
                       f'exec {sys.executable} "$@"\n')
    wrapper.chmod(0o700)
    started = time.time()
    results = workflow.run(backend="soma-workflow", resource_id=SOMA_RESOURCE, config=config, n_jobs=2,
                           progress=False, python=str(wrapper))
    assert_matches_sklearn(results, experiment, X, y)
    assert threads.read_text().splitlines() == ["2 2"] * 5  # BLAS threads = the CPUs Slurm gave each job
    deadline = time.monotonic() + 60  # accounting records a job shortly after it ends
    while len([n for n in sacct_job_names(started) if "bundle-" in n]) < 5 and time.monotonic() < deadline:
        time.sleep(0.5)
    names = [name for name in sacct_job_names(started) if "bundle-" in name]
    assert len(names) == 5, names  # 2 fit bundles, 2 select bundles, final: jobs of this run
    assert os.environ["PATH"] == path_before
    _assert_left_nothing_behind(workflow.workdir)


def _slow_experiment():
    """Every fit sleeps 0.5 s (defined here so cloudpickle ships it by value to the jobs)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    def slow_identity(data):
        time.sleep(0.5)
        return data

    return mp.Experiment(make_pipeline(FunctionTransformer(slow_identity), LogisticRegression(max_iter=300)),
                         param_grid={"logisticregression__C": [0.1, 1.0]}, cv=3, inner_cv=2,
                         final_fit=False)  # the final search on soma-workflow+slurm: test_final_model


def _slurm_cpus():
    import subprocess

    answer = subprocess.run(["sinfo", "-h", "-o", "%C"], capture_output=True, text=True, timeout=30)
    return sum(int(line.split("/")[-1]) for line in answer.stdout.split())


def test_attach_after_the_driver_was_sigkilled_follows_the_slurm_jobs_and_finishes(tmp_path):
    """A kernel dies with a soma-workflow run on Slurm: a fresh process attaches and gets scikit-learn's answer."""
    import signal
    import subprocess
    import textwrap

    from slurm_cluster import SOMA_RESOURCE, require_slurm, write_soma_slurm_config

    require_slurm(accounting=True)
    config = write_soma_slurm_config(tmp_path)
    workflow = _slow_experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    record = workflow.workdir / "submissions" / "soma-workflow.json"
    code = textwrap.dedent(f"""
        import mempamal as mp
        mp.Workflow.open({str(workflow.workdir)!r}).run(backend="soma-workflow", resource_id={SOMA_RESOURCE!r},
            config={str(config)!r}, n_jobs=2, tasks_per_job=2, progress=False)
    """)
    driver = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not (record.exists() and workflow.done_ids()):
            assert time.monotonic() < deadline and driver.poll() is None, "no first output of the driver"
            time.sleep(0.2)
        while workflow.status()["jobs"].get("running", 0) == 0:  # what a restarted kernel sees, before the kill
            assert time.monotonic() < deadline
            time.sleep(0.2)
        os.kill(driver.pid, signal.SIGKILL)  # soma-workflow's engine dies with it, the Slurm jobs do not
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    submitted = json.loads(record.read_text())
    assert "ended" not in submitted and submitted["resource_id"] == SOMA_RESOURCE
    assert sorted(t for bundle in submitted["bundles"] for t in bundle["tasks"]) == sorted(t.id for t in workflow.tasks)
    assert len(workflow.done_ids()) < len(workflow.tasks)
    jobs = workflow.status()["jobs"]
    assert jobs["backend"] == "soma-workflow" and "error" not in jobs
    assert jobs["pending"] + jobs["running"] + jobs["finished"] == len(submitted["bundles"])
    assert jobs["pending"] >= 1  # selects and final: never submitted by the dead engine

    attach = textwrap.dedent(f"""
        import time, mempamal as mp
        run = mp.Workflow.open({str(workflow.workdir)!r}).attach()
        assert run is not None and run.backend_name == "soma-workflow", run
        most = 0
        while not run.done():
            most = max(most, run.status()["running"])
            time.sleep(0.2)
        run.wait()
        print("most running", most)
    """)
    fresh = subprocess.run([sys.executable, "-c", attach], capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr
    most = int(fresh.stdout.split()[-1])
    assert 1 <= most <= _slurm_cpus()  # one 1-CPU job per running task: never more than Slurm can run
    assert_matches_sklearn(mp.Results.load(workflow.workdir), _slow_experiment(), X, y)
    assert json.loads(record.read_text()).get("ended")  # the follow-up workflow ran to its end
    assert workflow.status()["jobs"] is None  # nothing pending: no submission to show
    assert mp.Workflow.open(workflow.workdir).attach() is None
