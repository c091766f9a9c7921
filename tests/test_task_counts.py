"""``task_counts`` (``Run.status``) and ``blocked_ids`` on positions, held to the count over every record.

Both used to walk ``workflow.tasks`` (one :class:`~mempamal.Task` per task,
seconds at 10^6 tasks); they now count by the table's arithmetic.  The
record-based versions they replaced are kept here, word for word, as the
reference: on graphs of several shapes (plain and nested CV, final fit on
and off, permutations, chunks, fits of one inner fold spread over two
shards) and random states (done subsets closed under dependencies or not,
untrusted outputs, failures with their ``logs/<id>.err``, a log of no task,
batches published as executing), every dict must be equal.
"""

import shutil

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import KFold

import mempamal as mp
from mempamal.store import integrity
from mempamal import store
from mempamal.backends.base import RunObserver
from mempamal.graph.status import task_counts as graph_task_counts
from mempamal.store.tasktable import MAIN, TaskTable, make_table

X = np.arange(60, dtype=float).reshape(30, 2)
y = np.arange(30) % 2

GRAPHS = {
    "plain CV": dict(cv=KFold(3), final_fit=False),
    "plain CV, final fit (select-all without deps)": dict(cv=KFold(4)),
    "plain CV, permutations, final fit": dict(cv=KFold(3), n_permutations=3),
    "nested, chunks, no final fit": dict(grid=6, cv=KFold(3), inner_cv=KFold(2), final_fit=False, chunk_size=2),
    "nested, permutations, final fit": dict(grid=3, cv=KFold(2), inner_cv=KFold(3), n_permutations=2, chunk_size=1),
    "nested, 1,100 chunks (an inner fold over two shards)": dict(grid=1100, cv=KFold(2), inner_cv=KFold(2),
                                                                 final_fit=False, chunk_size=1),
}


# ------------------------------------------------------------ the reference
def reference_failed(workflow, done):
    logs = workflow.workdir / store.LOGS_DIR
    return sorted({path.name[:-4] for path in logs.glob("*.err")} - done)


def reference_blocked(workflow, done, failed):
    """``TaskGraph.blocked_ids`` as it was: one pass over the records."""
    blocked = set()
    for task in workflow.tasks:  # dependencies come first: one pass sees every chain
        if task.id not in done and task.id not in failed and any(
                dep in failed or dep in blocked for dep in task.deps):
            blocked.add(task.id)
    return sorted(blocked)


def task_counts(workflow, active=True, observer=None):
    """What ``Run.status()`` counts: with ``active``, as the run ``observer`` drives (or one watching) sees it."""
    if not active:
        return graph_task_counts(workflow)
    scan = workflow.scan_outputs()
    executing = observer.executing(scan) if observer is not None else None
    return graph_task_counts(workflow, executing=executing, watching=True, scan=scan)


def same_counts(status, expected):
    """The counts of a StatusCounts equal the reference's (its details -- untrusted, runner -- aside)."""
    return {key: status[key] for key in expected} == expected


def reference_executing(batches, done):
    """Each batch executing counts its first task without an output."""
    return {next(task_id for task_id in batch if task_id not in done)
            for batch in batches if any(task_id not in done for task_id in batch)}


def reference_counts(workflow, active=True, batches=None):
    """``task_counts`` as it was: a state per record (``batches``: what the driving backend said executes)."""
    done = set(workflow.done_ids())
    failed = set(reference_failed(workflow, done))
    blocked = set(reference_blocked(workflow, done, failed)) if failed else set()
    executing = reference_executing(batches, done) if active and batches is not None else None
    by_kind, totals = {}, {"done": 0, "running": 0, "pending": 0, "failed": 0, "blocked": 0}
    for task in workflow.tasks:
        counts = by_kind.setdefault(task.kind, {"done": 0, "running": 0, "pending": 0, "failed": 0, "blocked": 0,
                                                "total": 0, "done_main": 0, "total_main": 0})
        if task.id in done:
            state = "done"
        elif task.id in failed:
            state = "failed"
        elif task.id in blocked:
            state = "blocked"
        elif executing is not None:
            state = "running" if task.id in executing else "pending"
        elif active and all(dep in done for dep in task.deps):
            state = "running"
        else:
            state = "pending"
        counts[state] += 1
        counts["total"] += 1
        totals[state] += 1
        if task.permutation is None:
            counts["total_main"] += 1
            counts["done_main"] += state == "done"
    return {"total": len(workflow.tasks), **totals, "by_kind": by_kind}


# ------------------------------------------------------------ the states
@pytest.fixture(scope="module", params=sorted(GRAPHS))
def built(request, tmp_path_factory):
    options = dict(GRAPHS[request.param])
    grid, chunk_size = options.pop("grid", None), options.pop("chunk_size", None)
    param_grid = None if grid is None else {"constant": list(range(grid))}
    experiment = mp.Experiment(DummyClassifier(), param_grid, **options)
    workdir = tmp_path_factory.mktemp("counts") / "wd"
    build = {} if chunk_size is None else {"chunk_size": chunk_size}
    workflow = experiment.build(X, y, workdir=workdir, **build)
    assert (len({task.permutation is None for task in workflow.tasks}) == 2) == ("permutations" in request.param)
    return workflow


def write_output(workflow, task):
    """A trusted output as ``run_task`` stamps it (its content does not matter to the counts)."""
    path = store.output_path(workflow.workdir, task.id)
    store.make_private_dir(path.parent)
    stamp = integrity.output_stamp(task.id, workflow.manifest["build_id"], task.definition)
    store.atomic_write_bytes(path, integrity.output_bytes(stamp), durable=False)


SHARES = (0.3, 0.9, 0.0, 1.0)  # of the tasks done: the first trials have part of every shard done


def random_state(workflow, rng, closed, share=0.5):
    """Outputs, failures and executing batches at random: ``(done, batches or None)``.

    ``closed``: no task done before its deps.
    """
    for folder in (store.OUTPUTS_DIR, store.LOGS_DIR):
        shutil.rmtree(workflow.workdir / folder, ignore_errors=True)
        store.make_private_dir(workflow.workdir / folder)
    tasks = workflow.tasks
    done = set()
    for task in tasks:  # dependencies first
        if rng.rand() < share and (not closed or all(dep in done for dep in task.deps)):
            done.add(task.id)
            write_output(workflow, task)
    for task in tasks:
        if task.id not in done and rng.rand() < 0.05:  # untrusted: not done
            path = store.output_path(workflow.workdir, task.id)
            store.make_private_dir(path.parent)
            path.write_bytes(b'{"task": "torn')
    logs = workflow.workdir / store.LOGS_DIR
    n_failed = rng.choice([0, 1, 3])
    for index in rng.choice(len(tasks), size=n_failed, replace=False):
        (logs / f"{tasks[index].id}.err").write_text("Traceback ...")  # may be done since: not failed then
    if rng.rand() < 0.3:
        (logs / "no-such-task.err").write_text("a log of no task")
    if rng.rand() < 0.5:
        # Any tasks, and some whose state comes before "running": failed, blocked, gathering, done.
        ids = [task.id for task in tasks]
        batches = [list(rng.choice(ids, size=rng.randint(1, 4), replace=False)) for _ in range(rng.randint(0, 4))]
        gathering = [task.id for task in tasks if task.deps]
        logged = [path.name[:-4] for path in logs.glob("*.err")]
        above_a_log = [task.id for task in tasks if set(task.deps) & set(logged)]
        batches += [[rng.choice(pool)] for pool in (gathering, logged, above_a_log, sorted(done))
                    if pool and rng.rand() < 0.7]
        return done, batches
    return done, None  # no backend of this process drives the run


def observer_of(batches):
    """The RunObserver of a run whose backend said ``batches`` execute (None: no backend drives it)."""
    if batches is None:
        return None
    observer = RunObserver()
    observer.now_executing(batches)
    return observer


@pytest.mark.parametrize("closed", [True, False], ids=["deps respected", "any subset"])
def test_counts_and_blocked_equal_the_count_over_every_record(built, closed):
    rng = np.random.RandomState(len(built.tasks) + closed)
    for trial in range(3 if len(built.tasks) > 1000 else 8):  # the 4,000 outputs of the big graph take time
        written, batches = random_state(built, rng, closed, SHARES[trial % len(SHARES)])
        workflow = mp.Workflow.open(built.workdir)
        assert workflow.done_ids() == written  # the torn outputs are not done
        done = workflow.done_ids()
        failed = reference_failed(workflow, done)
        assert workflow.failed_ids() == failed
        assert workflow.blocked_ids() == reference_blocked(workflow, done, set(failed))
        assert workflow.blocked_ids(done, failed) == reference_blocked(workflow, done, set(failed))
        for active in (True, False):
            assert same_counts(task_counts(workflow, active=active, observer=observer_of(batches)),
                               reference_counts(workflow, active=active, batches=batches)), (trial, active)
        status = workflow.status()
        expected = reference_counts(workflow, active=False)
        assert (status["done"], status["blocked"]) == (expected["done"], expected["blocked"])
        # One status model: a log of no task of the graph counts nowhere (the states add up to the total).
        assert status["failed"] == len([i for i in failed if workflow.table.position(i) is not None])


def test_every_fit_failed_blocks_every_gathering_task(built):
    """The largest blocked set: every task with a dependency, every chain walked to ``final``."""
    for folder in (store.OUTPUTS_DIR, store.LOGS_DIR):
        shutil.rmtree(built.workdir / folder)
        store.make_private_dir(built.workdir / folder)
    roots = [task for task in built.tasks if not task.deps]
    for task in roots:
        (built.workdir / store.LOGS_DIR / f"{task.id}.err").write_text("Traceback ...")
    workflow = mp.Workflow.open(built.workdir)
    expected = reference_counts(workflow)
    assert expected["failed"] == len(roots) and expected["blocked"] == len(built.tasks) - len(roots)
    assert same_counts(task_counts(workflow), expected)
    assert workflow.blocked_ids() == sorted(task.id for task in built.tasks if task.deps)


def test_run_status_while_another_process_runs_counts_the_ready_tasks(built):
    """A Run that only watches (``drives=False``) has no observer: running = deps all done."""
    random_state(built, np.random.RandomState(1), closed=True)
    workflow = mp.Workflow.open(built.workdir)
    run = mp.Run(workflow, lambda stop: stop.wait(30), drives=False)
    try:
        assert same_counts(run.status(), reference_counts(workflow, active=True))
        assert run.status()["running"] > 0 or run.status()["done"] == len(built.tasks)
    finally:
        run.cancel()
    assert same_counts(run.status(), reference_counts(workflow, active=False))


# ------------------------------------------------------------ the table's arithmetic
SHAPES = {
    "nested, permutations, final fit": ({MAIN: {"n_outer": 3, "n_inner": [2, 4, 1], "n_inner_all": 2},
                                         "perm-1": {"n_outer": 3, "n_inner": [1, 2, 3]},
                                         "perm-10": {"n_outer": 2, "n_inner": [2, 2]}}, [[0], [1, 2], [3]], True),
    "plain CV, final fit": ({MAIN: {"n_outer": 4, "n_inner": [0] * 4, "n_inner_all": 3}}, [], False),
}


FIT_KINDS = ("fit", "fit-all")


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_fits_per_block_of_any_texts_equal_the_records(shape):
    """Texts of one block (the fast path), of several blocks and kinds, of ``perm-1`` and ``perm-10`` ids."""
    table = TaskTable(make_table(*SHAPES[shape]))
    tasks, blocks = list(table), table.blocks()
    assert [table.dependent_of(i) for i in range(len(table))] == table.dependent_positions()
    for index, block in enumerate(blocks):
        gather = tasks[block.gather]
        assert (gather.id, gather.kind, gather.split_set, gather.outer) == (
            block.gather_id, block.gather_kind, block.split_set, block.outer)
        assert [tasks[p].id for p in range(block.first, block.gather)] == list(gather.deps)
        assert {tasks[p].kind for p in range(block.first, block.gather)} <= {block.fit_kind}
        assert {table.block_at(p) for p in range(block.first, block.gather + 1)} == {index}
    assert table.block_at(len(table) - 1) is None and blocks[-1].gather == len(table) - 2
    rng = np.random.RandomState(0)
    for _ in range(50):
        chosen = [task for task in tasks if rng.rand() < 0.5]
        rng.shuffle(chosen)
        if rng.rand() < 0.5:  # texts of one block's fits only
            texts = ["\n".join(task.id for task in chosen if task.kind in FIT_KINDS and table.block_at(
                table.position(task.id)) == index) for index in range(len(blocks))]
            texts.append("\n".join(task.id for task in chosen if task.kind not in FIT_KINDS))
        else:
            cuts = sorted(rng.randint(0, len(chosen) + 1, size=3))
            texts = ["\n".join(task.id for task in part) for part in np.split(np.array(chosen, dtype=object), cuts)]
        expected = [sum(1 for task in chosen if task.kind in FIT_KINDS
                        and table.block_at(table.position(task.id)) == index) for index in range(len(blocks))]
        assert table.count_fits_by_block(texts) == expected
