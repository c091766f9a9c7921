"""A 10^6-task mempamal graph scheduled on 2,000 simulated workers.

Two parts:

1. **Measured**: the driver's real scheduling core (``DependencyTracker`` of
   ``mempamal.backends.tracker`` on the real task table of ``mempamal.store.tasktable``,
   10,000 grid points x 10 outer x 10 inner folds, ``chunk_size=1``): how
   many "this task is done, what is ready now" decisions per second it makes.
2. **Simulated**: an event-driven run of that graph on ``--workers`` workers,
   tasks bundled ``b`` per job (what the job-based routes do), task costs
   drawn from a log-normal distribution (median and spread from the nested-CV
   benchmark's measured fit tasks by default), a fixed cost per job (start-up
   + scheduler latency), and a single driver that needs ``1/rate`` seconds per
   job it dispatches.  Printed per bundle size: the makespan against the lower
   bound ``max(critical path, total work / workers)``, the decision rate the
   workers *need* to stay busy, and how busy the driver is.

    .venv/bin/python benchmarks/sim_cluster.py                 # ~1 min
    .venv/bin/python benchmarks/sim_cluster.py --quick         # 10^5 tasks
"""

import argparse
import statistics
import time

import numpy as np

from mempamal.backends.tracker import DependencyTracker
from mempamal.graph.schedule import critical_path as graph_critical_path, list_schedule
from mempamal.store.tasktable import TaskTable, make_table


class _Graph:
    """What DependencyTracker reads of a workflow: its task table (and its tasks)."""

    def __init__(self, tasks):
        self.tasks = tasks
        self.table = tasks.table


def make_graph(n_points, n_outer, n_inner):
    info = {"main": {"n_outer": n_outer, "n_inner": [n_inner] * n_outer}}
    chunks = [[point] for point in range(n_points)]  # chunk_size=1: one fit task per point and split
    table = TaskTable(make_table(info, chunks, nested=True), "/shared/run", python="python")
    tasks = _Tasks(table)
    return tasks


class _Tasks(list):
    """The records of the graph, remembering the table they came from."""

    def __init__(self, table):
        super().__init__(table)
        self.table = table


def measure_decisions(tasks, repeats=3):
    """Decisions/s of the real tracker: build it, then finish every task in ready order."""
    rates, build_seconds = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        tracker = DependencyTracker(_Graph(tasks), [task.id for task in tasks])
        built = time.perf_counter()
        failed, n_done = {}, 0
        while tracker.ready:
            tracker.record(tracker.ready.popleft(), None, failed)
            n_done += 1
        ended = time.perf_counter()
        assert n_done == len(tasks) and not failed
        build_seconds.append(built - started)
        rates.append(n_done / (ended - built))
    return rates, build_seconds


def simulate(tasks, costs, workers, bundle_size, job_overhead, driver_seconds):
    """Makespan of one bundled run; returns (makespan, driver busy seconds, n_jobs).

    Fit tasks of a level are bundled ``bundle_size`` at a time; selects and
    the final run one per job once their dependencies are done.  The driver
    dispatches one job per ``driver_seconds``; a job occupies a worker for
    ``job_overhead`` plus its tasks' costs.  The scheduling itself is the
    package's (``mempamal.graph.schedule.list_schedule``, which
    ``Workflow.estimate`` uses too).
    """
    cost = dict(zip((task.id for task in tasks), costs))
    fits = [task.id for task in tasks if task.kind == "fit"]
    jobs = [fits[i:i + bundle_size] for i in range(0, len(fits), bundle_size)]
    jobs += [[task.id] for task in tasks if task.kind != "fit"]
    schedule = list_schedule(tasks, cost, workers, jobs=jobs, job_overhead=job_overhead,
                             dispatch_seconds=driver_seconds)
    return schedule.makespan, schedule.driver_busy, schedule.n_jobs


def critical_path(tasks, costs):
    return graph_critical_path(tasks, dict(zip((task.id for task in tasks), costs)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--outer", type=int, default=10)
    parser.add_argument("--inner", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2000)
    parser.add_argument("--median-seconds", type=float, default=0.5,
                        help="median fit task cost (nested-CV benchmark: SVC on 1200x40, ~0.05-1 s)")
    parser.add_argument("--sigma", type=float, default=0.8, help="log-normal spread of task costs")
    parser.add_argument("--job-overhead", type=float, default=2.0,
                        help="seconds per job: interpreter start with scikit-learn + scheduler latency")
    parser.add_argument("--submit-ms", type=float, default=2.0,
                        help="driver milliseconds to hand one job to the scheduler/engines (assumed), "
                             "on top of the measured bookkeeping")
    parser.add_argument("--bundles", type=int, nargs="+", default=[1, 10, 50, 100, 500])
    parser.add_argument("--quick", action="store_true", help="10^5 tasks")
    args = parser.parse_args()
    if args.quick:
        args.points = 1000
    tasks = make_graph(args.points, args.outer, args.inner)
    print(f"graph: {len(tasks):,} tasks ({args.points:,} points x {args.outer} outer x {args.inner} inner)")

    rates, builds = measure_decisions(tasks)
    rate = statistics.median(rates)
    print(f"driver (measured, real DependencyTracker): median {rate:,.0f} decisions/s "
          f"(range {min(rates):,.0f}-{max(rates):,.0f}, {len(rates)} runs); "
          f"tracker built in {statistics.median(builds):.2f} s")

    rng = np.random.default_rng(0)
    costs = rng.lognormal(np.log(args.median_seconds), args.sigma, len(tasks))
    for index, task in enumerate(tasks):  # a select refits on the whole outer train set
        if task.kind in ("select", "final"):
            costs[index] = args.median_seconds * (1.5 if task.kind == "select" else 0.2)
    total = float(costs.sum())
    path = critical_path(tasks, costs)
    bound = max(path, total / args.workers)
    print(f"work {total / 3600:,.1f} core-hours on {args.workers:,} workers; critical path {path:.1f} s; "
          f"lower bound {bound:,.0f} s")
    per_job = 1.0 / rate + args.submit_ms / 1000
    n_fits = sum(task.kind == "fit" for task in tasks)
    print(f"driver: {per_job * 1000:.2f} ms per job dispatched ({1 / per_job:,.0f} jobs/s achievable)")
    print(f"{'tasks/job':>9} {'jobs':>9} {'needed/s':>9} {'makespan s':>11} {'/bound':>7} {'driver busy':>11}")
    # As make_bundles: never fewer bundles than workers on a level.
    sizes = sorted({max(1, min(requested, -(-n_fits // args.workers))) for requested in args.bundles})
    for bundle in sizes:
        mean_job = args.job_overhead + bundle * total / len(tasks)
        needed = args.workers / mean_job  # jobs per second that keep every worker busy
        makespan, busy, n_jobs = simulate(tasks, costs, args.workers, bundle, args.job_overhead, per_job)
        print(f"{bundle:>9} {n_jobs:>9,} {needed:>9,.0f} {makespan:>11,.0f} {makespan / bound:>7.2f} "
              f"{busy / makespan:>10.1%}")


if __name__ == "__main__":
    main()
