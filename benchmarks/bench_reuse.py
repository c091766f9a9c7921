"""Case 8 - grow without redoing: a 4-point grid grown to 8 points with ``build(..., reuse=True)``.

An SVC on 2,000 x 20 (``--quick``: 300 x 10), outer 5 x inner 3 folds,
``final_fit=False``.  First the 4-point grid is built and run; then the
8-point grid (the 4 old values and 4 new ones between them, so the old
points get other indices and share chunks with new ones) is built into the
same workdir with ``reuse=True`` and run; then the 8-point grid from
scratch in a fresh workdir.  Fits are counted by the estimator itself (each
``fit`` appends a line to a log file, whatever worker runs it), so the
counts are what really executed: the grown run must fit only the 4 new
points (4 x 5 x 3 = 60 inner fits) plus the 5 refits of the selects, which
all run again (a new point may win), against 8 x 15 + 5 = 125 from scratch.
The grown results equal the from-scratch ones (scores and best points).

    .venv/bin/python benchmarks/bench_reuse.py [--quick] [--n-jobs N]
"""

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.svm import SVC

import mempamal as mp
from _common import emit, header, parse_args

OLD = [0.01, 0.1, 1.0, 10.0]
NEW = [0.003, 0.03, 0.3, 3.0]


class CountedSVC(ClassifierMixin, BaseEstimator):
    """SVC appending a line to ``log`` at every fit (pickled by value: the workers run this very code)."""

    def __init__(self, C=1.0, log=None):
        self.C = C
        self.log = log

    def fit(self, X, y):
        with open(self.log, "a") as handle:
            handle.write(f"{self.C}\n")
        self.model_ = SVC(C=self.C).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)


def count(log):
    """Fits logged since the last call (the log is emptied)."""
    if not log.exists():
        return 0
    n = len(log.read_text().split())
    log.unlink()
    return n


def timed(experiment, X, y, workdir, n_jobs, **build):
    start = time.perf_counter()
    workflow = experiment.build(X, y, workdir=workdir, **build)
    built = time.perf_counter() - start
    results = workflow.run(n_jobs=n_jobs, progress=False)
    return results, workflow, built, time.perf_counter() - start


def main():
    args = parse_args(__doc__.splitlines()[0], default_repeats=1,
                      configure=lambda p: p.add_argument("--n-jobs", type=int, default=2))
    header("grow without redoing (4 -> 8 grid points, reuse=True)", args)
    n, d = (300, 10) if args.quick else (2000, 20)
    X, y = make_classification(n_samples=n, n_features=d, random_state=0)
    folder = Path(tempfile.mkdtemp(prefix="bench-reuse-"))
    log = folder / "fits.log"

    def experiment(grid):
        return mp.Experiment(CountedSVC(log=str(log)), param_grid={"C": grid}, cv=5, inner_cv=3, final_fit=False)

    try:
        _, _, _, small_seconds = timed(experiment(OLD), X, y, folder / "wd", args.n_jobs)
        small_fits = count(log)
        grown, workflow, grow_build, grow_seconds = timed(experiment(sorted(OLD + NEW)), X, y, folder / "wd",
                                                          args.n_jobs, reuse=True)
        grown_fits, status = count(log), workflow.status()
        scratch, _, _, scratch_seconds = timed(experiment(sorted(OLD + NEW)), X, y, folder / "scratch", args.n_jobs)
        scratch_fits = count(log)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    same = (np.array_equal(grown.test_scores["score"], scratch.test_scores["score"])
            and grown.best_params == scratch.best_params)
    print(f"{'run':<30}{'fits executed':>15}{'seconds':>10}")
    print(f"{'4 points (first run)':<30}{small_fits:>15}{small_seconds:>10.2f}")
    print(f"{'8 points grown, reuse=True':<30}{grown_fits:>15}{grow_seconds:>10.2f}")
    print(f"{'8 points from scratch':<30}{scratch_fits:>15}{scratch_seconds:>10.2f}")
    print(f"kept by the grown build: {status.kept} tasks, {status.reused['kept_points']} inner fits "
          f"(build {grow_build:.2f} s); selects run: {status.by_kind['select'].total}; "
          f"grown results equal the from-scratch run: {same}")
    expected = len(NEW) * 5 * 3 + 5
    print(f"target: the grown run fits only the new points and refits: {grown_fits} == {expected}: "
          f"{grown_fits == expected}")
    emit("bench_reuse", {"fits_small": small_fits, "fits_grown": grown_fits, "fits_scratch": scratch_fits,
                         "seconds_small": small_seconds, "seconds_grown": grow_seconds,
                         "seconds_scratch": scratch_seconds, "kept_points": status.reused["kept_points"],
                         "same_results": same, "target_met": grown_fits == expected and same}, args.quick)


if __name__ == "__main__":
    main()
