"""One vocabulary for task states: done / failed / blocked by a failure / pending.

`mempamal run`, `mempamal status`, `mempamal results`, ``wf.status()``,
``run.status()`` and the displays count the same tasks with the same words,
each task in exactly one state.  The expected numbers come from the
experiment itself (which grid point cannot be fitted), not from our output.
"""

import json
import re
import subprocess
import sys
import warnings

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp

X, y = load_iris(return_X_y=True)
N_OUTER, N_INNER = 3, 2


def cli(*args):
    return subprocess.run([sys.executable, "-m", "mempamal", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def failing_workdir(tmp_path):
    """A nested CV whose grid point C=-1 raises in every inner fit (``error_score="raise"``)."""
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [1.0, -1.0]}, cv=N_OUTER,
                               inner_cv=N_INNER, error_score="raise", final_fit=False)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    # What must fail: every fit of the C=-1 chunk; what is blocked: every
    # select (it needs all inner fits of its fold) and final.
    expected = {"failed": N_OUTER * N_INNER, "blocked": N_OUTER + 1, "done": N_OUTER * N_INNER, "pending": 0}
    assert sum(expected.values()) == len(workflow.tasks)
    return workflow, expected


def test_run_status_and_results_say_the_same_counts(failing_workdir):
    workflow, expected = failing_workdir
    ran = cli("run", workflow.workdir, "-n", "1", "--no-progress")
    assert ran.returncode == 1
    assert (f"{expected['failed']} task(s) failed, {expected['blocked']} blocked by a failure"
            in ran.stderr), ran.stderr
    assert "Traceback" not in ran.stderr

    shown = cli("status", workflow.workdir)
    assert shown.returncode == 0, shown.stderr
    line = shown.stdout.splitlines()[0]
    assert line.endswith(f"{expected['done']}/{len(workflow.tasks)} tasks done, {expected['failed']} failed, "
                         f"{expected['blocked']} blocked by a failure, {expected['pending']} pending"), line
    as_json = json.loads(cli("status", workflow.workdir, "--json").stdout)
    assert {k: as_json[k] for k in expected} == expected and as_json["total"] == len(workflow.tasks)

    results = cli("results", workflow.workdir)
    assert results.returncode == 1
    unfinished = expected["failed"] + expected["blocked"]
    assert f"{unfinished} of {len(workflow.tasks)} tasks are unfinished" in results.stderr
    # a command-line user is told the command, not Python
    assert f"`mempamal run {workflow.workdir}`" in results.stderr, results.stderr


def test_python_api_and_displays_use_the_same_states(failing_workdir):
    workflow, expected = failing_workdir
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # error_score="raise": the estimator's own exception, whose cause is the run's WorkflowError.
        with pytest.raises(ValueError) as info:
            workflow.run(n_jobs=1, progress=False)
    error = info.value.__cause__
    assert isinstance(error, mp.WorkflowError)
    assert len(error.failed) == expected["failed"] + expected["blocked"]  # every task not done, as before
    assert sorted(error.blocked) == sorted(t.id for t in workflow.tasks if t.kind in ("select", "final"))
    assert str(error).startswith(f"{expected['failed']} task(s) failed, {expected['blocked']} blocked")

    status = workflow.status()
    assert {k: status[k] for k in expected} == expected
    assert set(workflow.blocked_ids()) == set(error.blocked)
    assert not set(workflow.blocked_ids()) & set(workflow.failed_ids())

    from mempamal.graph.status import task_counts

    counts = task_counts(workflow)
    assert {k: counts[k] for k in expected} == expected and counts["running"] == 0
    assert counts["by_kind"]["select"]["blocked"] == N_OUTER

    from mempamal.display import workflow_html

    page = workflow_html(workflow, graph=False)
    for state, number in expected.items():
        if state != "done":
            assert re.search(rf"<td[^>]*>{state}</td><td[^>]*>{number}</td>", page), (state, page)

    from mempamal.display import GraphDisplay

    graph = GraphDisplay.from_workflow(workflow)
    assert sorted(graph.status.values()).count("blocked") == expected["blocked"]
    assert sorted(graph.status.values()).count("failed") == expected["failed"]


def test_a_fresh_workdir_is_all_pending_and_a_finished_one_all_done(tmp_path):
    experiment = mp.Experiment(LogisticRegression(max_iter=300), cv=N_OUTER)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    n = len(workflow.tasks)
    fresh = workflow.status()
    assert (fresh["done"], fresh["failed"], fresh["blocked"], fresh["pending"]) == (0, 0, 0, n)
    workflow.run(n_jobs=1, progress=False)
    finished = workflow.status()
    assert (finished["done"], finished["failed"], finished["blocked"], finished["pending"]) == (n, 0, 0, 0)
    assert cli("status", workflow.workdir).stdout.splitlines()[0].endswith(
        f"{n}/{n} tasks done, 0 failed, 0 blocked by a failure, 0 pending")
