"""Case 5 - scale: a 1,000,000-task graph (issue 16, target 1).

``mp.Experiment(NoOp(), {"value": list(range(10000))}, cv=KFold(10),
inner_cv=KFold(10), final_fit=False)`` built with ``chunk_size=1`` on X of
shape (100, 2): 1,000,011 tasks.  Measured, each beside its target:

- build (< 3 s) and the bytes of ``tasks.json`` on disk;
- ``wf.status()`` of the new workdir: cold (a new ``Workflow.open``) and
  warm (< 1 s);
- building the ``DependencyTracker`` of every task;
- ``task_counts`` (what ``Run.status()``, the Run panel and the live
  progress show) of the new workdir, cold and warm (< 1 s), counting the
  tasks whose dependencies are done as running (a run watched from another
  process: the costly case);
- ``--no-fill``: the same two of a workdir with the first
  :data:`FEW_OUTPUTS` tasks run and one failed (a log, so ``blocked`` is
  computed);
- filling ``outputs/``: every task run by the real ``mempamal.run_task``, in
  graph order, in this process (the local backend would do the same work
  through worker processes, ~10 min at 2,000 tasks/s).  ``os.fsync`` is a
  no-op during the fill only, as in the change that drops the per-output
  fsync (outputs atomic by rename, validated on read); ``--fsync`` keeps it;
- half-way through the fill, with one task of the second half failed:
  ``status`` and ``task_counts`` cold (< 1 s), past the index's margin
  (the done-index is removed afterwards, so the figure below still
  validates every output);
- the first ``status`` of the finished workdir (it validates every output
  and writes the done-index), then, past the index's safety margin, cold
  and warm ``status`` and ``task_counts`` (< 1 s) answered from the index;
- ``Results.load`` of the finished workdir in a new process (< 5 s);
- the peak RSS of this process (< 1.5 GB, linear: compare with ``--quick``).

    .venv/bin/python benchmarks/bench_scale.py [--quick] [--points N] [--fsync] [--keep] [--no-fill]

``--quick``: 100 points (10,011 tasks), about 10 s.  The full size takes
roughly 10 minutes on 2 cores (the fill dominates) and ~2 GB of disk
(a million small files).
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sklearn.model_selection import KFold

import mempamal as mp
from _common import emit, fresh_workdir
from bench_overhead import NoOp
from mempamal.store import doneindex
from mempamal import store
from mempamal.backends.tracker import DependencyTracker
from mempamal.run import task_counts

TARGETS = {"build": 3.0, "status": 1.0, "load": 5.0, "rss_gb": 1.5}
FEW_OUTPUTS = 2000
"""Tasks run in the ``--no-fill`` partial state (the fits of the first inner fold, in graph order)."""


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def timed(function):
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def line(label, seconds, target=None, extra=""):
    verdict = "" if target is None else f"  (target < {target:g} s: {'ok' if seconds < target else 'MISSED'})"
    print(f"  {label:<52} {seconds:8.3f} s{verdict}{extra}", flush=True)


@contextmanager
def fsync_skipped(skip):
    saved = os.fsync
    if skip:
        os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = saved


def fill(workdir, table, start=0, stop=None):
    """The tasks at positions ``start:stop`` through the real run_task, in graph order (dependencies first)."""
    for position in range(start, len(table) if stop is None else stop):
        task_id = table.id_at(position)
        if mp.run_task(workdir, task_id) not in ("done", "skipped"):
            raise RuntimeError(task_id)


def counts_of(workdir):
    """``task_counts`` of a new Workflow (cold), active and with nothing published: ready tasks count as running."""
    return task_counts(mp.Workflow.open(workdir), active=True)


def past_margin(workdir):
    """Read the shards written last once more, past the done-index's margin: the next scan takes them from the index."""
    time.sleep(doneindex.MARGIN_NS / 1e9 + 0.5)
    mp.Workflow.open(workdir).status()


def failed_state(workdir, table, n_done, label):
    """``status`` and ``task_counts`` with ``n_done`` tasks done and the next one failed (a log)."""
    log = store.log_path(workdir, table.id_at(n_done))
    store.make_private_dir(log.parent)
    log.write_text("Traceback: failed on purpose (bench_scale)\n")
    try:
        seconds, status = timed(lambda: mp.Workflow.open(workdir).status())
        line(f"status, {label}, cold", seconds, TARGETS["status"])
        # Blocked: the failed task's select (if it is a fit) and final.
        expected = (n_done, 1, 1 if table.dependent_of(n_done) == len(table) - 1 else 2)
        assert (status["done"], status["failed"], status["blocked"]) == expected, status
        seconds, counts = timed(lambda: counts_of(workdir))
        line(f"task_counts, {label}, cold", seconds, TARGETS["status"])
        assert (counts["done"], counts["failed"], counts["blocked"]) == expected, counts
        return seconds
    finally:
        log.unlink()


def disk_bytes(folder):
    total = 0
    for root, _, names in os.walk(folder):
        for name in names:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def load_in_new_process(workdir):
    code = ("import time, sys; start = time.perf_counter(); import mempamal as mp; "
            "res = mp.Results.load(sys.argv[1]); print(time.perf_counter() - start, res.test_scores['score'].sum())")
    out = subprocess.run([sys.executable, "-c", code, str(workdir)], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    seconds, _ = out.stdout.split()
    return float(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 points: 10,011 tasks")
    parser.add_argument("--points", type=int, default=None, help="grid points (default 10,000)")
    parser.add_argument("--fsync", action="store_true", help="keep the per-output fsync during the fill")
    parser.add_argument("--keep", action="store_true", help="keep the workdir (its path is printed)")
    parser.add_argument("--no-fill", action="store_true",
                        help="stop after the figures of the new workdir (build, status, tracker): seconds, not minutes")
    args = parser.parse_args()
    n_points = args.points or (100 if args.quick else 10_000)
    print(f"== Case 5: a {n_points * 100 + 11:,}-task graph ({os.cpu_count()} cores, "
          f"python {sys.version.split()[0]})", flush=True)
    X, y = np.zeros((100, 2)), np.zeros(100)
    experiment = mp.Experiment(NoOp(), {"value": list(range(n_points))}, cv=KFold(10), inner_cv=KFold(10),
                               final_fit=False)
    workdir = fresh_workdir()
    figures = {}
    try:
        figures["build"], workflow = timed(lambda: experiment.build(X, y, workdir=workdir, chunk_size=1))
        n_tasks = len(workflow.table)
        table_bytes = (workdir / store.TASKS).stat().st_size
        line(f"build ({n_tasks:,} tasks)", figures["build"], TARGETS["build"],
             f"; tasks.json {table_bytes / 1e3:.0f} kB on disk")
        seconds, status = timed(lambda: mp.Workflow.open(workdir).status())
        line("status of the new workdir, cold", seconds, TARGETS["status"])
        assert status["pending"] == n_tasks
        line("status of the new workdir, warm", timed(workflow.status)[0], TARGETS["status"])
        seconds, _ = timed(lambda: DependencyTracker(workflow, list(workflow.table.ids())))
        line("DependencyTracker of every task", seconds)
        figures["counts_new"], counts = timed(lambda: counts_of(workdir))
        line("task_counts of the new workdir, cold", figures["counts_new"], TARGETS["status"])
        assert counts["running"] == n_points * 100 and counts["pending"] == 11, counts  # every fit is ready
        reopened = mp.Workflow.open(workdir)
        task_counts(reopened)
        line("task_counts of the new workdir, warm", timed(lambda: task_counts(reopened))[0],
             TARGETS["status"])
        table = workflow.table
        if args.no_fill:
            # A partial state at the full size, cheaply: a few outputs, then one failure.
            few = min(FEW_OUTPUTS, n_tasks // 2)
            with fsync_skipped(not args.fsync):
                fill(workdir, table, stop=few)
            past_margin(workdir)
            failed_state(workdir, table, few, f"{few:,} tasks done, 1 failed")
            print(f"  peak RSS of this process {peak_rss_gb():.2f} GB "
                  "(--no-fill: the finished workdir is not measured)")
            return

        half = n_tasks // 2
        with fsync_skipped(not args.fsync):
            seconds, _ = timed(lambda: fill(workdir, table, stop=half))
        mp.Workflow.open(workdir).status()  # validates the first half, writes the done-index
        past_margin(workdir)
        figures["counts_half"] = failed_state(workdir, table, half, "half done, 1 failed")
        doneindex.index_path(workdir).unlink()  # the first status of the finished workdir validates all
        with fsync_skipped(not args.fsync):
            seconds += timed(lambda: fill(workdir, table, start=half))[0]
        line(f"fill: run_task x {n_tasks:,} in this process ({'with' if args.fsync else 'no'} fsync)", seconds,
             extra=f"; {n_tasks / seconds:,.0f} tasks/s")
        seconds, status = timed(lambda: mp.Workflow.open(workdir).status())
        line("first status of the finished workdir (validates all)", seconds)
        assert status["done"] == n_tasks and status["results"] is None, status
        # Shards changed less than the margin before a scan are read again (racy-clean): wait past it.
        past_margin(workdir)
        figures["status_cold"], status = timed(lambda: mp.Workflow.open(workdir).status())
        line("status of the finished workdir, cold (index)", figures["status_cold"], TARGETS["status"])
        assert status["done"] == n_tasks
        reopened = mp.Workflow.open(workdir)
        reopened.status()
        figures["status_warm"], _ = timed(reopened.status)
        line("status of the finished workdir, warm", figures["status_warm"], TARGETS["status"])
        figures["counts_done"], counts = timed(lambda: counts_of(workdir))
        line("task_counts of the finished workdir, cold", figures["counts_done"], TARGETS["status"])
        assert counts["done"] == n_tasks and counts["by_kind"]["select"]["done_main"] == 10, counts
        task_counts(reopened)
        line("task_counts of the finished workdir, warm", timed(lambda: task_counts(reopened))[0],
             TARGETS["status"])
        figures["load"] = load_in_new_process(workdir)
        line("Results.load, new process (import included)", figures["load"], TARGETS["load"])
        figures["load_here"], _ = timed(lambda: mp.Results.load(workdir))
        line("Results.load in this process", figures["load_here"], TARGETS["load"])
        rss = peak_rss_gb()
        index_bytes = doneindex.index_path(workdir).stat().st_size
        print(f"  peak RSS of this process {rss:.2f} GB (target < {TARGETS['rss_gb']} GB: "
              f"{'ok' if rss < TARGETS['rss_gb'] else 'MISSED'}); done-index {index_bytes / 1e6:.1f} MB; "
              f"workdir {disk_bytes(workdir) / 1e9:.2f} GB on disk", flush=True)
        ok = (figures["build"] < TARGETS["build"] and figures["status_cold"] < TARGETS["status"]
              and max(figures["counts_new"], figures["counts_half"], figures["counts_done"]) < TARGETS["status"]
              and figures["load"] < TARGETS["load"] and rss < TARGETS["rss_gb"])
        emit(f"5 scale ({n_tasks:,} tasks)", {
            "scale": True, "ok": ok, "identical": True, "build": figures["build"],
            "status": figures["status_cold"], "load": figures["load"], "rss_gb": rss, "table_bytes": table_bytes,
            "task_counts": max(figures["counts_new"], figures["counts_half"], figures["counts_done"]),
            "target": "build < 3 s, status and task_counts < 1 s, load < 5 s, RSS < 1.5 GB",
        }, quick=args.quick)
    finally:
        if args.keep:
            print(f"  workdir kept: {workdir}")
        else:
            shutil.rmtree(workdir.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
