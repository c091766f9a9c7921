"""Every workdir file truncated, overwritten with garbage or swapped.

Each case ends in one of two ways, fixed per file: a clear error (a mempamal
exception whose message names the damaged file, nothing unpickled from it),
or the damage is repaired by running again (results equal to scikit-learn's).
Never a raw traceback, never a wrong answer.
"""

import json
import shutil

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp
from mempamal import store
from mempamal.store.lock import WorkdirLocked

from slow_experiment import assert_matches_sklearn, comparable

CLEAR_ERRORS = (mp.WorkdirError, mp.TaskError, mp.WorkflowError, WorkdirLocked)


def _experiment(grid=(0.1, 1.0)):
    return mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": list(grid)}, cv=3, inner_cv=2,
                         n_permutations=1, random_state=0)


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    """A half-done workdir, a finished one, a donor of another experiment, the reference answer."""
    root = tmp_path_factory.mktemp("corruption")
    X, y = load_iris(return_X_y=True)
    half = _experiment().build(X, y, workdir=root / "half")
    for task in half.tasks[: len(half.tasks) // 2]:
        mp.run_task(half.workdir, task.id)
    finished = _experiment().build(X, y, workdir=root / "finished")
    reference = finished.run(n_jobs=1, progress=False)
    assert_matches_sklearn(reference, _experiment(), X, y)
    donor = _experiment(grid=(5.0,)).build(X, y, workdir=root / "donor")
    donor.run(n_jobs=1, progress=False)
    return {"half": half.workdir, "finished": finished.workdir, "donor": donor.workdir,
            "answer": comparable(reference.raw), "X": X, "y": y}


def _OUT(task_id):
    """Path of an output relative to the workdir."""
    return store.output_path("", task_id).as_posix()


def _truncate(path, *_):
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])


def _garbage(path, *_):
    path.write_bytes(b"\x80\x04garbage that is neither JSON nor numpy nor a pickle" * 3)


def _swap_with(other):
    def swap(path, workdir, donor):
        source = donor / other[len("donor:"):] if other.startswith("donor:") else workdir / other
        first, second = path.read_bytes(), source.read_bytes()
        path.write_bytes(second)
        if not other.startswith("donor:"):
            source.write_bytes(first)
    swap.__name__ = f"swapped with {other}"
    return swap


# (file, damage, state of the workdir, expected outcome)
CASES = [
    ("manifest.json", _truncate, "half", "clear"),
    ("manifest.json", _garbage, "half", "clear"),
    ("manifest.json", _swap_with("donor:manifest.json"), "half", "clear"),
    ("experiment.pkl", _truncate, "half", "clear"),
    ("experiment.pkl", _garbage, "finished", "clear"),
    ("experiment.pkl", _swap_with("donor:experiment.pkl"), "half", "clear"),
    ("data/X.npy", _truncate, "half", "clear"),
    ("data/X.npy", _garbage, "finished", "clear"),
    ("data/X.npy", _swap_with("data/y.npy"), "half", "clear"),
    ("data/y.npy", _truncate, "half", "clear"),
    ("data/y.npy", _garbage, "half", "clear"),
    ("splits/main.npz", _truncate, "half", "clear"),
    ("splits/main.npz", _garbage, "half", "clear"),
    ("splits/main.npz", _swap_with("splits/perm-0.npz"), "half", "clear"),
    ("splits/perm-0.npz", _truncate, "half", "clear"),
    ("tasks.json", _truncate, "half", "clear"),
    ("tasks.json", _garbage, "finished", "clear"),
    ("tasks.json", _swap_with("donor:tasks.json"), "half", "clear"),
    (_OUT("fit-o0-i0-c0"), _truncate, "half", "regenerated"),
    (_OUT("fit-o0-i0-c0"), _garbage, "half", "regenerated"),
    (_OUT("fit-o0-i0-c0"), _swap_with(_OUT("fit-o1-i0-c0")), "half", "regenerated"),
    (_OUT("select-o1"), _swap_with("donor:" + _OUT("select-o1")), "finished", "regenerated"),
    ("results.json", _truncate, "finished", "regenerated"),
    ("results.json", _garbage, "finished", "regenerated"),
    ("results.json", _swap_with("donor:results.json"), "finished", "regenerated"),
    ("run.lock", _garbage, "half", "clear"),
    ("run.lock", _truncate, "half", "clear"),
]


@pytest.mark.parametrize("name, damage, state, expected", CASES,
                         ids=[f"{c[0]}-{c[1].__name__.strip('_')}" for c in CASES])
def test_damaged_file_gives_a_clear_error_or_is_regenerated(workdirs, tmp_path, name, damage, state, expected):
    workdir = tmp_path / "wd"
    shutil.copytree(workdirs[state], workdir, symlinks=True)
    path = workdir / name
    if name == "run.lock":
        path.write_text("{}")  # as if a holder had written it: then damaged below
    damage(path, workdir, workdirs["donor"])
    if expected == "clear":
        with pytest.raises(CLEAR_ERRORS) as caught:
            mp.Workflow.open(workdir).run(n_jobs=1, progress=False)
        assert str(path) in str(caught.value) or name in str(caught.value), str(caught.value)
        return
    results = mp.Workflow.open(workdir).run(n_jobs=1, progress=False)
    assert comparable(json.loads((workdir / "results.json").read_text())) == workdirs["answer"]
    assert comparable(results.raw) == workdirs["answer"]


@pytest.mark.parametrize("name", ["data/X.npy", "splits/main.npz", "experiment.pkl", "tasks.json"])
def test_rebuilding_the_same_experiment_repairs_damaged_build_files(workdirs, tmp_path, name):
    workdir = tmp_path / "wd"
    shutil.copytree(workdirs["half"], workdir)
    _truncate(workdir / name)
    with pytest.warns(UserWarning, match=f"{name}.*Building .* again from scratch"):
        workflow = _experiment().build(workdirs["X"], workdirs["y"], workdir=workdir)
    results = workflow.run(n_jobs=1, progress=False)
    assert comparable(results.raw) == workdirs["answer"]
