"""Case 4 - nested parallelism: BLAS threads inside tasks, limited or not.

Ridge(solver="svd") spends its time in LAPACK/BLAS, which by default starts
one thread per core in every process.  With 2 workers on 2 cores that is 4
busy threads: oversubscription.  mempamal's local backend limits each worker
to ``cores // workers`` BLAS/OpenMP threads (environment + threadpoolctl);
``limit_threads=False`` turns that off for this comparison.  scikit-learn's
``cross_validate(n_jobs=2)`` (joblib also limits its workers) is shown too.

    .venv/bin/python benchmarks/bench_nested_parallelism.py [--quick] [--repeats N]
"""

import numpy as np
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold, cross_validate

import mempamal as mp
from _common import Timer, cpu_count, emit, grouped, header, parse_args, run_mempamal


def blas_threads():
    from threadpoolctl import threadpool_info

    return sorted({(info["internal_api"], info["num_threads"]) for info in threadpool_info()
                   if info["user_api"] == "blas"})


def main():
    args = parse_args(__doc__.splitlines()[0], default_repeats=3)
    header("Case 4: nested parallelism, Ridge(solver='svd') with BLAS threads inside tasks", args)
    n_samples, n_features = (600, 300) if args.quick else (2000, 900)
    X, y = make_regression(n_samples=n_samples, n_features=n_features, noise=1.0, random_state=0)
    grid = {"alpha": [0.1, 1.0, 10.0, 100.0]}
    outer, inner = KFold(4, shuffle=True, random_state=0), KFold(3, shuffle=True, random_state=1)
    n_cores = cpu_count()
    experiment = mp.Experiment(Ridge(solver="svd"), grid, cv=outer, inner_cv=inner, final_fit=False)
    search = GridSearchCV(Ridge(solver="svd"), grid, cv=inner)
    limited = f"mempamal n_jobs={n_cores}, threads limited"
    unlimited = f"mempamal n_jobs={n_cores}, limit_threads=False"
    sklearn_name = f"sklearn cross_validate(n_jobs={n_cores})"
    variants = {
        sklearn_name: lambda: cross_validate(search, X, y, cv=outer, n_jobs=n_cores),
        limited: lambda: run_mempamal(experiment, X, y, n_jobs=n_cores),
        unlimited: lambda: run_mempamal(experiment, X, y, n_jobs=n_cores, limit_threads=False),
    }
    print(f"  BLAS libraries in this process (api, threads): {blas_threads()}")
    timer = Timer()
    grouped(timer, variants, args.repeats)
    for name in variants:
        print(f"  {name:<46} {timer.describe(name)}")
    speedup = timer.median(unlimited) / timer.median(limited)
    ratio = timer.median(limited) / timer.median(sklearn_name)
    reference = timer.outputs[sklearn_name]["test_score"]
    identical = np.array_equal(reference, timer.outputs[limited].test_scores["score"])
    unlimited_identical = np.array_equal(reference, timer.outputs[unlimited].test_scores["score"])
    print(f"  without limiting / with limiting = {speedup:.2f}x slower without  (oversubscription)")
    print(f"  ratio mempamal (limited) / sklearn = {ratio:.3f}")
    print(f"  scores identical to sklearn: limited {identical}, unlimited {unlimited_identical} "
          "(BLAS may round differently with another thread count)")
    emit(f"4 nested parallelism (Ridge svd, BLAS threads, {n_samples}x{n_features})", {
        "sklearn": timer.median(sklearn_name), "sklearn_setting": sklearn_name,
        "mempamal": timer.median(limited), "ratio": ratio, "target": "limited faster than unlimited",
        "ok": speedup > 1.0, "identical": bool(identical),
        "extra": f"unlimited {timer.median(unlimited):.2f} s ({speedup:.2f}x the limited time)",
    }, quick=args.quick)


if __name__ == "__main__":
    main()
