"""Case 5 - memory: X of 1 GB, 2 local workers, peak memory of the whole process tree.

X is float64 (125,000 x 1,000) = 1.0 GB, held by the driver as a user's
session would; ``build`` writes it once to ``data/X.npy`` and each worker
memory-maps that file once.  The estimator does nothing but read its
training rows (``fit`` sums them, ``score`` sums the test rows): the
realistic worst case, since every fit reads its rows; a no-op that never
looks at X would only show the mapping.  Nested CV, outer KFold(5) x inner
KFold(4), 2 grid points, ``chunk_size=1``, ``final_fit=False``: 40 ``fit``
tasks, 5 ``select``, ``final``.

A sampler thread reads, every 50 ms, the memory of the driver and of all its
descendants (the loky workers; joblib's for scikit-learn) with psutil and
keeps the peak of three sums:

- **PSS** (proportional set size), the figure the target is checked on: a
  page shared by k processes counts 1/k in each, so the sum is the memory
  the run really occupies.  The pages of ``data/X.npy`` that two workers map
  count once, not twice.
- RSS, for reference: it counts every shared page (the memory map, shared
  libraries) once *per process*, so two workers mapping X show 2 GB that
  exist once in the page cache.
- USS (unique set size): private memory only (the copies of rows).

Each is reported above the driver's own value measured just before the run
(after the build), on the same machine, next to scikit-learn's
``cross_validate(GridSearchCV(...))`` on the same in-memory X (serial, and
``GridSearchCV(n_jobs=2)``), measured the same way; mempamal on one worker
too, to compare one worker's memory with scikit-learn's serial run.  Target
(issue 16): mempamal's peak PSS <= 1.3 GB above the driver.

Needs about 3 GB of disk in a temporary folder (the workdir's X, joblib's
memory maps) and about 5 GB of RAM; everything is removed at the end.

    .venv/bin/python benchmarks/bench_memory.py [--quick]
"""

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV, KFold, cross_validate

import mempamal as mp
from _common import emit, header, parse_args

#: Issue 16: peak PSS of the process tree above the driver's, with 2 workers.
TARGET_BYTES = 1.3e9
N_WORKERS = 2


class RowReader(BaseEstimator):
    """Reads every training row in ``fit`` and every test row in ``score``: nothing else."""

    def __init__(self, value=0):
        self.value = value

    def fit(self, X, y):
        self.total_ = float(np.sum(X))
        return self

    def score(self, X, y):
        return float(np.sum(X[:, :1])) * 0.0 + self.value


class TreeSampler:
    """Peak sums of RSS, PSS and USS over this process and all its descendants."""

    def __init__(self, interval=0.05):
        import psutil

        self.psutil, self.interval = psutil, interval
        self.root = psutil.Process()
        self.peak = {"rss": 0, "pss": 0, "uss": 0}
        self.max_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        totals = {"rss": 0, "pss": 0, "uss": 0}
        processes = [self.root] + self.root.children(recursive=True)
        for process in processes:
            try:
                info = process.memory_full_info()
            except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                continue
            for key in totals:
                totals[key] += getattr(info, key)
        return totals, len(processes)

    def _run(self):
        while not self._stop.is_set():
            totals, count = self.sample()
            for key, value in totals.items():
                self.peak[key] = max(self.peak[key], value)
            self.max_processes = max(self.max_processes, count)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def driver_only():
    """This process's RSS, PSS and USS (the baseline, before a run)."""
    import psutil

    info = psutil.Process().memory_full_info()
    return {"rss": info.rss, "pss": info.pss, "uss": info.uss}


def measured(function):
    """``(output, seconds, peak above the baseline {rss, pss, uss}, processes seen)``."""
    import gc

    gc.collect()
    baseline = driver_only()
    start = time.perf_counter()
    with TreeSampler() as sampler:
        output = function()
    seconds = time.perf_counter() - start
    above = {key: sampler.peak[key] - baseline[key] for key in baseline}
    return output, seconds, above, sampler.max_processes


def _gb(value):
    return f"{value / 1e9:5.2f} GB"


def main():
    args = parse_args(__doc__.splitlines()[0], default_repeats=1)
    header("Case 5: memory of a 1 GB X on 2 local workers (peak of the whole process tree)", args)
    n_samples, n_features = (12_500, 400) if args.quick else (125_000, 1_000)
    root = Path(tempfile.mkdtemp(prefix="mempamal-bench-memory-"))
    os.environ["JOBLIB_TEMP_FOLDER"] = str(root / "joblib")  # scikit-learn's memory maps, removed below
    (root / "joblib").mkdir()
    try:
        rng = np.random.default_rng(0)
        X = np.empty((n_samples, n_features))
        for start in range(0, n_samples, 10_000):  # in blocks: no temporary of X's size
            X[start:start + 10_000] = rng.standard_normal((min(10_000, n_samples - start), n_features))
        y = rng.standard_normal(n_samples)
        print(f"  X: {X.shape[0]} x {X.shape[1]} float64 = {_gb(X.nbytes)}; y {_gb(y.nbytes)}")
        grid = {"value": [0, 1]}
        outer, inner = KFold(5), KFold(4)
        experiment = mp.Experiment(RowReader(), grid, cv=outer, inner_cv=inner, final_fit=False)
        workflow = experiment.build(X, y, workdir=root / "wd", chunk_size=1)
        print(f"  workdir {root / 'wd'}: {len(workflow.tasks)} tasks, data/X.npy "
              f"{_gb((root / 'wd' / 'data' / 'X.npy').stat().st_size)}")

        rows = {}
        for n_jobs in (N_WORKERS, 1):
            # A fresh workdir per variant: the second run must compute, not
            # find the first one's outputs.
            if n_jobs != N_WORKERS:
                shutil.rmtree(root / "wd")
                workflow = experiment.build(X, y, workdir=root / "wd", chunk_size=1)
            results, seconds, above, count = measured(
                lambda: workflow.run(backend="local", n_jobs=n_jobs, progress=False))
            rows[f"mempamal local n_jobs={n_jobs}"] = (seconds, above, count)
            if n_jobs == N_WORKERS:
                main_results = results
            # A run by name stops its workers when it ends: they do not carry the workdir into the next figures.
        results = main_results
        reference, seconds, above, count = measured(
            lambda: cross_validate(GridSearchCV(RowReader(), grid, cv=inner), X, y, cv=outer))
        rows["sklearn serial"] = (seconds, above, count)
        if not args.quick:
            _, seconds, above, count = measured(
                lambda: cross_validate(GridSearchCV(RowReader(), grid, cv=inner, n_jobs=N_WORKERS), X, y, cv=outer))
            rows[f"sklearn GridSearchCV(n_jobs={N_WORKERS})"] = (seconds, above, count)

        print(f"  peak above the driver's own memory before the run (sampled every 50 ms; "
              f"outer train rows {_gb(X.nbytes * 4 / 5)}, inner train {_gb(X.nbytes * 3 / 5)}, "
              f"inner test {_gb(X.nbytes / 5)}):")
        print(f"  {'':<36} {'PSS':>8} {'RSS':>8} {'USS':>8} {'time':>7}  processes")
        for name, (seconds, above, count) in rows.items():
            print(f"  {name:<36} {_gb(above['pss'])} {_gb(above['rss'])} {_gb(above['uss'])} "
                  f"{seconds:6.1f} s  {count}")
        ours = rows[f"mempamal local n_jobs={N_WORKERS}"]
        identical = bool(np.array_equal(reference["test_score"], results.test_scores["score"]))
        target = TARGET_BYTES * (X.nbytes / 1e9)
        ok = ours[1]["pss"] <= target
        print(f"  mempamal peak PSS {_gb(ours[1]['pss'])} above the driver (target <= {_gb(target)}): "
              f"{'met' if ok else 'MISSED'}; scores identical to scikit-learn: {identical}")
        emit(f"5 memory ({_gb(X.nbytes).strip()} X, {N_WORKERS} workers)", {
            "sklearn": rows["sklearn serial"][0], "sklearn_setting": "sklearn serial",
            "mempamal": ours[0], "ratio": ours[0] / rows["sklearn serial"][0],
            "target": f"peak PSS <= {_gb(target).strip()} above driver", "ok": ok, "identical": identical,
            "extra": f"peak PSS +{_gb(ours[1]['pss']).strip()} (sklearn serial "
                     f"+{_gb(rows['sklearn serial'][1]['pss']).strip()}), RSS sum +{_gb(ours[1]['rss']).strip()}",
        }, quick=args.quick)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
