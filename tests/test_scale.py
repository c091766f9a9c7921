"""Issue 16, target 1: the compact task table and the done-index.

The compact table is held to the explicit row generation (``make_rows``) for
graphs of several shapes; the done-index to a from-scratch validation of
every output (``integrity.output_problem`` on each task's path), after the
faults a crash, a user or a second process can cause.
"""

import json
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import KFold

import mempamal as mp
from mempamal.store import doneindex, integrity, lock
from mempamal import store
from mempamal.backends.tracker import DependencyTracker
from mempamal.store.taskfile import changed_task_ids
from mempamal.store.tasktable import MAIN, Task, TaskTable, make_table, task_command
from reference_rows import make_rows

SHAPES = {
    "plain CV": ({MAIN: {"n_outer": 3, "n_inner": [0, 0, 0]}}, [], False),
    "plain CV, final fit": ({MAIN: {"n_outer": 4, "n_inner": [0] * 4, "n_inner_all": 3}}, [], False),
    "nested": ({MAIN: {"n_outer": 2, "n_inner": [3, 3]}}, [[0, 1], [2], [3, 4, 5]], True),
    "nested, n_inner varying, final fit, permutations": (
        {MAIN: {"n_outer": 3, "n_inner": [2, 4, 1], "n_inner_all": 2},
         "perm-0": {"n_outer": 3, "n_inner": [2, 4, 1]}, "perm-1": {"n_outer": 3, "n_inner": [1, 2, 3]}},
        [[0], [1, 2]], True),
    "plain CV, permutations": ({MAIN: {"n_outer": 2, "n_inner": [0, 0]}, "perm-0": {"n_outer": 2, "n_inner": [0, 0]}},
                               [], False),
    "nested, 1,200 chunks (two shards per fold)": ({MAIN: {"n_outer": 2, "n_inner": [2, 2]}},
                                                   [[i] for i in range(1200)], True),
}


def rows_as_tasks(info, chunks, nested, workdir="wd", python="py"):
    """What the first format of tasks.json gave: one record per explicit row."""
    shared = [tuple(chunk) for chunk in chunks]
    return [Task(task_id, kind, tuple(deps), task_command(workdir, task_id, python), split_set or MAIN, outer, inner,
                 None if chunk is None else shared[chunk])
            for task_id, kind, deps, split_set, outer, inner, chunk in make_rows(info, chunks, nested)]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_compact_table_gives_the_records_of_the_explicit_rows(shape):
    info, chunks, nested = SHAPES[shape]
    expected = rows_as_tasks(info, chunks, nested)
    table = TaskTable(make_table(info, chunks, nested), "wd", python="py")
    assert len(table) == len(expected)
    assert list(table) == expected  # ids, kinds, deps, commands, split sets, folds, points
    assert [task.definition for task in table] == [task.definition for task in expected]
    assert list(table.ids()) == [task.id for task in expected]
    assert [table.id_at(i) for i in range(len(table))] == [task.id for task in expected]
    assert [table.position(task.id) for task in expected] == list(range(len(expected)))
    assert [table.kind_of(task.id) for task in expected] == [task.kind for task in expected]
    kinds = {}
    for task in expected:
        kinds[task.kind] = kinds.get(task.kind, 0) + 1
    assert list(table.counts_by_kind().items()) == list(kinds.items())
    positions = {task.id: i for i, task in enumerate(expected)}
    dependents = [-1] * len(expected)
    for task in expected:
        for dep in task.deps:
            assert dependents[positions[dep]] == -1  # one dependent per task
            dependents[positions[dep]] = positions[task.id]
    assert table.dependent_positions() == dependents
    folds = [(task.outer, task.id) for task in expected if task.kind in ("select", "score") and task.permutation is None]
    assert table.fold_task_ids() == folds
    assert table[-1] == expected[-1] and table[1:3] == expected[1:3]


@pytest.mark.parametrize("task_id", ["fit-o01-i0-c0", "fit-o0-i9-c0", "fit-o0-i0-c99", "score-o0", "select-o7",
                                     "perm-5-select-o0", "fit-all-i0-c0-x", "final ", "", "fit-o0-i0-c-1"])
def test_ids_of_no_task_have_no_position(task_id):
    info, chunks, nested = SHAPES["nested"]
    table = TaskTable(make_table(info, chunks, nested))
    assert table.position(task_id) is None and table.kind_of(task_id) is None
    with pytest.raises(KeyError):
        table.task(task_id)


def test_changed_task_ids_after_rechunking_match_the_definitions():
    info = {MAIN: {"n_outer": 2, "n_inner": [2, 3], "n_inner_all": 2}}
    old, new = make_table(info, [[0, 1], [2], [3]], True), make_table(info, [[0], [1], [2], [3]], True)
    before = {task.id: task.definition for task in rows_as_tasks(info, [[0, 1], [2], [3]], True)}
    expected = [task.id for task in rows_as_tasks(info, [[0], [1], [2], [3]], True)
                if before.get(task.id) != task.definition]
    assert changed_task_ids(old, new) == expected and "fit-o0-i0-c3" in expected
    assert changed_task_ids(new, new) == []
    assert changed_task_ids({"chunks": [], "split_sets": info, "tasks": []}, new) == list(TaskTable(new).ids())


def _drive(tracker, order_key, fail):
    """Run a tracker to the end; the decisions it took (ready order, blocked sets)."""
    decisions, failed = [], {}
    while tracker.ready:
        ready = sorted(tracker.ready, key=order_key)[0] if order_key else tracker.ready.popleft()
        if order_key:
            tracker.ready.remove(ready)
        error = "boom" if ready in fail else None
        tracker.record(ready, error, failed)
        decisions.append((ready, list(tracker.ready), sorted(failed)))
    return decisions


@pytest.mark.parametrize("shape", ["nested", "nested, n_inner varying, final fit, permutations", "plain CV"])
def test_dependency_tracker_on_positions_decides_as_on_records(shape):
    info, chunks, nested = SHAPES[shape]
    table = TaskTable(make_table(info, chunks, nested))
    tasks = list(table)
    rng = np.random.RandomState(0)
    for trial in range(3):
        wanted = [task.id for task in tasks if rng.rand() < 0.8 or task.kind == "final"]
        fail = {task_id for task_id in wanted if rng.rand() < 0.1}
        key = None if trial == 0 else {task_id: rng.rand() for task_id in wanted}.get
        fast = DependencyTracker(SimpleNamespace(table=table), wanted)
        slow = DependencyTracker(SimpleNamespace(tasks=tasks), wanted)
        assert fast._positions is not None and slow._positions is None
        assert list(fast.ready) == list(slow.ready)
        for task_id in wanted[:5]:
            assert fast.blocked_by(task_id) == slow.blocked_by(task_id)
        assert _drive(fast, key, fail) == _drive(slow, key, fail)


# ------------------------------------------------------------ the done-index
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished small nested workdir (16 tasks), run in this process."""
    X = np.arange(40, dtype=float).reshape(20, 2)
    y = np.arange(20) % 2
    workdir = tmp_path_factory.mktemp("scale") / "wd"
    workflow = mp.Experiment(DummyClassifier(), {"strategy": ["most_frequent", "prior"]}, cv=KFold(3),
                             inner_cv=KFold(2), final_fit=False).build(X, y, workdir=workdir, chunk_size=1)
    for task_id in workflow.table.ids():
        mp.run_task(workdir, task_id)
    return workdir


@pytest.fixture
def workdir(finished, tmp_path):
    copy = tmp_path / "wd"
    shutil.copytree(finished, copy, symlinks=True)
    index = doneindex.index_path(copy)
    if index.exists():
        index.unlink()
    return copy


def from_scratch(workdir):
    """``(done, untrusted ids)`` by validating every task's output, no index."""
    graph = mp.Workflow.open(workdir)
    done, untrusted = set(), set()
    for task in graph.table:
        path = store.output_path(workdir, task.id)
        if not path.exists():
            continue
        if integrity.output_problem(path, task.id, graph.manifest["build_id"], task.definition) is None:
            done.add(task.id)
        else:
            untrusted.add(task.id)
    return done, untrusted


def status_agrees(workdir):
    """A new Workflow's status (through the index), compared with the from-scratch answer."""
    status = mp.Workflow.open(workdir).status()
    done, untrusted = from_scratch(workdir)
    assert status["done"] == len(done) and set(status["untrusted"]) == untrusted
    assert mp.Workflow.open(workdir).done_ids() == done
    by_kind = {kind: counts["done"] for kind, counts in status["by_kind"].items()}
    assert by_kind == {kind: sum(mp.Workflow.open(workdir).task(i).kind == kind for i in done) for kind in by_kind}
    return status


def age(workdir, seconds=3600):
    """Make every shard folder and output look changed an hour ago: the index may trust them."""
    past = os.stat(workdir).st_mtime - seconds
    for entry in os.scandir(workdir / store.OUTPUTS_DIR):
        if entry.is_dir():
            for output in os.scandir(entry.path):
                os.utime(output.path, (past, past))
            os.utime(entry.path, (past, past))


def overwrite_in_place(path):
    """NUL bytes over an output, its size and mtime put back: no stat can tell, only a read."""
    info = os.stat(path)
    path.write_bytes(b"\0" * info.st_size)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def test_output_truncated_in_place_is_seen_through_the_index(workdir):
    """In place: the folder's mtime does not move, the file's size and mtime do."""
    age(workdir)
    status_agrees(workdir)
    os.truncate(store.output_path(workdir, "fit-o1-i0-c0"), 0)
    assert set(status_agrees(workdir)["untrusted"]) == {"fit-o1-i0-c0"}


def test_index_is_used_for_unchanged_shards(workdir, monkeypatch):
    age(workdir)
    assert status_agrees(workdir)["done"] == 16
    calls = []
    monkeypatch.setattr(integrity, "output_problem", lambda *args: calls.append(args))
    assert mp.Workflow.open(workdir).status()["done"] == 16 and calls == []  # nothing read again


def test_deleted_output_is_not_done(workdir):
    age(workdir)
    status_agrees(workdir)
    store.output_path(workdir, "fit-o1-i0-c1").unlink()
    assert status_agrees(workdir)["done"] == 15


@pytest.mark.parametrize("damage", [b"", b'{"task": "fit-o0-i1-c0", "bu', b"\0" * 300])
def test_output_replaced_by_a_torn_file_is_untrusted(workdir, damage):
    age(workdir)
    status_agrees(workdir)
    store.atomic_write_bytes(store.output_path(workdir, "fit-o0-i1-c0"), damage)  # a rename, as run_task's
    assert set(status_agrees(workdir)["untrusted"]) == {"fit-o0-i1-c0"}


@pytest.mark.parametrize("damage", [b"", b'{"task": "fit-o0-i1-c0", "bu', b"\0" * 300])
def test_torn_file_in_place_after_a_reboot_is_untrusted(workdir, damage, monkeypatch):
    """What a crash of the machine leaves: an unsynced output empty or NUL-filled, then a new boot."""
    age(workdir)
    status_agrees(workdir)
    path = store.output_path(workdir, "fit-o0-i1-c0")
    mtime = os.stat(path.parent).st_mtime_ns
    path.write_bytes(damage)
    assert os.stat(path.parent).st_mtime_ns == mtime  # the folder cannot tell
    monkeypatch.setattr(lock, "boot_id", lambda: "another-boot")
    assert set(status_agrees(workdir)["untrusted"]) == {"fit-o0-i1-c0"}


def test_output_replaced_by_another_tasks_is_untrusted(workdir):
    age(workdir)
    status_agrees(workdir)
    os.replace(store.output_path(workdir, "select-o0"), store.output_path(workdir, "select-o1"))
    assert set(status_agrees(workdir)["untrusted"]) == {"select-o1"}
    assert status_agrees(workdir)["done"] == 14


def test_output_written_right_after_a_scan_is_seen(workdir):
    store.output_path(workdir, "final").unlink()
    store.output_path(workdir, "fit-o2-i1-c1").unlink()
    assert status_agrees(workdir)["done"] == 14
    mp.run_task(workdir, "fit-o2-i1-c1")  # same second as the scan: the folder's mtime may not move
    assert status_agrees(workdir)["done"] == 15
    mp.run_task(workdir, "final")
    assert status_agrees(workdir)["done"] == 16


def test_recently_changed_shard_is_read_again(workdir):
    """Racy-clean: a shard changed within the margin of the scan is not taken from the index."""
    status_agrees(workdir)  # shards written moments ago: recorded, not trusted
    path = store.output_path(workdir, "fit-o0-i0-c0")
    mtime = os.stat(path.parent).st_mtime_ns
    path.write_bytes(b"{}")  # in place, same folder mtime: only a new read sees it
    assert os.stat(path.parent).st_mtime_ns == mtime
    assert set(status_agrees(workdir)["untrusted"]) == {"fit-o0-i0-c0"}


def test_index_of_another_boot_build_or_table_is_ignored(workdir, monkeypatch):
    age(workdir)
    status_agrees(workdir)
    index = json.loads(doneindex.index_path(workdir).read_text())
    assert index["stamp"]["boot_id"] == lock.boot_id()
    path = store.output_path(workdir, "fit-o0-i0-c1")
    overwrite_in_place(path)  # only an index that is not believed sees it
    for field, value in (("build", "other-build"), ("tasks", "other-table"), ("boot_id", "old-boot")):
        forged = {**index, "stamp": {**index["stamp"], field: value}}
        store.atomic_write_bytes(doneindex.index_path(workdir), json.dumps(forged).encode())
        assert set(status_agrees(workdir)["untrusted"]) == {"fit-o0-i0-c1"}, field


def test_index_writable_by_others_is_ignored(workdir):
    age(workdir)
    status_agrees(workdir)
    overwrite_in_place(store.output_path(workdir, "fit-o0-i0-c1"))
    os.chmod(doneindex.index_path(workdir), 0o620)
    assert set(status_agrees(workdir)["untrusted"]) == {"fit-o0-i0-c1"}


def test_status_without_a_writable_index(workdir, monkeypatch):
    index = doneindex.index_path(workdir)
    index.mkdir()  # cannot be replaced by a file, nor read
    assert status_agrees(workdir)["done"] == 16
    store.output_path(workdir, "fit-o1-i1-c0").unlink()
    assert status_agrees(workdir)["done"] == 15
    index.rmdir()

    def read_only(path, payload):
        raise PermissionError(30, "Read-only file system", str(path))

    monkeypatch.setattr(store, "atomic_write_bytes", read_only)
    assert status_agrees(workdir)["done"] == 15 and not index.exists()
    store.output_path(workdir, "fit-o1-i1-c1").unlink()
    assert status_agrees(workdir)["done"] == 14


def test_two_graphs_scanning_in_turn_stay_right(workdir):
    first, second = mp.Workflow.open(workdir), mp.Workflow.open(workdir)
    assert first.status()["done"] == second.status()["done"] == 16
    store.output_path(workdir, "select-o2").unlink()
    assert second.status()["done"] == 15
    mp.run_task(workdir, "select-o2")
    store.output_path(workdir, "fit-o0-i0-c0").unlink()
    assert first.status()["done"] == 15 and second.status()["done"] == 15
    assert status_agrees(workdir)["done"] == 15


def test_outputs_are_sharded_through_output_path(workdir):
    names = {path.relative_to(workdir).as_posix() for path in (workdir / store.OUTPUTS_DIR).glob("*/*.json")}
    assert names == {store.output_path("", task_id).as_posix() for task_id in mp.Workflow.open(workdir).table.ids()}
    assert store.finished_task_ids(workdir) == set(mp.Workflow.open(workdir).table.ids())
    # A file outside its shard is no task's output.
    os.replace(store.output_path(workdir, "fit-o0-i0-c0"), workdir / store.OUTPUTS_DIR / "other" / "fit-o0-i0-c0.json")
    assert "fit-o0-i0-c0" not in mp.Workflow.open(workdir).done_ids()
    assert status_agrees(workdir)["done"] == 15


def test_shard_restored_with_an_older_mtime_is_read_again(workdir):
    """A folder put back by a backup or ``cp -a`` keeps an old mtime: the index must not take it for unchanged."""
    age(workdir)
    status_agrees(workdir)
    path = store.output_path(workdir, "fit-o2-i0-c0")
    path.write_bytes(b"{")
    age(workdir, seconds=7200)  # older than what the index recorded
    assert set(status_agrees(workdir)["untrusted"]) == {"fit-o2-i0-c0"}
