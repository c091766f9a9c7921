"""Nobody in: files others could write are refused before anything is unpickled.

Every planted pickle below would create a marker file when unpickled; the
tests assert both the refusal (naming the file and the reason) and that the
marker never appears. A control test proves the marker mechanism works.
"""

import os
import shutil
import stat

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_validate

import mempamal as mp
from mempamal import store

from trust_helpers import other_user, plant_pickle, tree_snapshot  # noqa: F401 (fixture)

X_IRIS, Y_IRIS = load_iris(return_X_y=True)


def _experiment():
    return mp.Experiment(LogisticRegression(max_iter=300), cv=3)


def _data(kind):
    """Iris in the four stored data kinds: .npy, sparse .npz, pandas and object pickles."""
    if kind == "numpy":
        return X_IRIS, Y_IRIS
    if kind == "sparse":
        return sp.csr_matrix(X_IRIS), Y_IRIS
    if kind == "pandas":
        return pd.DataFrame(X_IRIS, columns=list("abcd")), pd.Series(Y_IRIS)
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)
    return X_IRIS, names[Y_IRIS]  # string labels as an object array


@pytest.fixture
def umask_zero():
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.mark.parametrize("kind", ["numpy", "sparse", "pandas", "object"])
def test_every_workdir_entry_is_user_only_under_umask_0_and_results_match_sklearn(tmp_path, umask_zero, kind):
    X, y = _data(kind)
    workdir = tmp_path / "wd"
    results = _experiment().run(X, y, workdir=workdir, n_jobs=1, progress=False)
    expected = cross_validate(LogisticRegression(max_iter=300), X, y, cv=3)["test_score"]
    np.testing.assert_allclose(results.test_scores["score"], expected, rtol=0, atol=1e-12)
    modes = {name: stat.S_IMODE(info[0]) for name, info in tree_snapshot(workdir).items()}
    assert modes, "the workdir is empty"
    loose = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert not loose, f"entries readable or writable by others under umask 0: {loose}"
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o700


def test_object_arrays_are_stored_as_checked_pickles_and_npy_is_never_unpickled(tmp_path):
    X, y = _data("object")
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd")
    data = workflow.workdir / "data"
    assert sorted(os.listdir(data)) == ["X.npy", "y.pkl"]
    # An object array smuggled into a .npy (mode 0600, owned by us) must not
    # be unpickled: numeric arrays load with allow_pickle=False.
    marker = tmp_path / "unpickled"
    from trust_helpers import TouchOnUnpickle

    evil = np.empty(1, dtype=object)
    evil[0] = TouchOnUnpickle(marker)
    (data / "X.npy").unlink()
    with open(data / "X.npy", "wb") as handle:
        np.save(handle, evil, allow_pickle=True)
    os.chmod(data / "X.npy", 0o600)
    with pytest.raises(store.WorkdirError, match=r"X\.npy.*not a plain numeric array"):
        store.load_array_like(data, "X", "numpy")
    with pytest.raises(mp.TaskError, match=r"X\.npy"):  # also caught earlier by the build's file digests
        mp.run_task(workflow.workdir, "score-o0")
    assert not marker.exists()


def test_control_a_private_planted_pickle_does_run_code_so_the_marker_is_a_real_probe(tmp_path):
    workflow = _experiment().build(*_data("pandas"), workdir=tmp_path / "wd")
    marker = tmp_path / "unpickled"
    plant_pickle(workflow.workdir / "data" / "X.pkl", marker)
    store.load_pickle(workflow.workdir, workflow.workdir / "data" / "X.pkl")
    assert marker.exists()


# (file to plant, data kind that makes mempamal store that file)
PICKLES = [("experiment.pkl", "numpy"), ("data/X.pkl", "pandas"), ("data/y.pkl", "object")]


def _group_writable_file(workdir, relative):
    os.chmod(workdir / relative, 0o620)
    return "writable by other users"


def _world_writable_file(workdir, relative):
    os.chmod(workdir / relative, 0o606)
    return "writable by other users"


def _group_writable_folder(workdir, relative):
    os.chmod((workdir / relative).parent, 0o770)
    return "writable by other users"


def _linked_folder(workdir, relative):
    """The folder holding the pickle replaced by a link to a shared folder."""
    folder = (workdir / relative).parent
    shared = workdir.parent / "shared"
    shutil.move(folder, shared)
    os.symlink(shared, folder)
    return "symbolic link"


def _linked_file(workdir, relative):
    """The pickle itself replaced by a link to a (private, our own) file elsewhere."""
    elsewhere = workdir.parent / "elsewhere.pkl"
    shutil.move(workdir / relative, elsewhere)
    os.symlink(elsewhere, workdir / relative)
    return "symbolic link"


FAULTS = [_group_writable_file, _world_writable_file, _group_writable_folder, _linked_folder, _linked_file]


def _workdir_with_planted_pickle(tmp_path, relative, kind):
    """A built workdir whose ``relative`` pickle creates the returned marker when loaded."""
    workdir = _experiment().build(*_data(kind), workdir=tmp_path / "wd").workdir
    marker = tmp_path / "unpickled"
    plant_pickle(workdir / relative, marker)
    return workdir, marker


# The workdir itself may be reached through a link the user made, so a linked
# folder is a fault only below it (not for experiment.pkl's folder).
PICKLE_FAULTS = [pytest.param(relative, kind, fault, id=f"{relative}-{fault.__name__.strip('_')}")
                 for relative, kind in PICKLES for fault in FAULTS
                 if not (fault is _linked_folder and "/" not in relative)]


@pytest.mark.parametrize("relative,kind,fault", PICKLE_FAULTS)
def test_pickle_writable_by_others_or_behind_a_link_is_refused_before_unpickling(tmp_path, relative, kind, fault):
    workdir, marker = _workdir_with_planted_pickle(tmp_path, relative, kind)
    reason = fault(workdir, relative)
    with pytest.raises(mp.TaskError, match=reason) as raised:
        mp.run_task(workdir, "score-o0")
    assert str(workdir) in str(raised.value)
    with pytest.raises(store.WorkdirError, match=reason):
        store.load_pickle(workdir, workdir / relative)
    assert not marker.exists(), "the planted pickle was unpickled"
    assert not store.output_path(workdir, "score-o0").exists()


@pytest.mark.parametrize("relative,kind", PICKLES, ids=[p for p, _ in PICKLES])
def test_pickle_owned_by_another_user_is_refused_before_unpickling(tmp_path, relative, kind, other_user):
    workdir, marker = _workdir_with_planted_pickle(tmp_path, relative, kind)
    os.chown(workdir / relative, other_user, -1)
    name = relative.split("/")[-1]
    # Root (the only one who can chown) also gets the uid-mapping hint for shared filesystems.
    refusal = rf"{name}.*belongs to another user \(uid {other_user}, while this process runs as uid 0\).*uid mapping"
    with pytest.raises(mp.TaskError, match=refusal):
        mp.run_task(workdir, "score-o0")
    with pytest.raises(store.WorkdirError, match="belongs to another user"):
        store.load_pickle(workdir, workdir / relative)
    assert not marker.exists(), "the planted pickle was unpickled"


def test_data_folder_owned_by_another_user_is_refused(tmp_path, other_user):
    workflow = _experiment().build(*_data("pandas"), workdir=tmp_path / "wd")
    marker = tmp_path / "unpickled"
    plant_pickle(workflow.workdir / "data" / "X.pkl", marker)
    os.chown(workflow.workdir / "data", other_user, -1)
    with pytest.raises(mp.TaskError, match=r"data: it belongs to another user"):
        mp.run_task(workflow.workdir, "score-o0")
    assert not marker.exists()


@pytest.mark.parametrize("reader", ["Results.load", "Workflow.finished_folds"])
def test_readers_of_results_check_the_experiment_pickle_too(tmp_path, reader):
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    workflow = experiment.build(*_data("numpy"), workdir=tmp_path / "wd")
    workflow.run(n_jobs=1, progress=False)
    marker = tmp_path / "unpickled"
    plant_pickle(workflow.workdir / "experiment.pkl", marker)
    os.chmod(workflow.workdir / "experiment.pkl", 0o660)
    read = {"Results.load": lambda: mp.Results.load(workflow.workdir),
            "Workflow.finished_folds": workflow.finished_folds}[reader]
    with pytest.raises(store.WorkdirError, match=r"experiment\.pkl.*writable by other users"):
        read()
    assert not marker.exists()


# ------------------------------------------------------- item 9: folders
FOLDERS = ["outputs", "logs", "data", "splits"]


@pytest.mark.parametrize("folder", FOLDERS)
def test_world_writable_workdir_folder_is_refused_with_the_reason(tmp_path, folder):
    workflow = _experiment().build(*_data("numpy"), workdir=tmp_path / "wd")
    os.chmod(workflow.workdir / folder, 0o777)
    # The run refuses once, before dispatching; every task refuses too (where it
    # runs: a cluster node may see other modes).
    with pytest.raises(mp.WorkdirError, match=rf"{folder}: it is writable by other users"):
        workflow.run(n_jobs=1, progress=False)
    assert store.finished_task_ids(workflow.workdir) == set()
    with pytest.raises(mp.TaskError, match=rf"{folder}: it is writable by other users"):
        mp.run_task(workflow.workdir, "score-o0")


@pytest.mark.parametrize("folder", FOLDERS)
def test_workdir_folder_replaced_by_a_link_is_refused_with_the_reason(tmp_path, folder):
    workflow = _experiment().build(*_data("numpy"), workdir=tmp_path / "wd")
    shared = tmp_path / "shared"
    shutil.move(workflow.workdir / folder, shared)
    os.symlink(shared, workflow.workdir / folder)
    with pytest.raises(mp.WorkdirError, match=rf"{folder}: it is a symbolic link"):
        workflow.run(n_jobs=1, progress=False)


def test_outputs_planted_through_a_linked_folder_are_never_trusted(tmp_path):
    """Someone fills a shared folder with outputs of another experiment and links it in
    (the build-id stamps reject them too; the link alone is refused)."""
    planted = mp.Experiment(LogisticRegression(C=1e-3, max_iter=300), cv=3).build(
        *_data("numpy"), workdir=tmp_path / "other")
    planted.run(n_jobs=1, progress=False)
    workflow = _experiment().build(*_data("numpy"), workdir=tmp_path / "wd")
    shutil.rmtree(workflow.workdir / "outputs")
    os.symlink(planted.workdir / "outputs", workflow.workdir / "outputs")
    shutil.copy(planted.workdir / "results.json", workflow.workdir / "results.json")
    theirs = sorted(os.listdir(planted.workdir / "outputs"))
    with pytest.raises(mp.WorkdirError, match=r"outputs: it is a symbolic link"):
        workflow.run(n_jobs=1, progress=False)
    # Nothing is deleted through the link either: the folder it points to is not ours to clean.
    assert sorted(os.listdir(planted.workdir / "outputs")) == theirs


@pytest.mark.parametrize("relative", ["data/y.npy", "data/X.npy", "splits/main.npz"])
def test_numeric_file_writable_by_others_is_refused_too(tmp_path, relative):
    """Not code, but planted numbers would give wrong results that look right."""
    workflow = _experiment().build(*_data("numpy"), workdir=tmp_path / "wd")
    os.chmod(workflow.workdir / relative, 0o666)
    with pytest.raises(mp.TaskError, match=rf"{relative}: it is writable by other users"):
        mp.run_task(workflow.workdir, "score-o0")


def test_a_whole_workdir_of_another_user_is_refused(tmp_path, other_user):
    """E.g. a colleague's workdir copied with `cp -a`: run nothing of it."""
    workdir = _experiment().build(*_data("numpy"), workdir=tmp_path / "wd").workdir
    for folder, dirs, files in os.walk(workdir):
        for name in [folder] + [os.path.join(folder, entry) for entry in dirs + files]:
            os.chown(name, other_user, -1)
    with pytest.raises(mp.WorkdirError, match=r"wd: it belongs to another user"):
        mp.Workflow.open(workdir).run(n_jobs=1, progress=False)
    marker = tmp_path / "unpickled"
    plant_pickle(workdir / "experiment.pkl", marker)
    os.chown(workdir / "experiment.pkl", other_user, -1)
    with pytest.raises(mp.TaskError, match=r"wd: it belongs to another user"):
        mp.run_task(workdir, "score-o0")
    assert not marker.exists()


def test_pickle_planted_by_a_real_second_user_process_is_never_unpickled(other_user):
    """The whole attack with real processes: another user's process writes into a
    data folder left world-writable; our task must refuse, not run their code."""
    import pickle
    import subprocess
    import tempfile

    from trust_helpers import OTHER_USER, TouchOnUnpickle

    if shutil.which("runuser") is None:
        pytest.skip("runuser is needed to act as the second user")
    # pytest's own temporary folders are private to us: this one the second
    # user can traverse (0711), as a shared scratch folder would be.
    base = tempfile.mkdtemp(prefix="mempamal-h2-attack-", dir="/tmp")
    try:
        os.chmod(base, 0o711)
        workflow = _experiment().build(*_data("pandas"), workdir=os.path.join(base, "wd"))
        os.chmod(workflow.workdir, 0o711)
        os.chmod(workflow.workdir / "data", 0o777)  # the mistake being exploited
        planted = workflow.workdir / "data" / "X.pkl"
        planted.unlink()
        marker = os.path.join(base, "unpickled")
        attack = subprocess.run(["runuser", "-u", OTHER_USER, "--", "sh", "-c", 'cat > "$0"', str(planted)],
                                input=pickle.dumps(TouchOnUnpickle(marker)), capture_output=True, timeout=60)
        assert attack.returncode == 0, attack.stderr
        assert planted.stat().st_uid == other_user
        with pytest.raises(mp.TaskError, match="data: it is writable by other users"):
            mp.run_task(workflow.workdir, "score-o0")
        os.chmod(workflow.workdir / "data", 0o700)  # the folder fixed, the planted file stays
        with pytest.raises(mp.TaskError, match=r"X\.pkl: it belongs to another user"):
            mp.run_task(workflow.workdir, "score-o0")
        assert not os.path.exists(marker), "code planted by another user ran"
    finally:
        shutil.rmtree(base)
