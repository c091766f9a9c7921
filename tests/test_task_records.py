"""The typed task records (mempamal/store/records.py) and the errors a worker sends back.

Every kind of output round-trips through its record unchanged (keys, order,
values); an output of another record version is not trusted and its task
runs again; fields this mempamal does not know are kept and read by nobody;
the exceptions of the family pickle, so a worker's TaskError travels back
with the estimator's own exception.
"""

import json
import pickle
import warnings

import cloudpickle
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp
from mempamal import store
from mempamal.exceptions import (
    BackendError, ClusterUnreachable, DiskFullError, InvalidParameterError, MissingDependency, RunCancelled,
    RunTimeout, SetupError, TaskDiskFullError, TaskError, WorkdirError, WorkdirLocked, WorkflowError,
)
from mempamal.store import integrity, records
from mempamal.store.records import ABSENT, RECORD_VERSION, RECORDS, TaskOutput

from conftest import assert_matches_sklearn

X, y = load_iris(return_X_y=True)


def _nested(**options):
    options = {"return_train_score": True, "return_estimator": True, "predict": "predict", "n_permutations": 1,
               **options}
    return mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0, 10.0]}, cv=3, inner_cv=2,
                         **options)


def _plain():
    return mp.Experiment(LogisticRegression(max_iter=300), cv=3, return_train_score=True, return_estimator=True,
                         predict="predict")


@pytest.fixture(scope="module")
def done_workdirs(tmp_path_factory):
    """A finished nested workdir (fit, select, fit-all, select-all, final, permutations) and a plain one (score)."""
    folder = tmp_path_factory.mktemp("records")
    nested = _nested().build(X, y, workdir=folder / "nested", chunk_size=2)
    plain = _plain().build(X, y, workdir=folder / "plain")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nested.run(n_jobs=1, progress=False)
        plain.run(n_jobs=1, progress=False)
    return nested, plain


def _outputs(workflow):
    for task in workflow.tasks:
        output, problem = integrity.load_output(store.output_path(workflow.workdir, task.id))
        assert problem is None, problem
        yield task, output


def test_every_kind_round_trips_through_its_record(done_workdirs):
    kinds = set()
    for workflow in done_workdirs:
        for task, output in _outputs(workflow):
            parsed = TaskOutput.from_json(output)
            assert type(parsed.record) is RECORDS[task.kind] and parsed.kind == task.kind
            assert (parsed.task, parsed.record_version, parsed.extra) == (task.id, RECORD_VERSION, {})
            written = parsed.to_json()
            del output[integrity.DIGEST_FIELD]
            # The same keys, in the same order, with the same values: the file the task wrote.
            assert list(written) == list(output) and json.dumps(written) == json.dumps(output)
            assert type(parsed.record).from_json(parsed.record.to_json()) == parsed.record
            kinds.add(task.kind)
    assert kinds == {"fit", "select", "score", "fit-all", "select-all", "final"}


def test_records_hold_what_the_options_asked_for(done_workdirs):
    nested, plain = done_workdirs
    select = records.read_record(integrity.load_output(store.output_path(nested.workdir, "select-o0"))[0])
    perm = records.read_record(integrity.load_output(store.output_path(nested.workdir, "perm-0-select-o0"))[0])
    fit = records.read_record(integrity.load_output(store.output_path(nested.workdir, "fit-o0-i0-c0"))[0])
    assert select.model["name"] == "o0" and select.predictions is not None and select.refit_time is ABSENT
    assert perm.model is ABSENT and perm.predictions is ABSENT  # permutations keep neither
    assert fit.points == [0, 1] and set(fit.train_scores) == set(fit.scores) == {"score"}
    score = records.read_record(integrity.load_output(store.output_path(plain.workdir, "score-o1"))[0])
    assert score.train_scores["score"] > 0.8 and score.error is None


def _rewrite(workflow, task_id, change):
    """Rewrite an output as a mempamal that writes ``change(output)`` would (a valid digest)."""
    path = store.output_path(workflow.workdir, task_id)
    output = integrity.load_output(path)[0]
    del output[integrity.DIGEST_FIELD]
    store.atomic_write_bytes(path, integrity.output_bytes(change(output)), durable=False)
    return path


@pytest.mark.parametrize("change", [
    lambda output: {**output, records.VERSION_FIELD: RECORD_VERSION - 1},
    lambda output: {**output, records.VERSION_FIELD: RECORD_VERSION + 1},
    lambda output: {key: value for key, value in output.items() if key != records.VERSION_FIELD},
], ids=["older", "newer", "unversioned"])
def test_an_output_of_another_record_version_is_not_done_and_runs_again(tmp_path, change):
    experiment = _nested(final_fit=False)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    workflow.run(n_jobs=1, progress=False)
    victim = "fit-o1-i0-c0"
    path = _rewrite(workflow, victim, change)
    assert "record of version" in workflow.status()["untrusted"][victim]
    assert victim not in workflow.done_ids()
    with pytest.raises(WorkdirError, match="record version"):
        TaskOutput.from_json(integrity.load_output(path)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = workflow.run(n_jobs=1, progress=False)
    assert TaskOutput.from_json(integrity.load_output(path)[0]).record_version == RECORD_VERSION
    assert workflow.status()["done"] == workflow.status()["total"]
    assert_matches_sklearn(results, experiment, X, y)


def test_an_older_version_read_by_a_dependent_is_removed_and_run_again(tmp_path):
    experiment = _nested(final_fit=False, n_permutations=0)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    for task in workflow.tasks:
        if task.kind == "fit":
            mp.run_task(workflow.workdir, task.id)
    path = _rewrite(workflow, "fit-o0-i1-c0", lambda output: {**output, records.VERSION_FIELD: 0})
    with pytest.raises(TaskError, match="record of version 0"):
        mp.run_task(workflow.workdir, "select-o0")
    assert not path.exists()  # removed: `run` runs it again
    results = workflow.run(n_jobs=1, progress=False)
    assert_matches_sklearn(results, experiment, X, y)


def test_unknown_fields_are_kept_and_read_by_nobody(tmp_path):
    experiment = _nested(n_permutations=0)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    for task in workflow.tasks:
        if task.kind == "fit-all":
            mp.run_task(workflow.workdir, task.id)
    mp.run_task(workflow.workdir, "select-all")
    # A later mempamal of the same record version may add a field (e.g. how long it queued).
    path = _rewrite(workflow, "select-all", lambda output: {**output, "queue_wait_seconds": 4.5})
    output = integrity.load_output(path)[0]
    parsed = TaskOutput.from_json(output)
    assert parsed.extra == {"queue_wait_seconds": 4.5}
    del output[integrity.DIGEST_FIELD]
    assert parsed.to_json() == output and list(parsed.to_json())[-1] == "queue_wait_seconds"
    assert "select-all" in workflow.done_ids()  # still trusted
    results = workflow.run(n_jobs=1, progress=False)
    # the results hold what tasks computed, not how they ran
    assert "queue_wait_seconds" not in results.raw["final_fit"] and "versions" not in results.raw["final_fit"]
    assert_matches_sklearn(results, experiment, X, y)
    from sklearn.model_selection import GridSearchCV

    search = GridSearchCV(experiment.estimator, experiment.param_grid, cv=experiment.inner_cv).fit(X, y)
    assert results.best_params_ == search.best_params_
    np.testing.assert_allclose(results.final_cv_results_["mean_test_score"], search.cv_results_["mean_test_score"],
                               rtol=0, atol=1e-12)


def test_a_record_refuses_a_missing_or_unknown_field():
    fields = {"test_scores": {"score": 0.5}, "fit_time": 0.1, "score_time": 0.0, "error": None}
    assert records.ScoreRecord.from_json(fields).model is ABSENT
    with pytest.raises(WorkdirError, match=r"lacks the field\(s\) \['error'\]"):
        records.ScoreRecord.from_json({k: v for k, v in fields.items() if k != "error"})
    with pytest.raises(WorkdirError, match=r"unknown field\(s\) \['colour'\]"):
        records.ScoreRecord.from_json({**fields, "colour": "red"})
    with pytest.raises(WorkdirError, match="no known kind"):
        TaskOutput.from_json({"task": "x", "build": "b", "definition": "d", records.VERSION_FIELD: RECORD_VERSION,
                              "kind": "paint"})


def test_absent_is_one_object_everywhere():
    assert pickle.loads(pickle.dumps(ABSENT)) is ABSENT and cloudpickle.loads(cloudpickle.dumps(ABSENT)) is ABSENT
    assert not ABSENT and repr(ABSENT) == "ABSENT"


# ------------------------------------------------------------ the error family travels


@pytest.mark.parametrize("error", [
    InvalidParameterError("The 'cv' parameter of Experiment must be an int; got 'abc' instead."),
    WorkdirError("wd is not a mempamal workdir"),
    DiskFullError("wd/data/X.npy", 28),
    WorkdirLocked("wd is being run by pid 12 on host-a", {"pid": 12, "host": "host-a"}),
    TaskError("Task 'final' of wd could not run: missing file"),
    TaskDiskFullError("Task 'final' of wd not run to the end (disk full): ...", "wd/results.json", 28),
    WorkflowError({"fit-o0-i0-c0": "ValueError: bad", "select-o0": "not run: depends on failed task 'fit-o0-i0-c0'"},
                  "wd"),
    RunCancelled("the run was cancelled"),
    SetupError("put the run under a main guard"),
    BackendError("The Dask cluster has no worker after 60 s"),
    ClusterUnreachable("The dask backend could not reach a scheduler at 'tcp://127.0.0.1:9'"),
    MissingDependency("The dask backend needs distributed"),
    RunTimeout("the run of wd is still going after 5 s"),
], ids=lambda error: type(error).__name__)
def test_every_exception_of_the_family_pickles(error):
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        copy = loads(dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert vars(copy) == vars(error)


def test_a_task_error_travels_with_the_estimator_exception():
    from mempamal.engine.failures import raise_estimator_error, reported

    error = TaskError("Task 'score-o0' of wd failed: ValueError: bad C")
    error.estimator_exception = ValueError("bad C")
    copy = cloudpickle.loads(cloudpickle.dumps(reported(error)))
    cause = WorkflowError({"score-o0": copy}, "wd")
    assert cause.failed == {"score-o0": str(error)}  # messages only
    with pytest.raises(ValueError, match="bad C") as info:
        raise_estimator_error({"score-o0": copy}, cause=cause)
    assert info.value.__cause__ is cause


def test_error_score_raise_raises_the_estimators_own_exception_from_worker_processes(tmp_path):
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [1.0, -1.0]}, cv=3, inner_cv=2,
                               error_score="raise", final_fit=False)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="'C' parameter of LogisticRegression") as info:
            workflow.run(backend="local", n_jobs=2, progress=False)  # two worker processes: the error pickled
    # scikit-learn's own class (an InvalidParameterError of sklearn), not ours nor a TaskError.
    assert type(info.value).__module__.startswith("sklearn") and not isinstance(info.value, mp.MempamalError)
    error = info.value.__cause__
    assert isinstance(error, WorkflowError) and all(isinstance(m, str) for m in error.failed.values())
    assert "fit-o0-i0-c1" in error.failed and error.failed["select-o0"].startswith("not run")
