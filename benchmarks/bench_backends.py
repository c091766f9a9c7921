"""Per-backend overhead: tasks per second on a graph of ~1,000 tiny tasks.

A DummyClassifier with 333 permutations of a 3-fold CV gives 1,002 ``score``
tasks plus ``final``; each task does almost nothing, so the rate measures
what a backend adds per task (dispatch, process start, bookkeeping).

    .venv/bin/python benchmarks/bench_backends.py [--backends local ipyparallel dask soma-workflow slurm
                                                   soma-workflow+slurm]

For local, ipyparallel and dask the workers are started (and warmed up by
a first tiny run) before the clock starts: the rate is the dispatch rate,
and the start-up time is printed apart.

Measured on the 2-core dev machine shared with other jobs (load 4-6, three
runs), start excluded: local 290-330 tasks/s, ipyparallel 300-470, dask
260-500 (each tiny task's own cost, mostly the fsync of its output, is the
limit there).

Job-based routes run bundles of tasks per job (default 60 s jobs, at least
``-n`` jobs per level) and are timed from submission to the last job's end.
``slurm`` and ``soma-workflow+slurm`` need a running Slurm (``sudo bash
ci/slurm/start.sh``; the latter also Slurm accounting, i.e. ``sacct``) and
are skipped otherwise.  Measured on the same machine: soma-workflow light
mode 151-288 tasks/s at load 1-3, 86-94 at load 7-10 (2 before bundles: one
interpreter per task); native slurm on the CI Slurm 163-214, 69-95 loaded;
soma-workflow with a Slurm resource 95, 78-92 loaded.
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


def route_options(route, folder):
    """``(backend, options)`` of a job-based route, or None when this machine cannot run it."""
    if route == "slurm":
        return ("slurm", {"poll_seconds": 0.2}) if shutil.which("sbatch") else None
    if route == "soma-workflow+slurm":
        if shutil.which("sacct") is None:
            return None
        import socket

        config = Path(folder) / "soma-workflow.cfg"
        config.write_text(f"[bench-slurm]\nSCHEDULER_TYPE = slurm\nSUBMITTING_MACHINES = {socket.gethostname()}\n")
        return "soma-workflow", {"resource_id": "bench-slurm", "config": str(config)}
    return route, {}


@contextlib.contextmanager
def started_workers(backend, n_jobs):
    """Start ``backend``'s workers; yield ``(backend, run options that use them, start seconds)``."""
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        options = {}
        if backend == "local":
            from mempamal.backends.local import LocalBackend

            # A run by name starts and stops its own workers: one instance keeps them warm.
            backend = stack.enter_context(LocalBackend())
        if backend == "ipyparallel":
            from mempamal.backends.ipyparallel import LocalCluster

            options["client"] = stack.enter_context(LocalCluster(n_jobs)).client
        elif backend == "dask":
            import distributed

            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=n_jobs, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR))
            options["client"] = stack.enter_context(distributed.Client(cluster))
        measure(backend, 1, n_jobs, **options)  # warm-up: workers import and start (local's pool too)
        yield backend, options, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["local", "ipyparallel", "dask", "soma-workflow", "slurm",
                                                        "soma-workflow+slurm"])
    parser.add_argument("--permutations", type=int, default=333)
    parser.add_argument("-n", "--n-jobs", type=int, default=2)
    args = parser.parse_args()
    print(f"{'route':<20}{'tasks':>7}{'seconds':>10}{'tasks/s':>10}{'start s':>10}")
    for backend in args.backends:
        if backend in ("local", "ipyparallel", "dask"):
            with started_workers(backend, args.n_jobs) as (runner, options, start_seconds):
                n_tasks, seconds = measure(runner, args.permutations, args.n_jobs, **options)
            print(f"{backend:<20}{n_tasks:>7}{seconds:>10.2f}{n_tasks / seconds:>10.1f}{start_seconds:>10.2f}")
            continue
        with tempfile.TemporaryDirectory(prefix="mempamal-bench-config-") as folder:
            found = route_options(backend, folder)
            if found is None:
                print(f"{backend:<20}  skipped: no Slurm here (sudo bash ci/slurm/start.sh)")
                continue
            name, options = found
            n_tasks, seconds = measure(name, args.permutations, args.n_jobs, **options)
        print(f"{backend:<20}{n_tasks:>7}{seconds:>10.2f}{n_tasks / seconds:>10.1f}   (submission to last job end)")


if __name__ == "__main__":  # Dask's workers are spawned: they re-import this file
    main()
