"""Estimate before launching: ``Workflow.estimate`` against the measured run, on three cases.

The cases are those of the other benchmarks: nested CV (bench_nested_cv.py:
Pipeline(StandardScaler, SVC), 4x4 grid, 5x3 folds), the expensive shared
prefix (bench_shared_prefix.py: StandardScaler+PCA+LogisticRegression on
wide data) and a permutation test (SVC, plain 5-fold CV, 20 permutations:
105 ``score`` tasks).  For each, on every core with the local backend
(its worker pool started before the clock, as a session that has run
anything has it):

1. a fresh workdir: ``est = wf.estimate(n_jobs)`` (timed: the sample's
   cost), then ``wf.run(n_jobs)`` (timed: the rest; the sample is not run
   again);
2. another fresh workdir of the same experiment: ``wf.run(n_jobs)`` from
   scratch, the measured run.

Printed: the predicted wall time of the whole run against the measured
run (target within +-30 %), the predicted rest against the measured rest,
the predicted CPU time, and the sample's cost as a share of the measured
run (target <= 10 %).

Measured once on the shared 2-core dev machine (load average 10-18, the
tasks getting 15-30 % of a core's time): predicted / measured wall +25 %
(36.2 / 28.8 s), +35 % (20.1 / 14.9 s), -57 % (24.6 / 57.8 s); sample 8.8 %,
10.2 %, 1.1 % of the run.  The wall time is predicted at the load the
sample saw; here it changed by 2x within a minute (a second run of the
permutation case alone: rest predicted 50.0 s, measured 58.2 s, -14 %).

    .venv/bin/python benchmarks/bench_estimate.py [--quick] [--cases nested prefix permutations]
"""

import shutil
import time

import numpy as np
from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import mempamal as mp
from _common import cpu_count, emit, fresh_workdir, header, parse_args


def nested_case(quick):
    X, y = make_classification(n_samples=500 if quick else 1500, n_features=40, n_informative=10, random_state=0)
    pipeline = Pipeline([("scale", StandardScaler()), ("svc", SVC())])
    grid = {"svc__C": np.logspace(-1, 2, 4), "svc__gamma": np.logspace(-3, 0, 4)}
    return mp.Experiment(pipeline, grid, cv=StratifiedKFold(5, shuffle=True, random_state=0),
                         inner_cv=StratifiedKFold(3, shuffle=True, random_state=1), final_fit=False), X, y


def prefix_case(quick):
    n_samples, n_features = (300, 600) if quick else (1000, 2000)
    X, y = make_classification(n_samples=n_samples, n_features=n_features, n_informative=20, random_state=0)
    pipeline = Pipeline([("scale", StandardScaler()), ("pca", PCA(random_state=0)),
                         ("logreg", LogisticRegression(max_iter=1000))])
    grid = {"pca__n_components": [10, 40], "logreg__C": np.logspace(-3, 2, 8)}
    return mp.Experiment(pipeline, grid, cv=StratifiedKFold(5, shuffle=True, random_state=0),
                         inner_cv=StratifiedKFold(3, shuffle=True, random_state=1), final_fit=False), X, y


def permutation_case(quick):
    X, y = make_classification(n_samples=500 if quick else 2000, n_features=40, n_informative=10, random_state=0)
    return mp.Experiment(SVC(C=10.0), cv=StratifiedKFold(5, shuffle=True, random_state=0), n_permutations=20,
                         random_state=0, final_fit=False), X, y


CASES = {"nested": nested_case, "prefix": prefix_case, "permutations": permutation_case}


def start_pool(n_jobs):
    """Start the local backend's workers (kept for the session) on a tiny workflow, untimed."""
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    workdir = fresh_workdir()
    try:
        mp.Experiment(LogisticRegression(), cv=2, final_fit=False).build(X, y, workdir=workdir).run(
            n_jobs=n_jobs, progress=False)
    finally:
        shutil.rmtree(workdir.parent, ignore_errors=True)


def measure(experiment, X, y, n_jobs):
    """``(estimate, sample seconds, rest seconds, full run seconds)``."""
    first, second = fresh_workdir(), fresh_workdir()
    try:
        workflow = experiment.build(X, y, workdir=first)
        start = time.perf_counter()
        estimate = workflow.estimate(n_jobs=n_jobs)
        sampled = time.perf_counter()
        workflow.run(n_jobs=n_jobs, progress=False)
        rest = time.perf_counter() - sampled
        workflow = experiment.build(X, y, workdir=second)
        start_full = time.perf_counter()
        workflow.run(n_jobs=n_jobs, progress=False)
        full = time.perf_counter() - start_full
        return estimate, sampled - start, rest, full
    finally:
        shutil.rmtree(first.parent, ignore_errors=True)
        shutil.rmtree(second.parent, ignore_errors=True)


def report(name, estimate, sample, rest, full):
    error = estimate.wall_seconds / full - 1
    rest_error = estimate.remaining_wall_seconds / rest - 1
    share = sample / full
    print(f"  {name:<13} {estimate!r}")
    print(f"  {'':<13} wall: predicted {estimate.wall_seconds:7.1f} s, measured run {full:7.1f} s "
          f"({error:+.0%}; target within +-30%)")
    print(f"  {'':<13} rest after the sample: predicted {estimate.remaining_wall_seconds:7.1f} s, "
          f"measured {rest:7.1f} s ({rest_error:+.0%})")
    print(f"  {'':<13} sample: {len(estimate.sample)} tasks, {sample:.1f} s = {share:.1%} of the measured run "
          f"(target <= 10%); predicted CPU {estimate.cpu_seconds:.1f} s, critical path "
          f"{estimate.critical_path_seconds:.1f} s, <= {estimate.peak_memory_bytes / 1e6:.0f} MB per worker")
    return {"error": error, "rest_error": rest_error, "share": share}


def main():
    args = parse_args(__doc__.splitlines()[0], default_repeats=1, configure=lambda parser: parser.add_argument(
        "--cases", nargs="+", choices=list(CASES), default=list(CASES)))
    header("Estimate before launching: predicted against measured", args)
    n_jobs = cpu_count()
    start_pool(n_jobs)
    found = {}
    for name in args.cases:
        experiment, X, y = CASES[name](args.quick)
        found[name] = report(name, *measure(experiment, X, y, n_jobs))
    ok = all(abs(result["error"]) <= 0.3 and result["share"] <= 0.1 for result in found.values())
    emit("estimate (predicted wall vs measured run)", {
        "ok": ok, "target": "wall within +-30%, sample <= 10% of the run",
        "extra": "; ".join(f"{name}: {r['error']:+.0%}, sample {r['share']:.1%}" for name, r in found.items()),
    }, quick=args.quick)


if __name__ == "__main__":
    main()
