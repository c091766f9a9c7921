"""Workflow.estimate: a sample of the real tasks, kept as done work, and a prediction of the whole run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, ParameterGrid, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import mempamal as mp
from mempamal import store
from mempamal.cost_model import MAX_SAMPLED_CHUNKS, choose_sample
from mempamal.engine.context import load_context
from mempamal.graph.schedule import critical_path, list_schedule

from conftest import assert_matches_sklearn

REPO = Path(__file__).resolve().parents[1]


def nested_experiment(**options):
    pipeline = Pipeline([("scale", StandardScaler()), ("logreg", LogisticRegression(max_iter=500))])
    return mp.Experiment(pipeline, {"logreg__C": [0.01, 0.1, 1.0, 10.0]},
                         cv=StratifiedKFold(3, shuffle=True, random_state=0),
                         inner_cv=StratifiedKFold(2, shuffle=True, random_state=1), final_fit=False, **options)


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def estimated(tmp_path_factory, iris):
    """A nested workflow estimated once on two workers (the sample is shared by the read-only tests)."""
    X, y = iris
    workflow = nested_experiment().build(X, y, workdir=tmp_path_factory.mktemp("est") / "wd")
    return workflow, workflow.estimate(n_jobs=2)


def test_the_sample_is_kept_and_the_run_does_not_redo_it(tmp_path, iris):
    X, y = iris
    experiment = nested_experiment()
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    estimate = workflow.estimate(n_jobs=1)
    assert estimate.sample and workflow.status()["done"] == len(estimate.sample)
    assert set(estimate.sample) == workflow.done_ids()
    written = {task_id: store.output_path(workflow.workdir, task_id).stat().st_mtime_ns
               for task_id in estimate.sample}
    output = store.read_json(store.output_path(workflow.workdir, estimate.sample[0]))
    assert output["cpu_seconds"] >= 0 and output["peak_rss_bytes"] > 0
    results = workflow.run(n_jobs=1, progress=False)
    for task_id, mtime in written.items():  # not run again
        assert store.output_path(workflow.workdir, task_id).stat().st_mtime_ns == mtime
    assert_matches_sklearn(results, experiment, X, y)


def _writers(workflow, task_ids):
    """The worker pids that wrote the outputs of ``task_ids``."""
    return {store.read_json(store.output_path(workflow.workdir, task_id))["pid"] for task_id in task_ids}


def test_the_next_run_by_the_same_name_keeps_the_samples_workers_and_another_starts_its_own(tmp_path, iris):
    X, y = iris
    experiment = nested_experiment()
    workflow = experiment.build(X, y, workdir=tmp_path / "warm")
    estimate = workflow.estimate(n_jobs=2)
    sampled = _writers(workflow, estimate.sample)
    assert os.getpid() not in sampled
    results = workflow.run(n_jobs=2)
    # the run's tasks ran in the workers the sample started: none were started again
    assert _writers(workflow, workflow.done_ids() - set(estimate.sample)) <= sampled
    assert_matches_sklearn(results, experiment, X, y)
    # other options than the estimate's: the kept workers are closed, the run starts its own
    other = experiment.build(X, y, workdir=tmp_path / "other")
    estimate = other.estimate(n_jobs=2)
    sampled = _writers(other, estimate.sample)
    results = other.run(n_jobs=2, threads_per_worker=1)
    assert not _writers(other, other.done_ids() - set(estimate.sample)) & sampled
    assert_matches_sklearn(results, experiment, X, y)


def test_the_sample_covers_every_kind_and_every_distinct_prefix(tmp_path, iris):
    X, y = iris
    pipeline = Pipeline([("scale", StandardScaler()), ("pca", PCA(random_state=0)),
                         ("logreg", LogisticRegression(max_iter=500))])
    grid = {"pca__n_components": [2, 3, 4], "logreg__C": [0.1, 1.0, 10.0, 100.0]}
    experiment = mp.Experiment(pipeline, grid, cv=3, inner_cv=2, n_permutations=2, random_state=0)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)  # 12 chunks > MAX_SAMPLED_CHUNKS
    assert len(workflow.table.chunks) > MAX_SAMPLED_CHUNKS
    sample = choose_sample(workflow.table, load_context(workflow.workdir).prefix_keys)
    tasks = [workflow.task(task_id) for task_id in sample]
    families = {(task.kind, task.split_set == "main") for task in tasks}
    assert families == {("fit", True), ("fit", False), ("fit-all", True)}  # data, permutations, final search
    candidates = list(ParameterGrid(grid))
    for kind, main in families:
        components = {candidates[task.points[0]]["pca__n_components"]
                      for task in tasks if (task.kind, task.split_set == "main") == (kind, main)}
        assert components == {2, 3, 4}, (kind, main)  # every distinct PCA prefix


def test_plain_cv_samples_a_score_task_of_the_data_and_of_the_permutations(tmp_path, iris):
    X, y = iris
    workflow = mp.Experiment(LogisticRegression(max_iter=500), cv=KFold(3), n_permutations=4,
                             random_state=0, final_fit=False).build(X, y, workdir=tmp_path / "wd")
    assert choose_sample(workflow.table, None) == ["score-o0", "perm-0-score-o0"]
    estimate = workflow.estimate(n_jobs=1)
    assert estimate.by_kind["score"] == {**estimate.by_kind["score"], "tasks": 15, "sampled": 2}


def test_wall_time_is_bounded_by_the_critical_path_and_the_serial_work(estimated):
    workflow, estimate = estimated
    assert estimate.critical_path_seconds <= estimate.wall_seconds - estimate.startup_seconds + 1e-9
    assert estimate.wall_seconds - estimate.startup_seconds <= estimate.work_seconds + 1e-9
    assert estimate.cpu_seconds > 0 and estimate.remaining_wall_seconds <= estimate.wall_seconds
    # Again on one worker, from the same measured outputs (nothing left to sample):
    serial = workflow.estimate(n_jobs=1)
    assert serial.sample == () and serial.startup_seconds == 0.0
    assert serial.wall_seconds == pytest.approx(serial.work_seconds, rel=1e-9)
    assert serial.work_seconds == pytest.approx(estimate.work_seconds, rel=1e-9)


def test_list_schedule_matches_its_bounds_on_a_real_graph(estimated):
    workflow, _ = estimated
    rng = np.random.default_rng(0)
    cost = {task.id: float(rng.uniform(0.1, 2.0)) for task in workflow.tasks}
    total, path = sum(cost.values()), critical_path(workflow.tasks, cost)
    assert list_schedule(workflow.tasks, cost, 1).makespan == pytest.approx(total)
    for workers in (2, 3, 100):
        makespan = list_schedule(workflow.tasks, cost, workers).makespan
        assert max(path, total / workers) - 1e-9 <= makespan <= total + 1e-9
    assert list_schedule(workflow.tasks, cost, 100).makespan == pytest.approx(path)  # enough workers: the path


def test_memory_warning_with_a_small_memory_limit(estimated):
    workflow, estimate = estimated
    assert estimate.peak_memory_bytes > 10_000_000  # an interpreter with scikit-learn
    tight = workflow.estimate(n_jobs=2, memory_available=estimate.peak_memory_bytes * 1.5)
    assert any("memory" in warning and "2 workers" in warning for warning in tight.warnings)
    roomy = workflow.estimate(n_jobs=2, memory_available=estimate.peak_memory_bytes * 10)
    assert not any("memory" in warning for warning in roomy.warnings)


def test_thread_warning_when_the_estimator_s_n_jobs_times_the_workers_exceeds_the_cores(tmp_path, iris):
    X, y = iris
    workflow = mp.Experiment(KNeighborsClassifier(n_jobs=4), cv=3, final_fit=False).build(
        X, y, workdir=tmp_path / "wd")
    estimate = workflow.estimate(n_jobs=1, cores=8)
    assert not estimate.warnings
    estimate = workflow.estimate(n_jobs=2, cores=4)
    assert any("n_jobs=4" in warning and "4 cores" in warning for warning in estimate.warnings)


def test_bad_arguments_are_refused_before_anything_runs(tmp_path, iris):
    X, y = iris
    workflow = nested_experiment().build(X, y, workdir=tmp_path / "wd")
    with pytest.raises(ValueError, match="'memory_available'.*positive number"):
        workflow.estimate(n_jobs=1, memory_available=-1)
    with pytest.raises(ValueError, match="'n_jobs'"):
        workflow.estimate(n_jobs=0)
    with pytest.raises(ValueError, match="backend"):
        workflow.estimate(backend="nowhere")
    assert workflow.status()["done"] == 0


def test_repr_is_one_line(estimated):
    _, estimate = estimated
    text = repr(estimate)
    assert "\n" not in text and text.startswith("<Estimate: ~")
    assert "of CPU" in text and "on 2 workers" in text and "per worker" in text and "kept" in text


def test_job_seconds_advice_only_for_job_based_backends(estimated):
    workflow, estimate = estimated
    assert estimate.job_seconds is None  # local: no jobs


def test_cli_estimate_json(tmp_path, iris):
    X, y = iris
    workflow = nested_experiment().build(X, y, workdir=tmp_path / "wd")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "mempamal", "estimate", str(workflow.workdir), "-n", "1", "--json"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["n_workers"] == 1 and document["cpu_seconds"] > 0 and document["wall_seconds"] > 0
    assert set(document["sample"]) == workflow.done_ids()
    text = subprocess.run([sys.executable, "-m", "mempamal", "estimate", str(workflow.workdir), "-n", "1"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert text.returncode == 0 and "of CPU" in text.stdout and "per worker" in text.stdout


BODY = """
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
estimator = LogisticRegression(max_iter=300)
param_grid = {"C": [0.1, 1.0]}
cv, inner_cv, final_fit = 3, 2, False
"""


def test_magics_estimate_a_cell_and_a_workdir(tmp_path, monkeypatch, capsys):
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.chdir(tmp_path)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "mempamal")
    try:
        estimate = shell.run_cell_magic("mempamal", "-n 1 -w wd --estimate", BODY)
        assert isinstance(estimate, mp.Estimate) and estimate.n_workers == 1
        workflow = mp.Workflow.open(tmp_path / "wd")
        assert workflow.done_ids() == set(estimate.sample) and "mempamal_results" not in shell.user_ns
        again = shell.run_line_magic("mempamal", "estimate wd -n 2")
        assert again.n_workers == 2 and again.sample == ()  # the sample is already done
        shell.run_line_magic("mempamal", "--help")
    finally:
        shell.run_line_magic("unload_ext", "mempamal")
        InteractiveShell.clear_instance()
    assert "%mempamal estimate [-b BACKEND] [-n N] [WORKDIR]" in capsys.readouterr().out


def test_builder_estimate_button_shows_the_estimate_in_the_preview_tab(tmp_path, iris):
    from mempamal.jupyter import ExperimentBuilder

    X, y = iris
    builder = ExperimentBuilder(X=X, y=y)
    builder.n_jobs.value, builder.workdir.value = 1, str(tmp_path / "wd")
    estimate = builder.estimate()
    assert isinstance(estimate, mp.Estimate), builder.message.value
    assert builder.tabs.selected_index == 1
    shown = "".join(item.get("text", "") for item in builder.preview_output.outputs)
    assert estimate.line() in shown
