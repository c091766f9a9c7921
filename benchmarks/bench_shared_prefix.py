"""Case 2 - expensive shared prefix: Pipeline(StandardScaler, PCA, LogisticRegression).

Wide data (1000 x 2000), grid PCA n_components (2 values) x C (8 values),
outer 5 x inner 3 folds.  GridSearchCV refits the scaler and the PCA for
every one of the 16 points; ``Pipeline(memory=...)`` caches them on disk;
mempamal keeps the 8 points sharing a PCA in one task, fits it once and
transforms the inner test split through it once (DESIGN.md section 4;
engine/shared_transforms.py).  scikit-learn runs with n_jobs on the outer loop or
the inner search (the best of each is reported), mempamal on every core.

Then (``--no-breakdown`` skips it) where mempamal's time goes: each task run
alone with one BLAS thread as in a worker, the bound on the workers, the
serial work against scikit-learn's own serial run, and a profile of one
serial pass split into the prefix fits, the final-step fits, the scoring,
the select tasks and the rest (benchmarks/_breakdown.py).

    .venv/bin/python benchmarks/bench_shared_prefix.py [--quick] [--repeats N] [--no-breakdown]
"""

import shutil
import tempfile

import numpy as np
from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import mempamal as mp
from _breakdown import breakdown
from _common import Timer, cpu_count, emit, header, interleaved, parse_args, run_mempamal, same_nested_results


def make_pipeline(memory=None):
    # A seeded PCA: the randomized solver is then deterministic, as it must
    # be for bit-for-bit comparisons.
    return Pipeline([("scale", StandardScaler()), ("pca", PCA(random_state=0)),
                     ("logreg", LogisticRegression(max_iter=1000))], memory=memory)


def least_work(X, y, grid, outer, inner):
    """The scikit-learn calls an exact evaluation of this grid cannot avoid, made directly.

    Per outer fold and inner split, for each PCA size: the scaler and the
    PCA fitted once on the inner training rows and the inner test rows
    transformed once; for each C, the LogisticRegression fit and its score
    on the transformed test rows.  Then the best point (highest mean inner
    score, first on ties, as GridSearchCV) refitted as a whole pipeline on
    the outer training rows and scored on the outer test rows.  No task,
    file or bookkeeping: a floor for mempamal's serial work on this case.
    """
    from sklearn.base import clone

    sizes, costs = grid["pca__n_components"], grid["logreg__C"]
    for outer_train, outer_test in outer.split(X, y):
        X_outer, y_outer = X[outer_train], y[outer_train]
        scores = np.zeros((len(sizes), len(costs)))
        for train, test in inner.split(X_outer, y_outer):
            for i, size in enumerate(sizes):
                prefix = make_pipeline()[:-1].set_params(pca__n_components=size)
                Z_train = prefix.fit_transform(X_outer[train], y_outer[train])
                Z_test = prefix.transform(X_outer[test])
                for j, C in enumerate(costs):
                    final = clone(make_pipeline()[-1]).set_params(C=C).fit(Z_train, y_outer[train])
                    scores[i, j] += final.score(Z_test, y_outer[test])
        i, j = np.unravel_index(np.argmax(scores), scores.shape)
        best = make_pipeline().set_params(pca__n_components=sizes[i], logreg__C=costs[j])
        best.fit(X_outer, y_outer).score(X[outer_test], y[outer_test])


def main():
    args = parse_args(__doc__.splitlines()[0], default_repeats=3, configure=lambda parser: parser.add_argument(
        "--no-breakdown", action="store_true", help="skip the breakdown and profile of mempamal's time"))
    header("Case 2: shared prefix, Pipeline(StandardScaler, PCA, LogisticRegression), 1000x2000", args)
    n_samples, n_features = (300, 600) if args.quick else (1000, 2000)
    X, y = make_classification(n_samples=n_samples, n_features=n_features, n_informative=20, random_state=0)
    grid = {"pca__n_components": [10, 40], "logreg__C": np.logspace(-3, 2, 8)}
    outer = StratifiedKFold(5, shuffle=True, random_state=0)
    inner = StratifiedKFold(3, shuffle=True, random_state=1)
    n_cores = cpu_count()

    def sklearn_way(inner_jobs, outer_jobs, cached, return_estimator=False):
        # return_estimator off in the timed runs, as mempamal's side keeps
        # no fitted search either (final_fit=False); one untimed run with
        # it checks the best parameters.
        def evaluate():
            folder = tempfile.mkdtemp(prefix="sklearn-memory-") if cached else None
            try:
                search = GridSearchCV(make_pipeline(memory=folder), grid, cv=inner, n_jobs=inner_jobs)
                return cross_validate(search, X, y, cv=outer, n_jobs=outer_jobs, return_estimator=return_estimator)
            finally:
                if folder:
                    shutil.rmtree(folder, ignore_errors=True)
        return evaluate

    plain = {f"sklearn cross_validate(n_jobs={n_cores})": sklearn_way(None, n_cores, False),
             f"sklearn GridSearchCV(n_jobs={n_cores})": sklearn_way(n_cores, None, False)}
    cached = {f"sklearn memory= cross_validate(n_jobs={n_cores})": sklearn_way(None, n_cores, True),
              f"sklearn memory= GridSearchCV(n_jobs={n_cores})": sklearn_way(n_cores, None, True)}
    experiment = mp.Experiment(make_pipeline(), grid, cv=outer, inner_cv=inner, final_fit=False)
    mempamal_name = f"mempamal local n_jobs={n_cores}"
    timer = Timer()
    interleaved(timer, {**plain, **cached,
                        mempamal_name: lambda: run_mempamal(experiment, X, y, n_jobs=n_cores)}, args.repeats)

    for name in [*plain, *cached, mempamal_name]:
        print(f"  {name:<48} {timer.describe(name)}")
    best_plain = min(plain, key=timer.median)
    best_cached = min(cached, key=timer.median)
    ratio = timer.median(mempamal_name) / timer.median(best_plain)
    ratio_cached = timer.median(mempamal_name) / timer.median(best_cached)
    reference = sklearn_way(None, n_cores, False, return_estimator=True)()
    identical = same_nested_results(reference, timer.outputs[mempamal_name]) and all(
        np.array_equal(reference["test_score"], timer.outputs[name]["test_score"]) for name in [*plain, *cached])
    print(f"  ratio mempamal / best sklearn without memory = {ratio:.3f}  (target <= 0.3)")
    print(f"  ratio mempamal / best sklearn with memory=   = {ratio_cached:.3f}  (target < 1)")
    print(f"  scores and best params identical: {identical}")
    if not args.no_breakdown:
        parts = breakdown(experiment, X, y, n_cores, timer.median(mempamal_name), 1 if args.quick else 3,
                          profile=True, reference=sklearn_way(None, None, False))
        with threadpool_limits(limits=max(1, cpu_count() // n_cores)):
            floor = Timer()
            for _ in range(1 if args.quick else 3):
                floor.run("least", lambda: least_work(X, y, grid, outer, inner))
        print(f"    the least work (scikit-learn's unavoidable calls alone, {floor.describe('least').strip()}) "
              f"= {floor.median('least') / parts['reference']:.3f} of scikit-learn's serial run: "
              f"the floor of the ratio with no overhead at all")
    emit(f"2 shared prefix (StandardScaler+PCA+LogReg, {n_samples}x{n_features})", {
        "sklearn": timer.median(best_plain), "sklearn_setting": best_plain,
        "mempamal": timer.median(mempamal_name), "ratio": ratio, "target": "<= 0.3",
        "ok": ratio <= 0.3 and ratio_cached < 1, "identical": identical,
        "extra": f"vs memory= ({best_cached}, {timer.median(best_cached):.2f} s): {ratio_cached:.2f}",
    }, quick=args.quick)


if __name__ == "__main__":
    main()
