"""A full disk during a build or a task names the file, says the disk is full and
leaves nothing behind that a later run would trust.

Two real ways to fill a disk: a small tmpfs mounted for the test (needs root and
permission to mount; skipped otherwise) and the portable ``RLIMIT_FSIZE``
(``ulimit -f``) in a child process, where writes past the limit fail with EFBIG.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_validate

import mempamal as mp
from mempamal import store

from trust_helpers import is_root, python_with_limits, tree_snapshot

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
# 2,000 x 128 float64: 2 MB, larger than the 1 MB tmpfs and the 256 kB limit below.
N_BIG, N_FEATURES = 2000, 128


def _big_data():
    rng = np.random.RandomState(0)
    return rng.normal(size=(N_BIG, N_FEATURES)), np.arange(N_BIG) % 2


def _experiment():
    return mp.Experiment(LogisticRegression(max_iter=300), cv=3)


def _files(snapshot, skip=()):
    """Files of a snapshot (folders' mtimes change when a temp file comes and goes)."""
    import stat

    return {name: info for name, info in snapshot.items()
            if not stat.S_ISDIR(info[0]) and not name.startswith(skip)}


def _assert_no_temp_files(folder):
    leftovers = [name for name in tree_snapshot(folder) if name.split("/")[-1].startswith(".")
                 and name.endswith(".tmp")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


# ---------------------------------------------------------------- tmpfs
@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 1 MB filesystem, unmounted after the test."""
    if not is_root():
        pytest.skip("mounting a small tmpfs needs root; the RLIMIT_FSIZE tests cover this case")
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        # The reusable worker pool may still memory-map data files of the
        # tmpfs: detach it lazily then (it goes away with the last user).
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)


def _fill(folder, keep_free):
    """Fill the filesystem of ``folder`` until about ``keep_free`` bytes are left."""
    info = os.statvfs(folder)
    free = info.f_bavail * info.f_frsize
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, free - keep_free))
    return filler


def test_build_on_a_full_tmpfs_names_the_file_and_leaves_nothing(small_tmpfs):
    X, y = _big_data()
    with pytest.raises(store.DiskFullError, match=r"data/X\.npy: the disk is full \(No space left on device, ENOSPC\)"):
        _experiment().build(X, y, workdir=small_tmpfs / "wd")
    assert os.listdir(small_tmpfs) == [], "the half-written workdir was left behind"


def test_build_into_an_existing_empty_folder_on_a_full_tmpfs_keeps_it_empty(small_tmpfs):
    X, y = _big_data()
    (small_tmpfs / "wd").mkdir()
    with pytest.raises(store.DiskFullError, match="X.npy: the disk is full"):
        _experiment().build(X, y, workdir=small_tmpfs / "wd")
    assert os.listdir(small_tmpfs / "wd") == []
    with pytest.raises(store.WorkdirError, match="not a mempamal workdir"):
        mp.Workflow.open(small_tmpfs / "wd")


def test_task_output_on_a_full_tmpfs_names_the_file_then_resumes_to_sklearn(small_tmpfs):
    workflow = _experiment().build(X_IRIS, Y_IRIS, workdir=small_tmpfs / "wd")
    filler = _fill(small_tmpfs, keep_free=0)
    with pytest.raises(store.DiskFullError, match=r"outputs/other/score-o0\.json: the disk is full"):
        mp.run_task(workflow.workdir, "score-o0")
    assert workflow.status()["done"] == 0, "a task whose output could not be written counts as done"
    _assert_no_temp_files(small_tmpfs)
    filler.unlink()
    results = workflow.run(n_jobs=1, progress=False)
    expected = cross_validate(LogisticRegression(max_iter=300), X_IRIS, Y_IRIS, cv=3)["test_score"]
    np.testing.assert_allclose(results.test_scores["score"], expected, rtol=0, atol=1e-12)


def test_cli_build_and_run_on_a_full_tmpfs_exit_1_with_the_file_name(small_tmpfs, tmp_path):
    workflow = _experiment().build(X_IRIS, Y_IRIS, workdir=small_tmpfs / "wd")
    _fill(small_tmpfs, keep_free=0)
    done = subprocess.run([sys.executable, "-m", "mempamal", "task", str(workflow.workdir), "score-o1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "outputs/other/score-o1.json: the disk is full" in done.stderr
    assert "Traceback" not in done.stderr
    _assert_no_temp_files(small_tmpfs)


# -------------------------------------------------------- RLIMIT_FSIZE
BUILD_SCRIPT = """
import errno, sys, numpy as np, pandas as pd, scipy.sparse as sp, mempamal as mp
from sklearn.linear_model import LogisticRegression
rng = np.random.RandomState(0)
X, y = rng.normal(size=({n}, {p})), np.arange({n}) % 2
X = {{"numpy": X, "sparse": sp.csr_matrix(X), "pandas": pd.DataFrame(X)}}[{kind!r}]
try:
    mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(X, y, workdir={workdir!r})
except mp.store.DiskFullError as exc:
    print(errno.errorcode[exc.errno], exc.path, exc, sep="\\n")
    sys.exit(3)
"""


@pytest.mark.parametrize("kind,stored_as", [("numpy", "X.npy"), ("sparse", "X.npz"), ("pandas", "X.pkl")])
def test_build_past_the_file_size_limit_names_the_file_and_leaves_nothing(tmp_path, kind, stored_as):
    workdir = tmp_path / "wd"
    script = BUILD_SCRIPT.format(n=N_BIG, p=N_FEATURES, workdir=str(workdir), kind=kind)
    done = python_with_limits(script, file_size_limit=256 * 1024, cwd=tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    code, path, message = done.stdout.strip().split("\n", 2)
    assert code == "EFBIG"
    assert path == str(workdir / "data" / stored_as)
    assert f"{stored_as}: the disk is full" in message and "EFBIG" in message
    assert not workdir.exists(), "the half-written workdir was left behind"
    assert sorted(os.listdir(tmp_path)) == [], os.listdir(tmp_path)


def test_cli_run_past_the_file_size_limit_exits_1_naming_the_output_then_resumes(tmp_path):
    """The limit reaches the local pool's worker processes too (they inherit it)."""
    workflow = _experiment().build(X_IRIS, Y_IRIS, workdir=tmp_path / "wd")
    run = [sys.executable, "-m", "mempamal", "run", str(workflow.workdir), "-n", "1", "--no-progress"]
    # 250 bytes: room for the run's lock file (~190), not for a task output (~310).
    done = subprocess.run(run, capture_output=True, text=True, timeout=300, preexec_fn=lambda: _limit_file_size(250))
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"outputs/other/score-o\d\.json: the disk is full", done.stderr), done.stderr
    assert "Traceback" not in done.stderr
    assert store.finished_task_ids(workflow.workdir) == set()
    _assert_no_temp_files(workflow.workdir)
    done = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    expected = cross_validate(LogisticRegression(max_iter=300), X_IRIS, Y_IRIS, cv=3)["test_score"]
    np.testing.assert_allclose(mp.Results.load(workflow.workdir).test_scores["score"], expected, rtol=0, atol=1e-12)


def test_build_then_task_past_the_file_size_limit_keeps_nothing_half_written_and_resumes(tmp_path):
    workflow = _experiment().build(X_IRIS, Y_IRIS, workdir=tmp_path / "wd")
    before = tree_snapshot(workflow.workdir)
    script = (
        "import sys, mempamal as mp\n"
        "try:\n"
        f"    mp.run_task({str(workflow.workdir)!r}, 'score-o2')\n"
        "except mp.store.DiskFullError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    # An output of a score task is ~300 bytes: 64 bytes cannot hold it.
    done = python_with_limits(script, file_size_limit=64)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "outputs/other/score-o2.json: the disk is full" in done.stdout
    assert _files(tree_snapshot(workflow.workdir)) == _files(before), "a failed write changed the workdir"
    results = workflow.run(n_jobs=1, progress=False)
    expected = cross_validate(LogisticRegression(max_iter=300), X_IRIS, Y_IRIS, cv=3)["test_score"]
    np.testing.assert_allclose(results.test_scores["score"], expected, rtol=0, atol=1e-12)
    assert json.loads(store.output_path(workflow.workdir, "score-o2").read_text())["task"] == "score-o2"


def test_final_task_past_the_file_size_limit_names_results_json(tmp_path):
    workflow = _experiment().build(X_IRIS, Y_IRIS, workdir=tmp_path / "wd")
    for task_id in ("score-o0", "score-o1", "score-o2", "select-all"):
        mp.run_task(workflow.workdir, task_id)
    before = tree_snapshot(workflow.workdir)
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from mempamal.cli import main; sys.exit(main(sys.argv[1:]))",
         "task", str(workflow.workdir), "final"],
        capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: _limit_file_size(200))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "results.json: the disk is full" in done.stderr
    # Only the failed task's traceback may be new (in logs/).
    assert _files(tree_snapshot(workflow.workdir), skip=("logs",)) == _files(before, skip=("logs",))
    assert "final" not in store.finished_task_ids(workflow.workdir)


def _limit_file_size(limit):
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
