"""Per-backend overhead: tasks per second on a graph of ~1,000 tiny tasks.

A DummyClassifier with 333 permutations of a 3-fold CV gives 1,002 ``score``
tasks plus ``final``; each task does almost nothing, so the rate measures
what a backend adds per task (dispatch, process start, bookkeeping).

    .venv/bin/python benchmarks/bench_backends.py [--backends local ipyparallel dask soma-workflow]

For local, ipyparallel and dask the workers are started (and warmed up by
a first tiny run) before the clock starts: the rate is the dispatch rate,
and the start-up time is printed apart.

Measured on the 2-core dev machine shared with other jobs (load 4-6, three
runs), start excluded: local 290-330 tasks/s, ipyparallel 300-470, dask
260-500 (each tiny task's own cost, mostly the fsync of its output, is the
limit there); soma-workflow 2.0 tasks/s (one ``python -m mempamal task``
process per task: interpreter + scikit-learn import dominate; use large
chunks on clusters).
"""

import argparse
import contextlib
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.dummy import DummyClassifier

import mempamal as mp


def measure(backend, n_permutations, n_jobs, **options):
    rng = np.random.RandomState(0)
    X, y = rng.rand(60, 3), rng.randint(0, 2, 60)
    workdir = Path(tempfile.mkdtemp(prefix="mempamal-bench-")) / "wd"
    try:
        experiment = mp.Experiment(DummyClassifier(), cv=3, n_permutations=n_permutations, random_state=0)
        workflow = experiment.build(X, y, workdir=workdir)
        n_tasks = len(workflow.tasks)
        start = time.perf_counter()
        workflow.run(backend=backend, n_jobs=n_jobs, progress=False, **options)
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(workdir.parent, ignore_errors=True)
    return n_tasks, seconds


@contextlib.contextmanager
def started_workers(backend, n_jobs):
    """Start ``backend``'s workers; yield ``(run options that use them, start seconds)``."""
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        options = {}
        if backend == "ipyparallel":
            from mempamal.backends.ipyparallel import LocalCluster

            options["client"] = stack.enter_context(LocalCluster(n_jobs)).client
        elif backend == "dask":
            import distributed

            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=n_jobs, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR))
            options["client"] = stack.enter_context(distributed.Client(cluster))
        measure(backend, 1, n_jobs, **options)  # warm-up: workers import and start (local's pool too)
        yield options, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["local", "ipyparallel", "dask", "soma-workflow"])
    parser.add_argument("--permutations", type=int, default=333)
    parser.add_argument("--soma-permutations", type=int, default=33,
                        help="soma-workflow starts one interpreter per task (~1 s with scikit-learn's "
                             "import), so it gets a ~100-task graph unless told otherwise")
    parser.add_argument("-n", "--n-jobs", type=int, default=2)
    args = parser.parse_args()
    print(f"{'backend':<15}{'tasks':>7}{'seconds':>10}{'tasks/s':>10}{'start s':>10}")
    for backend in args.backends:
        if backend in ("local", "ipyparallel", "dask"):
            with started_workers(backend, args.n_jobs) as (options, start_seconds):
                n_tasks, seconds = measure(backend, args.permutations, args.n_jobs, **options)
            print(f"{backend:<15}{n_tasks:>7}{seconds:>10.2f}{n_tasks / seconds:>10.1f}{start_seconds:>10.2f}")
            continue
        permutations = args.soma_permutations if backend == "soma-workflow" else args.permutations
        n_tasks, seconds = measure(backend, permutations, args.n_jobs)
        print(f"{backend:<15}{n_tasks:>7}{seconds:>10.2f}{n_tasks / seconds:>10.1f}   (start/stop included)")


if __name__ == "__main__":  # Dask's workers are spawned: they re-import this file
    main()
