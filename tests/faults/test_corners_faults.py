"""Issue 23, items 10-14 ("Trust in the corners"), each with a real fault.

10. An output edited into other valid JSON (one score changed, a bit flipped)
    is not counted: it fails the digest of its content, and runs again.
11. An output truncated in place after the done-index recorded it is not
    counted by ``status`` and runs again; a dependent that finds its input
    corrupt removes it, so the next run (the same run, under ``run``) runs
    the producer again instead of failing for good.
12. A run on a full disk (a real small tmpfs) and ``status`` tell one story:
    the tasks that could not write their output or error log are "not run
    because the disk is full", pending, not failed.
13. A workdir writable by others is refused once, before anything is
    dispatched, naming the path (exit 1 from the CLI).
14. Two correct runs in two processes write the same ``results.json`` apart
    from the timing fields (the models' digests are of their value, not of
    their pickle bytes).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp
from mempamal import store
from mempamal.store import integrity

from slow_experiment import assert_matches_sklearn, cli
from trust_helpers import is_root

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
VICTIM = "fit-o0-i0-c0"


def _experiment(**options):
    return mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.01, 1.0]}, cv=3, inner_cv=2,
                         random_state=0, **options)


def _age(workdir, seconds=3600):
    """Every output file and shard folder changed an hour ago: the done-index may vouch for them."""
    past = os.stat(workdir).st_mtime_ns - seconds * 10**9
    for folder, _, files in os.walk(workdir / store.OUTPUTS_DIR):
        for name in files:
            os.utime(os.path.join(folder, name), ns=(past, past))
        os.utime(folder, ns=(past, past))


def _indexed(workflow):
    """``status()`` twice: the second one takes every shard from the done-index (nothing read)."""
    _age(workflow.workdir)
    workflow.status()
    return mp.Workflow.open(workflow.workdir).status()


def _all_but_select_o0(workflow):
    """Every task except ``select-o0`` and ``final``: ``VICTIM``'s output is read by the next run."""
    for task in workflow.tasks:
        if task.id not in ("select-o0", "final"):
            mp.run_task(workflow.workdir, task.id)


def _best_point_scores_zero(path):
    """Rewrite ``VICTIM``'s output as valid JSON, same size, where the best point scores 0.0."""
    before = path.read_bytes()
    output = json.loads(before)
    scores = output["scores"]["score"]
    scores[int(np.argmax(scores))] = 0.0
    edited = json.dumps(output).encode()
    assert len(edited) <= len(before)
    return b"{" + b" " * (len(before) - len(edited)) + edited[1:]  # its old digest kept, last


def _flip_a_bit_of_a_score(path):
    """One bit of one digit of a score flipped ('6' <-> '7', ...): still valid JSON, same size."""
    before = bytearray(path.read_bytes())
    digit = before.index(b".", before.index(b'"scores"')) + 1  # the first decimal of the first score
    before[digit] ^= 0x01  # '0' <-> '1', ..., '8' <-> '9'
    assert json.loads(bytes(before))["scores"] != json.loads(path.read_bytes())["scores"]
    return bytes(before)


# ------------------------------------------------------------------ item 10
@pytest.mark.parametrize("edit", [_best_point_scores_zero, _flip_a_bit_of_a_score])
@pytest.mark.parametrize("keep_mtime", [False, True], ids=["edited", "edited-mtime-put-back"])
def test_an_output_edited_into_valid_json_is_not_counted_and_runs_again(tmp_path, edit, keep_mtime):
    experiment = _experiment()
    workflow = experiment.build(X_IRIS, Y_IRIS, workdir=tmp_path / "wd")
    _all_but_select_o0(workflow)
    assert _indexed(workflow)["done"] == len(workflow.tasks) - 2
    path = store.output_path(workflow.workdir, VICTIM)
    info = os.stat(path)
    edited = edit(path)
    with open(path, "r+b") as handle:  # in place, as an editor or a bad disk would
        handle.write(edited)
    assert os.stat(path).st_size == info.st_size
    if keep_mtime:  # only the content can tell now
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    problem = integrity.output_problem(path, VICTIM, workflow.manifest["build_id"],
                                       workflow.task(VICTIM).definition)
    assert problem is not None and "does not match the digest" in problem and str(path) in problem
    if not keep_mtime:
        assert "does not match the digest" in mp.Workflow.open(workflow.workdir).status()["untrusted"][VICTIM]

    done = cli("run", workflow.workdir, "-n", "1", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert_matches_sklearn(mp.Results.load(workflow.workdir), experiment, X_IRIS, Y_IRIS)
    assert integrity.output_problem(path, VICTIM, workflow.manifest["build_id"],
                                    workflow.task(VICTIM).definition) is None


# ------------------------------------------------------------------ item 11
def test_output_truncated_in_place_after_the_index_recorded_it_is_not_done_and_runs_again(tmp_path):
    experiment = _experiment()
    workflow = experiment.build(X_IRIS, Y_IRIS, workdir=tmp_path / "wd")
    workflow.run(n_jobs=1, progress=False)
    total = len(workflow.tasks)
    assert _indexed(workflow)["done"] == total
    path = store.output_path(workflow.workdir, VICTIM)
    os.truncate(path, 0)  # in place: the shard folder's mtime does not move
    (store.output_path(workflow.workdir, "select-o0")).unlink()  # so that the fit is read again

    status = mp.Workflow.open(workflow.workdir).status()
    assert status["done"] == total - 2, status
    assert "not complete JSON" in status["untrusted"][VICTIM]
    assert "not counted" in cli("status", workflow.workdir).stdout
    done = cli("run", workflow.workdir, "-n", "1", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert_matches_sklearn(mp.Results.load(workflow.workdir), experiment, X_IRIS, Y_IRIS)
    assert mp.Workflow.open(workflow.workdir).status()["done"] == total


def test_dependent_finding_a_corrupt_input_does_not_make_runs_fail_for_good(tmp_path):
    """The input damaged where no scan could see it (size and mtime put back):
    the dependent refuses it, and the next ``run`` runs its producer again."""
    experiment = _experiment()
    workflow = experiment.build(X_IRIS, Y_IRIS, workdir=tmp_path / "wd")
    _all_but_select_o0(workflow)
    _indexed(workflow)
    path = store.output_path(workflow.workdir, VICTIM)
    info = os.stat(path)
    path.write_bytes(b"\0" * info.st_size)  # what an unsynced file may hold after a crash
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))

    # Run by itself (an exported command, a cluster job): refused, naming the file.
    with pytest.raises(mp.TaskError, match=VICTIM) as caught:
        mp.run_task(workflow.workdir, "select-o0")
    assert str(path) in str(caught.value)
    assert not store.output_path(workflow.workdir, "select-o0").exists()
    assert VICTIM in mp.Workflow.open(workflow.workdir).pending_ids()  # not done any more: it runs again
    for _ in range(2):  # not once: every run from now on
        done = cli("run", workflow.workdir, "-n", "1", "--no-progress")
        assert done.returncode == 0, done.stderr
    assert_matches_sklearn(mp.Results.load(workflow.workdir), experiment, X_IRIS, Y_IRIS)


def test_run_runs_the_producer_of_an_input_a_dependent_refused(tmp_path):
    """Within one run: the input is damaged (size and mtime kept) after the run's own scan."""
    experiment = _experiment()
    workflow = experiment.build(X_IRIS, Y_IRIS, workdir=tmp_path / "wd")
    _all_but_select_o0(workflow)
    _indexed(workflow)
    path = store.output_path(workflow.workdir, VICTIM)
    info = os.stat(path)
    edited = _best_point_scores_zero(path)
    with open(path, "r+b") as handle:
        handle.write(edited)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert mp.Workflow.open(workflow.workdir).status()["done"] == len(workflow.tasks) - 2  # unseen
    results = mp.Workflow.open(workflow.workdir).run(n_jobs=1, progress=False)
    assert_matches_sklearn(results, experiment, X_IRIS, Y_IRIS)


# ------------------------------------------------------------------ item 12
@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 1 MB filesystem, unmounted after the test."""
    if not is_root():
        pytest.skip("mounting a small tmpfs needs root (tests/faults/test_disk_full.py covers "
                    "full disks with RLIMIT_FSIZE)")
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)


def _fill(folder, keep_free):
    """Fill the filesystem of ``folder`` until ``keep_free`` bytes are left."""
    info = os.statvfs(folder)
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, info.f_bavail * info.f_frsize - keep_free))
    return filler


@pytest.mark.parametrize("how", ["python", "cli"])
def test_run_on_a_full_disk_and_status_tell_the_same_story(small_tmpfs, how):
    experiment = _experiment()
    workflow = experiment.build(X_IRIS, Y_IRIS, workdir=small_tmpfs / "wd", chunk_size=1)
    total = len(workflow.tasks)
    # Room for the run's lock file and a task output or two (tmpfs counts pages), then ENOSPC.
    filler = _fill(small_tmpfs, keep_free=3 * 4096)
    if how == "python":
        with pytest.raises(mp.WorkflowError) as caught:
            workflow.run(n_jobs=1, progress=False)
        message, not_run = str(caught.value), set(caught.value.not_run)
        assert caught.value.blocked == []
    else:
        done = cli("run", workflow.workdir, "-n", "1", "--no-progress")
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        message, not_run = done.stderr, None
    status = mp.Workflow.open(workflow.workdir).status()
    assert status["failed"] == 0 and status["blocked"] == 0, status
    assert 0 < status["pending"] < total and status["done"] + status["pending"] == total
    assert "0 task(s) failed" in message, message
    assert f", {status['pending']} not run because the disk is full" in message, message
    assert "ENOSPC" in message and "free some space and run again" in message
    if not_run is not None:
        assert not_run == set(mp.Workflow.open(workflow.workdir).pending_ids())
    assert not list((workflow.workdir / store.LOGS_DIR).glob("*.err"))

    filler.unlink()
    assert_matches_sklearn(mp.Workflow.open(workflow.workdir).run(n_jobs=1, progress=False),
                           experiment, X_IRIS, Y_IRIS)


# ------------------------------------------------------------------ item 13
@pytest.mark.parametrize("relative", ["data/X.npy", "experiment.pkl", "outputs"])
def test_workdir_writable_by_others_is_refused_once_before_anything_is_dispatched(tmp_path, relative):
    workflow = _experiment().build(X_IRIS, Y_IRIS, workdir=tmp_path / "wd")
    target = workflow.workdir / relative
    os.chmod(target, os.stat(target).st_mode | 0o002)

    done = cli("run", workflow.workdir, "-n", "1", "--no-progress")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{target}: it is writable by other users" in done.stderr, done.stderr
    assert done.stderr.count("writable by other users") == 1 and "task(s) failed" not in done.stderr
    with pytest.raises(mp.WorkdirError, match=rf"{relative}: it is writable by other users"):
        mp.Workflow.open(workflow.workdir).run(n_jobs=1, progress=False)
    assert store.finished_task_ids(workflow.workdir) == set()
    assert not list((workflow.workdir / store.LOGS_DIR).glob("*"))
    assert not (workflow.workdir / "run.lock").exists()


# ------------------------------------------------------------------ item 14
RUN_SCRIPT = textwrap.dedent("""
    import sys
    import mempamal as mp
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    experiment = mp.Experiment(make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)),
                               param_grid={"logisticregression__C": [0.1, 1.0]}, cv=3, inner_cv=2,
                               random_state=0, return_estimator=True, predict="predict")
    experiment.build(X, y, workdir=sys.argv[1]).run(n_jobs=int(sys.argv[2]), progress=False)
""")

# The fields of results.json documented as timings (README, "The workdir").
TIMINGS = {"fit_time", "score_time", "refit_time", "inner_fit_time", "inner_score_time"}


def _without_timings(value):
    if isinstance(value, dict):
        return {key: _without_timings(item) for key, item in value.items() if key not in TIMINGS}
    if isinstance(value, list):
        return [_without_timings(item) for item in value]
    return value


def test_two_runs_in_two_processes_write_the_same_results_json(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUN_SCRIPT)
    runs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / name), n_jobs],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, n_jobs in (("first", "1"), ("second", "2"))]
    for run in runs:
        assert run.wait(timeout=600) == 0, run.stderr.read()
    first, second = (json.loads((tmp_path / name / store.RESULTS).read_text()) for name in ("first", "second"))
    assert first["estimators"] and first["final_fit"]["model"]
    assert json.dumps(_without_timings(first)) == json.dumps(_without_timings(second))
    # The digests recorded are the models' own: each loads, and the models are equal.
    loaded = [mp.Results.load(tmp_path / name) for name in ("first", "second")]
    for index in range(3):
        np.testing.assert_array_equal(loaded[0].estimators_[index].predict_proba(X_IRIS),
                                      loaded[1].estimators_[index].predict_proba(X_IRIS))
    np.testing.assert_array_equal(loaded[0].best_estimator_.predict_proba(X_IRIS),
                                  loaded[1].best_estimator_.predict_proba(X_IRIS))
    # Still refused: a model file replaced is not the pickle its task recorded, even an equal model's.
    model = tmp_path / "first" / store.MODELS_DIR / "o1.pkl"
    model.write_bytes((tmp_path / "first" / store.MODELS_DIR / "o0.pkl").read_bytes())
    with pytest.raises(mp.WorkdirError, match="not the model the run wrote"):
        mp.Results.load(tmp_path / "first").estimators_
