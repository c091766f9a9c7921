"""A worker keeps a workdir loaded between tasks; a build file changed meanwhile is still refused.

``engine/context.py`` caches the experiment, task table and memory-mapped
data per process and verifies the build files' digests once; each task then
only ``stat``s the files it uses and computes a digest again when a stat
changed.  These tests change real files between two tasks run by the same
process (the context cached) and check the second task's verdict.
"""

import os
import shutil

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp
from mempamal import store
from mempamal.engine import context as context_module

from slow_experiment import assert_matches_sklearn


def _workflow(tmp_path):
    X, y = load_iris(return_X_y=True)
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    fits = [task.id for task in workflow.tasks if task.kind == "fit"]
    assert mp.run_task(workflow.workdir, fits[0]) == "done"
    assert str(workflow.workdir) in context_module._CONTEXTS  # this process now holds it loaded
    return experiment, workflow, fits, X, y


def _overwrite_in_place(path):
    payload = bytearray(path.read_bytes())
    payload[-8:] = np.float64(-1.0).tobytes()  # same size, other last value
    with open(path, "r+b") as handle:  # same inode: a memory map of it would see the change
        handle.write(payload)


def _swap(path):
    replacement = path.with_name("replacement")
    shutil.copy(path, replacement)
    _overwrite_in_place(replacement)
    os.replace(replacement, path)  # another inode, same size


@pytest.mark.parametrize("change", [_overwrite_in_place, _swap], ids=["overwritten", "swapped"])
@pytest.mark.parametrize("name", ["data/X.npy", "data/y.npy", "splits/main.npz", "experiment.pkl"])
def test_build_file_changed_between_two_tasks_of_one_worker_is_refused(tmp_path, name, change):
    _, workflow, fits, _, _ = _workflow(tmp_path)
    path = workflow.workdir / name
    change(path)
    with pytest.raises(mp.TaskError, match="is not the file this build wrote") as caught:
        mp.run_task(workflow.workdir, fits[1])
    assert str(path) in str(caught.value)
    assert not store.output_path(workflow.workdir, fits[1]).exists()


def test_touched_build_file_with_the_same_content_is_verified_again_and_accepted(tmp_path):
    experiment, workflow, fits, X, y = _workflow(tmp_path)
    path = workflow.workdir / "data" / "X.npy"
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    assert mp.run_task(workflow.workdir, fits[1]) == "done"
    assert_matches_sklearn(workflow.run(n_jobs=1, progress=False), experiment, X, y)
