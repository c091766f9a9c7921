"""Bundles: how tasks are grouped into jobs, and the multi-task ``mempamal task`` command.

No cluster needed: bundles are run here by the command line itself, as a
job on a node would run them.
"""

import json
import re
import subprocess
import sys

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp
from mempamal import store
from mempamal.backends.bundles import dependency_levels, make_bundles, measured_seconds

from conftest import assert_matches_sklearn

X, y = load_iris(return_X_y=True)


def _nested(**kwargs):
    options = dict(param_grid={"C": [0.1, 1.0, 10.0]}, cv=3, inner_cv=2)
    options.update(kwargs)
    return mp.Experiment(LogisticRegression(max_iter=300), **options)


def _task_cli(*args):
    return subprocess.run([sys.executable, "-m", "mempamal", "task", *map(str, args)],
                          capture_output=True, text=True)


def _assert_is_a_valid_bundling(workflow, bundles, task_ids):
    levels = dependency_levels(workflow.tasks, task_ids)
    placed = [task_id for bundle in bundles for task_id in bundle.task_ids]
    assert sorted(placed) == sorted(task_ids)  # every task exactly once
    bundle_of = {task_id: bundle for bundle in bundles for task_id in bundle.task_ids}
    for bundle in bundles:
        assert {levels[task_id] for task_id in bundle.task_ids} == {bundle.level}
        expected = {bundle_of[dep].id for task_id in bundle.task_ids
                    for dep in workflow.task(task_id).deps if dep in bundle_of}
        assert set(bundle.deps) == expected
        assert all(bundle_of[task_id].level > 0 or not bundle.deps for task_id in bundle.task_ids)


def test_bundles_keep_levels_apart_and_derive_dependencies_from_their_tasks(tmp_path):
    workflow = _nested(n_permutations=2).build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    task_ids = workflow.pending_ids()
    for options in ({"tasks_per_job": 4}, {"job_seconds": 0.3}, {"tasks_per_job": 1000}, {}):
        bundles = make_bundles(workflow, task_ids, n_workers=3, **options)
        _assert_is_a_valid_bundling(workflow, bundles, task_ids)
    singletons = make_bundles(workflow, task_ids)  # no sizing: one task per job, as before bundles
    assert sorted(b.task_ids for b in singletons) == sorted((task_id,) for task_id in task_ids)


def test_never_fewer_bundles_than_workers_when_a_level_has_enough_tasks(tmp_path):
    # 18 fits + 6 fits of the final search, 3 selects + select-all, final
    workflow = _nested().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    bundles = make_bundles(workflow, workflow.pending_ids(), n_workers=4, tasks_per_job=1000)
    per_level = {}
    for bundle in bundles:
        per_level.setdefault(bundle.level, []).append(len(bundle.task_ids))
    assert sorted(per_level[0]) == [6, 6, 6, 6]  # one big bundle would leave 3 workers idle
    assert per_level[1] == [1, 1, 1, 1] and per_level[2] == [1]  # fewer tasks than workers: one each
    by_size = make_bundles(workflow, workflow.pending_ids(), n_workers=1, tasks_per_job=5)
    assert sorted(len(b.task_ids) for b in by_size if b.level == 0) == [4, 5, 5, 5, 5]  # ceil(24 / 5) = 5


def test_job_seconds_uses_durations_measured_in_the_workdir(tmp_path):
    # Only the fits of the outer folds (the final search's are another kind, not measured here).
    workflow = _nested(final_fit=False).build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    first_fits = [t.id for t in workflow.tasks if t.kind == "fit"][:4]
    for task_id in first_fits:
        mp.run_task(workflow.workdir, task_id)
    measured = measured_seconds(workflow.workdir, workflow.tasks)
    outputs = [json.loads(store.output_path(workflow.workdir, i).read_text()) for i in first_fits]
    durations = sorted(o["end"] - o["start"] for o in outputs)
    assert set(measured) == {"fit"}
    assert measured["fit"] == pytest.approx((durations[1] + durations[2]) / 2)
    pending = workflow.pending_ids()
    fits = [i for i in pending if workflow.task(i).kind == "fit"]
    # 14 fits in jobs of 3.6 measured fits: ceil(3.9) = 4 jobs of 3 or 4 fits
    bundles = make_bundles(workflow, pending, job_seconds=3.6 * measured["fit"])
    assert sorted(len(b.task_ids) for b in bundles if b.level == 0) == [3, 3, 4, 4]
    assert sum(b.seconds for b in bundles if b.level == 0) == pytest.approx(len(fits) * measured["fit"])


@pytest.mark.parametrize("options, message", [
    ({"job_seconds": 0}, "The 'job_seconds' parameter of make_bundles must be a float in the range (0, inf) or None; got 0"),
    ({"tasks_per_job": 2.5}, "The 'tasks_per_job' parameter of make_bundles must be an int in the range [1, inf) or None; got 2.5"),
    ({"job_seconds": 10, "tasks_per_job": 3}, "either 'job_seconds' or 'tasks_per_job', not both"),
    ({"n_workers": 0}, "The 'n_workers' parameter of make_bundles must be an int in the range [1, inf); got 0"),
])
def test_bad_bundle_options_are_refused_with_the_argument_named(tmp_path, options, message):
    workflow = _nested().build(X, y, workdir=tmp_path / "wd")
    with pytest.raises(ValueError, match=re.escape(message)):
        make_bundles(workflow, workflow.pending_ids(), **options)


def test_bundles_run_by_the_task_command_give_sklearns_answer_and_skip_done_tasks(tmp_path):
    workflow = _nested().build(X, y, workdir=tmp_path / "wd", chunk_size=2)
    mp.run_task(workflow.workdir, "fit-o0-i0-c0")
    stamp = store.output_path(workflow.workdir, "fit-o0-i0-c0").stat().st_mtime_ns
    for bundle in make_bundles(workflow, [t.id for t in workflow.tasks], n_workers=2, tasks_per_job=20):
        done = _task_cli(workflow.workdir, *bundle.task_ids)
        assert done.returncode == 0, done.stderr
    assert store.output_path(workflow.workdir, "fit-o0-i0-c0").stat().st_mtime_ns == stamp
    assert_matches_sklearn(mp.Results.load(workflow.workdir), _nested(), X, y)


def test_a_failing_task_does_not_stop_the_rest_of_its_bundle_and_exit_status_says_so(tmp_path):
    experiment = _nested(param_grid={"C": [-1.0, 1.0]}, error_score="raise")
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    bundle = ["fit-o0-i0-c0", "fit-o0-i0-c1", "fit-o0-i1-c1"]  # c0 is C=-1: fails
    done = _task_cli(workflow.workdir, *bundle)
    assert done.returncode == 1
    assert "fit-o0-i0-c0" in done.stderr and "1 of 3 tasks failed" in done.stderr
    assert workflow.done_ids() == {"fit-o0-i0-c1", "fit-o0-i1-c1"}
    assert "InvalidParameterError" in (workflow.workdir / "logs" / "fit-o0-i0-c0.err").read_text()
    # a task whose dependency failed names what is missing
    blocked = _task_cli(workflow.workdir, "select-o0", "fit-o1-i0-c1")
    assert blocked.returncode == 1 and "select-o0" in blocked.stderr
    assert "fit-o1-i0-c1" in workflow.done_ids()


def test_shell_and_makefile_exports_with_bundles_run_the_graph(tmp_path):
    import shutil

    # 2 grid points and no final search (test_final_model's): every bundle is a process
    small = dict(param_grid={"C": [0.1, 1.0]}, final_fit=False)
    workflow = _nested(**small).build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    script = workflow.export(tmp_path / "run.sh", format="shell", tasks_per_job=20, n_jobs=2)
    lines = [line for line in script.read_text().splitlines() if " -m mempamal task " in line]
    assert len(lines) == len(make_bundles(workflow, workflow.pending_ids(), 2, tasks_per_job=20)) < len(workflow.tasks)
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert_matches_sklearn(mp.Results.load(workflow.workdir), _nested(**small), X, y)

    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    other = _nested(**small).build(X, y, workdir=tmp_path / "wd2", chunk_size=1)
    makefile = other.export(tmp_path / "Makefile", format="makefile", job_seconds=5, n_jobs=2)
    ran = subprocess.run(["make", "-j", "2", "-f", str(makefile)], capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert_matches_sklearn(mp.Results.load(other.workdir), _nested(**small), X, y)
    again = subprocess.run(["make", "-f", str(makefile)], capture_output=True, text=True, cwd=tmp_path)
    assert "Nothing to be done" in again.stdout  # every output is a target: finished means done


def test_commands_export_lists_each_bundle_with_its_tasks(tmp_path):
    workflow = _nested().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    path = workflow.export(tmp_path / "cmds.json", format="commands", tasks_per_job=6)
    rows = json.loads(path.read_text())
    assert sorted(t for row in rows for t in row["tasks"]) == sorted(t.id for t in workflow.tasks)
    for row in rows:
        assert row["cmd"].split()[-len(row["tasks"]):] == row["tasks"]


def test_cli_exports_a_slurm_script_with_one_sbatch_per_level(tmp_path):
    workflow = _nested().build(X, y, workdir=tmp_path / "w d", chunk_size=1)
    out = tmp_path / "submit.sh"
    done = subprocess.run([sys.executable, "-m", "mempamal", "export", str(workflow.workdir), "-f", "slurm",
                           "-o", str(out), "--tasks-per-job", "5", "-n", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert subprocess.run(["bash", "-n", str(out)]).returncode == 0  # valid bash
    text = out.read_text()
    assert text.count("$(sbatch --parsable") == 3  # fits, selects, final: one array each
    assert text.count("--dependency=afterok:") == 2
    bad = subprocess.run([sys.executable, "-m", "mempamal", "export", str(workflow.workdir), "-f", "slurm",
                          "-o", str(out), "--tasks-per-job", "0"], capture_output=True, text=True)
    assert bad.returncode == 1 and "The 'tasks_per_job' parameter of export must be an int in the range [1, inf)" in bad.stderr
