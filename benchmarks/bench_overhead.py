"""Case 3 - overhead: 20,000 no-op tasks on 2 workers, and building a 100,000-task graph.

A no-op estimator (fit does nothing, score returns 0) in a grid of 1,000
points with ``chunk_size=1``, outer 5 x inner 4 folds, ``final_fit=False``:
20,000 ``fit`` tasks (plus 5 ``select`` and the ``final``) on the local
backend with 2 workers (issue 16: >= 2,000 tasks/s).  scikit-learn's way is
the same nested CV, ``cross_validate(GridSearchCV(...))`` (20,000 fits, best
of serial and n_jobs), timed side by side.  Then the time and memory to
build a graph of 100,000 tasks (1,000 points x 10 x 10 folds), at three
sizes to show linear growth.  ``--quick``: 20 points (400 tasks).

    .venv/bin/python benchmarks/bench_overhead.py [--quick] [--repeats N]
"""

import gc
import shutil
import time
import tracemalloc

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV, KFold, cross_validate

import mempamal as mp
from _common import Timer, cpu_count, emit, fresh_workdir, header, interleaved, local_backend, parse_args


#: Issue 16: no-op tasks per second on 2 local workers (run time, build excluded).
TARGET_RATE = 2000


class NoOp(BaseEstimator):
    """Fits nothing, scores 0: what remains is mempamal's own cost."""

    def __init__(self, value=0):
        self.value = value

    def fit(self, X, y):
        return self

    def score(self, X, y):
        return 0.0


def build_and_run(experiment, X, y, n_jobs, times):
    workdir = fresh_workdir()
    try:
        start = time.perf_counter()
        workflow = experiment.build(X, y, workdir=workdir, chunk_size=1)
        built = time.perf_counter()
        results = workflow.run(backend=local_backend(), n_jobs=n_jobs, progress=False)
        times.append((built - start, time.perf_counter() - built, len(workflow.tasks)))
        return results
    finally:
        shutil.rmtree(workdir.parent, ignore_errors=True)


def measure_build(n_points, n_folds):
    """(seconds, peak traced bytes, n_tasks) to build a graph of n_points x n_folds^2 fit tasks."""
    X, y = np.zeros((10 * n_folds, 2)), np.zeros(10 * n_folds)
    experiment = mp.Experiment(NoOp(), {"value": list(range(n_points))}, cv=KFold(n_folds), inner_cv=KFold(n_folds),
                               final_fit=False)
    workdir = fresh_workdir()
    try:
        gc.collect()
        tracemalloc.start()
        start = time.perf_counter()
        workflow = experiment.build(X, y, workdir=workdir, chunk_size=1)
        n_tasks = len(workflow.tasks)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # Untraced timing: tracemalloc slows allocation-heavy code down.
        shutil.rmtree(workdir)
        start = time.perf_counter()
        workflow = experiment.build(X, y, workdir=workdir, chunk_size=1)
        n_tasks = len(workflow.tasks)
        seconds = time.perf_counter() - start
        return seconds, peak, n_tasks
    finally:
        shutil.rmtree(workdir.parent, ignore_errors=True)


def main():
    args = parse_args(__doc__.splitlines()[0], default_repeats=3)
    header("Case 3: overhead of no-op tasks and of building a large graph", args)
    n_points = 20 if args.quick else 1000
    n_cores = cpu_count()
    n_workers = 2
    X, y = np.arange(200.0).reshape(100, 2), np.arange(100.0)
    grid = {"value": list(range(n_points))}
    outer, inner = KFold(5), KFold(4)
    experiment = mp.Experiment(NoOp(), grid, cv=outer, inner_cv=inner, final_fit=False)
    run_times = []

    def sklearn_way(n_jobs):
        return lambda: cross_validate(GridSearchCV(NoOp(), grid, cv=inner, n_jobs=n_jobs), X, y, cv=outer)

    sklearn_variants = {"sklearn serial": sklearn_way(None)}
    if args.quick:
        # GridSearchCV(n_jobs) pays joblib's dispatch per no-op fit: slower than
        # serial (0.67 s vs 0.40 s at 400 fits), and minutes at 20,000 fits on
        # a busy 2-core machine, so the full run times the best setting only.
        sklearn_variants[f"sklearn GridSearchCV(n_jobs={n_cores})"] = sklearn_way(n_cores)
    mempamal_name = f"mempamal local n_jobs={n_workers}"
    timer = Timer()
    interleaved(timer, {**sklearn_variants,
                        mempamal_name: lambda: build_and_run(experiment, X, y, n_workers, run_times)}, args.repeats)
    print("  run times (s), warm-up first:", [round(run, 3) for _, run, _ in run_times])
    run_times = run_times[1:]  # the warm-up round
    for name in [*sklearn_variants, mempamal_name]:
        print(f"  {name:<42} {timer.describe(name)}  (build + run)")
    n_tasks = run_times[0][2]
    run_seconds = float(np.median([run for _, run, _ in run_times]))
    build_seconds = float(np.median([build for build, _, _ in run_times]))
    tasks_per_second = n_tasks / run_seconds
    print(f"  mempamal: {n_tasks} tasks, build {build_seconds:.3f} s, run {run_seconds:.3f} s "
          f"-> {tasks_per_second:.0f} tasks/s on {n_workers} workers  (target >= {TARGET_RATE}/s)")

    sizes = [(250, 10), (500, 10), (1000, 10)] if not args.quick else [(50, 10), (100, 10), (200, 10)]
    builds = []
    for n_build_points, n_folds in sizes:
        seconds, peak, n_graph_tasks = measure_build(n_build_points, n_folds)
        builds.append((n_graph_tasks, seconds, peak))
        print(f"  build {n_graph_tasks:>7} tasks: {seconds:6.3f} s, peak memory {peak / 1e6:7.1f} MB "
              f"({peak / n_graph_tasks:.0f} B/task)")
    largest_tasks, largest_seconds, _ = builds[-1]
    per_task = [peak / n for n, _, peak in builds]
    linear = max(per_task) / min(per_task) < 1.5
    best_sklearn = min(sklearn_variants, key=timer.median)
    ratio = timer.median(mempamal_name) / timer.median(best_sklearn)
    identical = np.array_equal(timer.outputs[best_sklearn]["test_score"], timer.outputs[mempamal_name].test_scores["score"])
    print(f"  ratio mempamal / best sklearn = {ratio:.3f};  memory per task {min(per_task):.0f}-{max(per_task):.0f} B "
          f"(linear: {linear}); scores identical: {identical}")
    ok = tasks_per_second >= TARGET_RATE and (args.quick or largest_seconds < 2) and linear
    emit(f"3 overhead ({n_tasks} no-op tasks; {largest_tasks}-task build)", {
        "sklearn": timer.median(best_sklearn), "sklearn_setting": best_sklearn,
        "mempamal": timer.median(mempamal_name), "ratio": ratio, "target": f">= {TARGET_RATE} tasks/s, build < 2 s",
        "ok": ok, "identical": bool(identical),
        "extra": f"{tasks_per_second:.0f} tasks/s; build {largest_tasks} tasks {largest_seconds:.2f} s, "
                 f"{max(per_task):.0f} B/task",
    }, quick=args.quick)


if __name__ == "__main__":
    main()
