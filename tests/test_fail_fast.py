"""Fail fast before launching (issue 25, part 4): a job backend fits once in the driver before submitting.

Data every task would fail on (a 3-D ``X``, a single-class ``y``, a
continuous ``y`` for a classifier) is refused with scikit-learn's own error
before anything reaches the real Slurm: no ``sbatch`` call (``squeue`` and
``sacct`` know no job of the workdir), no submission record.  A grid point
that fails alone (``error_score=nan``) is a result: the run is submitted and
equals scikit-learn's.  ``check_first=False`` submits anyway.
"""

import time
import uuid

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.svm import SVC

import mempamal as mp
from mempamal.engine.first_fit import check_first_fit

from conftest import assert_matches_sklearn
from slurm_cluster import require_slurm, sacct_job_names, sacct_problem

X, y = load_iris(return_X_y=True)
X3 = X.reshape(len(X), 2, 2)


def _fit_error(estimator, X, y):
    """What scikit-learn itself raises when it fits this."""
    with pytest.raises(Exception) as raised:
        estimator.fit(X, y)
    return raised.value


def _jobs_of(workdir, since):
    """Jobs Slurm knows for this workdir: in the queue, and in accounting when it runs."""
    import subprocess

    queued = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True).stdout.split()
    names = queued + (sacct_job_names(since) if sacct_problem() is None else [])
    return [name for name in names if name.startswith(f"mempamal-{workdir.name}")]


def _workdir(tmp_path):
    return tmp_path / f"ff-{uuid.uuid4().hex[:8]}"  # job names carry it: no other test's jobs


@pytest.mark.parametrize("case", ["3-D X", "single-class y", "continuous y"])
def test_data_every_task_would_fail_on_is_refused_before_any_slurm_job(tmp_path, case):
    require_slurm()
    data = {"3-D X": (X3, y), "single-class y": (X, np.zeros(len(y), int)), "continuous y": (X, X[:, 0])}[case]
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=KFold(3),
                               inner_cv=KFold(2))
    workflow = experiment.build(*data, workdir=_workdir(tmp_path))
    since = time.time()
    with pytest.raises(mp.TaskError) as refused:
        workflow.run(backend="slurm", n_jobs=2, poll_seconds=0.3)
    expected = _fit_error(LogisticRegression(max_iter=300), *data)
    cause = refused.value.__cause__
    assert type(cause) is type(expected) and str(cause) == str(expected)  # scikit-learn's own error
    message = str(refused.value)
    assert message.startswith("Nothing submitted to slurm: the first fit, tried in this process (task 'fit-o0-i0-c0'")
    assert "grid point 0 {'C': 0.1}" in message and "and so did grid point 1 {'C': 1.0}" in message
    assert "check_first=False" in message
    assert not (workflow.workdir / "submissions").exists()  # no record, no script
    time.sleep(1)
    assert _jobs_of(workflow.workdir, since) == []
    assert workflow.status().done == 0


def test_plain_cross_validation_is_refused_too(tmp_path):
    require_slurm()
    workflow = mp.Experiment(LogisticRegression(max_iter=300), cv=KFold(3)).build(
        X, np.zeros(len(y), int), workdir=_workdir(tmp_path))
    with pytest.raises(mp.TaskError, match=r"task 'score-o0', the estimator on outer fold 0's training set"):
        workflow.run(backend="slurm", n_jobs=2)
    assert not (workflow.workdir / "submissions").exists()


def test_one_failing_grid_point_still_submits_and_equals_scikit_learn(tmp_path):
    require_slurm()
    experiment = mp.Experiment(SVC(), param_grid={"C": [-1.0, 1.0]}, cv=StratifiedKFold(3), inner_cv=KFold(2),
                               error_score=np.nan)
    workflow = experiment.build(X, y, workdir=_workdir(tmp_path))
    assert check_first_fit(workflow.workdir, workflow.table, workflow.pending_ids()) == "one point failed"
    since = time.time()
    with pytest.warns(UserWarning):  # scikit-learn's own fit-failure warning, from the reference search
        results = workflow.run(backend="slurm", n_jobs=2, poll_seconds=0.3)
        assert_matches_sklearn(results, experiment, X, y)
    assert (workflow.workdir / "submissions" / "slurm.json").exists()
    if sacct_problem() is None:
        assert _jobs_of(workflow.workdir, since)


def test_error_score_raise_refuses_on_the_first_failing_fit(tmp_path):
    workflow = mp.Experiment(SVC(), param_grid={"C": [-1.0, 1.0]}, cv=KFold(3), inner_cv=KFold(2),
                             error_score="raise").build(X, y, workdir=_workdir(tmp_path))
    with pytest.raises(mp.TaskError, match="with error_score='raise' every task fitting it raises this") as refused:
        check_first_fit(workflow.workdir, workflow.table, workflow.pending_ids(), backend="slurm")
    assert "The 'C' parameter of SVC must be a float" in str(refused.value.__cause__)


def test_check_first_false_submits_and_the_jobs_fail_as_before(tmp_path):
    """Every job runs, every fit fails, and the results say it as cross_validate does ("All the 3 fits failed")."""
    require_slurm()
    experiment = mp.Experiment(LogisticRegression(max_iter=300), cv=KFold(3))
    workflow = experiment.build(X3, y, workdir=_workdir(tmp_path))
    with pytest.raises(ValueError, match="All the 3 fits failed"):
        workflow.run(backend="slurm", n_jobs=2, poll_seconds=0.3, check_first=False)
    assert (workflow.workdir / "submissions" / "slurm.json").exists()


def test_an_estimate_sample_is_the_proof_and_nothing_is_fitted_again(tmp_path):
    workflow = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=KFold(3),
                             inner_cv=KFold(2)).build(X, y, workdir=_workdir(tmp_path))
    workflow.estimate(n_jobs=1)
    assert check_first_fit(workflow.workdir, workflow.table, workflow.pending_ids()) == "output"


def test_the_soma_workflow_backend_refuses_too(tmp_path):
    pytest.importorskip("soma_workflow")
    workflow = mp.Experiment(LogisticRegression(max_iter=300), cv=KFold(3)).build(X3, y, workdir=_workdir(tmp_path))
    with pytest.raises(mp.TaskError, match="Nothing submitted to soma-workflow"):
        workflow.run(backend="soma-workflow", n_jobs=1)
    assert not (workflow.workdir / "submissions").exists()


def test_check_first_is_validated(tmp_path):
    workflow = mp.Experiment(LogisticRegression(), cv=KFold(3)).build(X, y, workdir=_workdir(tmp_path))
    with pytest.raises(mp.InvalidParameterError, match="'check_first' parameter"):
        workflow.run(backend="slurm", check_first="yes")
