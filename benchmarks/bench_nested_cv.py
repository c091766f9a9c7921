"""Case 1 - nested CV: Pipeline(StandardScaler, SVC), 4x4 grid, 5x3 folds.

scikit-learn's way is ``cross_validate(GridSearchCV(...))`` with n_jobs on
the inner search, on the outer loop, or neither; the best is the reference.
mempamal runs the same evaluation (build + run, fresh workdir each time) on
the local backend with every core, and on one worker for the parallel
efficiency ``T(1 worker) / (n_workers * T(n_workers))``.  Neither side
returns the fitted estimators in the timed runs (``return_estimator`` off,
``final_fit=False``): both compute exactly the outer scores and each fold's
best parameters, which an untimed run checks are identical.

The variants are interleaved (one round runs each once, in turn) over
``--repeats`` rounds (default 5) after an untimed warm-up round, so that the
machine's drifts hit every variant alike; the median and the spread
(min-max) are printed.

Then a breakdown of mempamal's time at n_jobs=2 (``--no-breakdown`` skips
it): the build; each task timed alone, in-process (its serial cost, the
same work as scikit-learn's fits); the lower bound of a 2-worker run on that
graph, ``max(critical path, serial work / workers)``; and what remains,
dispatch and process overhead plus the contention of two busy workers.

    .venv/bin/python benchmarks/bench_nested_cv.py [--quick] [--repeats N]
"""

import statistics

import numpy as np
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import mempamal as mp
from _breakdown import breakdown
from _common import Timer, cpu_count, emit, header, interleaved, parse_args, run_mempamal, same_nested_results


def main():
    args = parse_args(__doc__.splitlines()[0], default_repeats=5, configure=lambda parser: parser.add_argument(
        "--no-breakdown", action="store_true", help="skip the breakdown of mempamal's time"))
    header("Case 1: nested CV, Pipeline(StandardScaler, SVC), grid 4x4, outer 5 x inner 3", args)
    n_samples = 500 if args.quick else 1500
    X, y = make_classification(n_samples=n_samples, n_features=40, n_informative=10, random_state=0)
    pipeline = Pipeline([("scale", StandardScaler()), ("svc", SVC())])
    grid = {"svc__C": np.logspace(-1, 2, 4), "svc__gamma": np.logspace(-3, 0, 4)}
    outer = StratifiedKFold(5, shuffle=True, random_state=0)
    inner = StratifiedKFold(3, shuffle=True, random_state=1)
    n_cores = cpu_count()

    def sklearn_way(inner_jobs, outer_jobs, return_estimator=False):
        search = GridSearchCV(pipeline, grid, cv=inner, n_jobs=inner_jobs)
        return lambda: cross_validate(search, X, y, cv=outer, n_jobs=outer_jobs, return_estimator=return_estimator)

    experiment = mp.Experiment(pipeline, grid, cv=outer, inner_cv=inner, final_fit=False)
    sklearn_variants = {
        "sklearn serial": sklearn_way(None, None),
        f"sklearn GridSearchCV(n_jobs={n_cores})": sklearn_way(n_cores, None),
        f"sklearn cross_validate(n_jobs={n_cores})": sklearn_way(None, n_cores),
    }
    mempamal_name = f"mempamal local n_jobs={n_cores}"
    mempamal_variants = {
        mempamal_name: lambda: run_mempamal(experiment, X, y, n_jobs=n_cores),
        "mempamal local n_jobs=1": lambda: run_mempamal(experiment, X, y, n_jobs=1),
    }
    timer = Timer()
    interleaved(timer, {**sklearn_variants, **mempamal_variants}, args.repeats)

    for name in [*sklearn_variants, *mempamal_variants]:
        print(f"  {name:<42} {timer.describe(name)}")
    best_sklearn = min(sklearn_variants, key=timer.median)
    ratios = [ours / theirs for ours, theirs in zip(timer.times[mempamal_name], timer.times[best_sklearn])]
    ratio = timer.median(mempamal_name) / timer.median(best_sklearn)
    efficiency = timer.median("mempamal local n_jobs=1") / (n_cores * timer.median(mempamal_name))
    # Exactness, untimed: the outer scores and each fold's best parameters.
    reference = sklearn_way(None, None, return_estimator=True)()
    identical = all(same_nested_results(reference, timer.outputs[name]) for name in mempamal_variants) and all(
        np.array_equal(reference["test_score"], timer.outputs[name]["test_score"]) for name in sklearn_variants)
    print(f"  best scikit-learn: {best_sklearn}")
    print(f"  ratio mempamal / best sklearn = {ratio:.3f} (ratio of medians); per round "
          f"median {statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}  (target <= 0.95)")
    print(f"  parallel efficiency on {n_cores} workers = {efficiency:.1%}  (target >= 90%)")
    print(f"  scores and best params identical: {identical}")
    if not args.no_breakdown:
        breakdown(experiment, X, y, n_cores, timer.median(mempamal_name), 1 if args.quick else 3, profile=True)
    emit(f"1 nested CV (SVC, 4x4 grid, 5x3 folds, {n_samples}x40)", {
        "sklearn": timer.median(best_sklearn), "sklearn_setting": best_sklearn,
        "mempamal": timer.median(mempamal_name), "ratio": ratio, "target": "<= 0.95",
        "ok": ratio <= 0.95 and efficiency >= 0.9, "identical": identical,
        "extra": f"per-round ratio {min(ratios):.2f}-{max(ratios):.2f}; efficiency {efficiency:.0%} "
                 f"(target >= 90%)",
    }, quick=args.quick)


if __name__ == "__main__":
    main()
