"""What an OS crash can leave of a task output, now that outputs are not fsynced.

Task outputs are written atomically (temporary file + rename) but without
fsync (``store.atomic_write(..., durable=False)``): after a power cut or a
kernel panic the renamed file may hold nothing, part of its JSON or NUL
bytes where the data never reached the disk.  The design's argument is that
every reader validates an output before trusting it (complete JSON object,
this task's stamp), so each of these counts as not done and runs again.
These tests leave each state in a real workdir -- on the file, as the disk
would after the reboot -- then open the workdir afresh (a new process's view:
nothing cached) and check that ``status`` names the file, ``run`` redoes the
task, a dependent never reads it, and the results equal scikit-learn's.

The fsync tests trace the real system calls (``strace``): build files are
fsynced, task outputs are not.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp
from mempamal.store import lock
from mempamal.store import finished_task_ids, output_path

from slow_experiment import assert_matches_sklearn


def _experiment():
    return mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)


def _zero_length(path, other):
    path.write_bytes(b"")


def _truncated_json(path, other):
    payload = path.read_bytes()
    path.write_bytes(payload[: len(payload) // 2])


def _nul_bytes(path, other):
    # Delayed allocation: the size reached the disk, the data blocks did not.
    path.write_bytes(b"\x00" * path.stat().st_size)


def _another_tasks_stamp(path, other):
    # A complete, valid output -- of another task (a directory entry pointing
    # at the wrong inode after a crash, or a file copied by hand).
    path.write_bytes(other.read_bytes())


DAMAGES = [_zero_length, _truncated_json, _nul_bytes, _another_tasks_stamp]
EXPECTED = {"_zero_length": "not complete JSON", "_truncated_json": "not complete JSON",
            "_nul_bytes": "not complete JSON", "_another_tasks_stamp": "is the output of task"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    X, y = load_iris(return_X_y=True)
    workflow = _experiment().build(X, y, workdir=tmp_path_factory.mktemp("crash") / "wd", chunk_size=1)
    results = workflow.run(n_jobs=1, progress=False)
    assert_matches_sklearn(results, _experiment(), X, y)
    return workflow.workdir


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda damage: damage.__name__.strip("_"))
@pytest.mark.parametrize("victim", ["fit-o0-i1-c1", "select-o2"])
def test_output_left_damaged_by_an_os_crash_is_untrusted_and_run_again(finished, tmp_path, damage, victim,
                                                                      monkeypatch):
    X, y = load_iris(return_X_y=True)
    workdir = tmp_path / "wd"
    shutil.copytree(finished, workdir)
    path = output_path(workdir, victim)
    other = output_path(workdir, "fit-o1-i0-c0" if victim.startswith("fit") else "select-o0")
    damage(path, other)
    before = path.read_bytes()

    # After the reboot: a fresh process, nothing cached, and another boot id
    # (the done-index of outputs/ vouches for what it saw in its own boot only).
    monkeypatch.setattr(lock, "boot_id", lambda: "the-boot-after-the-crash")
    workflow = mp.Workflow.open(workdir)
    status = workflow.status()
    assert victim in status["untrusted"], status["untrusted"]
    assert EXPECTED[damage.__name__] in status["untrusted"][victim]
    assert str(path) in status["untrusted"][victim]
    assert victim not in workflow.done_ids() and victim in workflow.pending_ids()

    with pytest.warns(UserWarning, match="Not trusting"):
        results = workflow.run(n_jobs=1, progress=False)
    rewritten = json.loads(path.read_bytes())
    assert path.read_bytes() != before and rewritten["task"] == victim
    assert mp.Workflow.open(workdir).status()["untrusted"] == {}
    assert_matches_sklearn(results, _experiment(), X, y)
    assert_matches_sklearn(mp.Results.load(workdir), _experiment(), X, y)

    # As its dependent (select, final) reads it: refused, and removed so that a run runs it again.
    damage(path, other)
    with pytest.raises(mp.WorkdirError, match="removed it: run that task again"):
        _read_dependency(workdir, victim)
    assert not path.exists() and victim in mp.Workflow.open(workdir).pending_ids()


def _read_dependency(workdir, task_id):
    """What a dependent task does with a dependency's output."""
    from mempamal.engine.context import load_context

    return load_context(workdir).read_output(task_id)


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda damage: damage.__name__.strip("_"))
def test_dependent_never_reads_a_torn_dependency_output(tmp_path, damage):
    X, y = load_iris(return_X_y=True)
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    fits = [task.id for task in workflow.tasks if task.kind == "fit" and task.outer == 0]
    for task_id in fits + ["fit-o1-i0-c0"]:
        mp.run_task(workflow.workdir, task_id)
    torn = output_path(workflow.workdir, fits[-1])
    damage(torn, output_path(workflow.workdir, "fit-o1-i0-c0"))

    # Run by itself (as an exported script or a cluster job would), the
    # select refuses the dependency, naming its file, and writes no output.
    with pytest.raises(mp.TaskError, match=f"{fits[-1]}") as caught:
        mp.run_task(workflow.workdir, "select-o0")
    assert str(torn) in str(caught.value)
    assert not output_path(workflow.workdir, "select-o0").exists()

    # Run by the workflow, the torn dependency runs again first.
    results = mp.Workflow.open(workflow.workdir).run(n_jobs=1, progress=False)
    assert json.loads(torn.read_bytes())["task"] == fits[-1]
    assert_matches_sklearn(results, _experiment(), X, y)


# ------------------------------------------------------------------ fsyncs
_TRACED = textwrap.dedent("""
    import sys
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    import mempamal as mp
    X, y = load_iris(return_X_y=True)
    exp = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    if sys.argv[1] == "build":
        exp.build(X, y, workdir=sys.argv[2], chunk_size=1)
    else:
        wf = mp.Workflow.open(sys.argv[2])
        for task in wf.tasks:
            mp.run_task(wf.workdir, task.id)
""")


def _fsynced_files(tmp_path, command, workdir):
    """Names of the files a real process fsynced, from strace's record of its system calls."""
    script = tmp_path / "traced.py"
    script.write_text(_TRACED)
    trace = tmp_path / f"{command}.trace"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
    subprocess.run(["strace", "-f", "-y", "-e", "trace=fsync,fdatasync", "-o", str(trace),
                    sys.executable, str(script), command, str(workdir)], check=True, env=env, timeout=300)
    names = []
    for line in trace.read_text().splitlines():
        if "fsync(" in line and "<" in line:
            names.append(os.path.basename(line.split("<", 1)[1].split(">", 1)[0]))
    return names


_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_build_files_are_fsynced_task_outputs_are_not(tmp_path):
    workdir = tmp_path / "wd"
    built = _fsynced_files(tmp_path, "build", workdir)
    # Temporary names: ".<name>.<random>.tmp", fsynced before their rename.
    synced = {name.split(".")[1] for name in built if name.startswith(".")}
    assert {"manifest", "tasks", "experiment", "X", "y", "main"} <= synced, built
    ran = _fsynced_files(tmp_path, "run", workdir)
    workflow = mp.Workflow.open(workdir)
    outputs = {f".{task.id}.json." for task in workflow.tasks}
    assert not [name for name in ran if name[: name.rfind(".", 0, -4) + 1] in outputs], ran
    # What an output vouches for by digest is fsynced before the output exists:
    # results.json (the final task's) and the final model.
    assert any(name.startswith(".results.json.") for name in ran) and any(
        name.startswith(".final.pkl.") for name in ran), ran
    assert len(finished_task_ids(workdir)) == len(workflow.tasks) and workflow.status()["untrusted"] == {}


def test_timeline_leaves_out_an_output_torn_by_a_crash(finished, tmp_path):
    workdir = tmp_path / "wd"
    shutil.copytree(finished, workdir)
    _truncated_json(output_path(workdir, "fit-o0-i1-c1"), None)
    _another_tasks_stamp(output_path(workdir, "fit-o0-i0-c0"), output_path(workdir, "fit-o1-i0-c0"))
    timeline = mp.Results.load(workdir).timeline()
    assert "fit-o0-i1-c1" not in set(timeline["task"]) and "fit-o0-i0-c0" not in set(timeline["task"])
    assert len(timeline) == len(mp.Workflow.open(workdir).tasks) - 2
    assert list(timeline["task"]).count("fit-o1-i0-c0") == 1
