"""Per-backend overhead: tasks per second on a graph of ~1,000 tiny tasks.

A DummyClassifier with 333 permutations of a 3-fold CV gives 1,002 ``score``
tasks plus ``final``; each task does almost nothing, so the rate measures
what a backend adds per task (dispatch, process start, bookkeeping).

    .venv/bin/python benchmarks/bench_backends.py [--backends local ipyparallel soma-workflow]

Measured on the 2-core dev machine: local 653 tasks/s, ipyparallel 196 tasks/s
(2 engines, cluster start and stop included), soma-workflow 2.0 tasks/s (one
``python -m mempamal task`` process per task: interpreter + scikit-learn
import dominate; use large chunks on clusters).
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.dummy import DummyClassifier

import mempamal as mp


def measure(backend, n_permutations, n_jobs):
    rng = np.random.RandomState(0)
    X, y = rng.rand(60, 3), rng.randint(0, 2, 60)
    workdir = Path(tempfile.mkdtemp(prefix="mempamal-bench-")) / "wd"
    try:
        experiment = mp.Experiment(DummyClassifier(), cv=3, n_permutations=n_permutations, random_state=0)
        workflow = experiment.build(X, y, workdir=workdir)
        n_tasks = len(workflow.tasks)
        start = time.perf_counter()
        workflow.run(backend=backend, n_jobs=n_jobs, progress=False)
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(workdir.parent, ignore_errors=True)
    return n_tasks, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["local", "ipyparallel", "soma-workflow"])
    parser.add_argument("--permutations", type=int, default=333)
    parser.add_argument("--soma-permutations", type=int, default=33,
                        help="soma-workflow starts one interpreter per task (~1 s with scikit-learn's "
                             "import), so it gets a ~100-task graph unless told otherwise")
    parser.add_argument("-n", "--n-jobs", type=int, default=2)
    args = parser.parse_args()
    print(f"{'backend':<15}{'tasks':>7}{'seconds':>10}{'tasks/s':>10}   (includes cluster start/stop)")
    for backend in args.backends:
        permutations = args.soma_permutations if backend == "soma-workflow" else args.permutations
        n_tasks, seconds = measure(backend, permutations, args.n_jobs)
        print(f"{backend:<15}{n_tasks:>7}{seconds:>10.2f}{n_tasks / seconds:>10.1f}")


if __name__ == "__main__":
    main()
