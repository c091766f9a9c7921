"""Soma-Workflow specifics: the exported file, isolation from the user's config."""

import os
import sys

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp

X, y = load_iris(return_X_y=True)


def _workflow(tmp_path, **kwargs):
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2,
                               **kwargs)
    return experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=2)


def test_export_loads_back_with_soma_workflow_jobs_dependencies_and_groups(tmp_path):
    from soma_workflow.client import Helper

    workflow = _workflow(tmp_path, n_permutations=1, random_state=0)
    path = workflow.export(tmp_path / "wf.json", format="soma-workflow")
    loaded = Helper.unserialize(str(path))
    by_name = {job.name: job for job in loaded.jobs}
    assert len(loaded.jobs) == len(workflow.tasks)
    for task in workflow.tasks:
        name = task.id if task.split_set == "main" or task.kind == "final" else f"{task.split_set} / {task.id[len(task.split_set) + 1:]}"
        assert by_name[name].command == [sys.executable, "-m", "mempamal", "task", str(workflow.workdir), task.id]
    edges = {(a.command[-1], b.command[-1]) for a, b in loaded.dependencies}
    assert edges == {(dep, task.id) for task in workflow.tasks for dep in task.deps}
    group_names = {group.name for group in loaded.groups}
    assert {"fold 0", "fold 1", "fold 2", "perm-0", "perm-0 / fold 0"} <= group_names
    fold0 = next(g for g in loaded.groups if g.name == "fold 0")
    assert {job.command[-1] for job in fold0.elements} == {"fit-o0-i0-c0", "fit-o0-i1-c0", "select-o0"}


def test_export_honours_cluster_python_and_workdir(tmp_path):
    from soma_workflow.client import Helper

    workflow = _workflow(tmp_path)
    path = workflow.export(tmp_path / "wf.json", format="soma-workflow", python="/cluster/bin/python",
                           workdir="/shared/wd")
    commands = [job.command for job in Helper.unserialize(str(path)).jobs]
    assert all(cmd[:5] == ["/cluster/bin/python", "-m", "mempamal", "task", "/shared/wd"] for cmd in commands)


def test_light_mode_run_keeps_home_clean_and_leaves_no_job_processes(tmp_path):
    home = os.environ["HOME"]
    before = set(os.listdir(home))
    workflow = _workflow(tmp_path)
    workflow.run(backend="soma-workflow", n_jobs=2, progress=False)
    assert set(os.listdir(home)) == before, "soma-workflow wrote into HOME"
    assert (workflow.workdir / "soma-workflow" / "soma-workflow.db").exists()
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if str(workflow.workdir).encode() in handle.read():
                    leftovers.append(pid)
        except OSError:
            pass
    assert leftovers == []
