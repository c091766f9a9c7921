"""Shared helpers of the benchmark scripts: timing, fresh workdirs, reporting.

Every case script prints a human-readable table, then one line
``BENCH-JSON {...}`` that ``run_all.py`` collects into the summary table.
"""

import argparse
import atexit
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def parse_args(description, default_repeats=5, configure=None):
    """``--quick`` (smoke run: small data, one repetition) and ``--repeats N``.

    ``configure(parser)`` adds a script's own options.
    """
    parser = argparse.ArgumentParser(description=description)
    if configure is not None:
        configure(parser)
    parser.add_argument("--quick", action="store_true", help="smoke run: small data, 1 repetition")
    parser.add_argument("--repeats", type=int, default=None, help=f"repetitions (default {default_repeats})")
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = 1 if args.quick else default_repeats
    return args


def cpu_count():
    return os.cpu_count() or 1


class Timer:
    """Collects the wall-clock times of named variants; reports medians."""

    def __init__(self):
        self.times = {}
        self.outputs = {}

    def run(self, name, function):
        start = time.perf_counter()
        output = function()
        self.times.setdefault(name, []).append(time.perf_counter() - start)
        self.outputs[name] = output
        return output

    def median(self, name):
        return statistics.median(self.times[name])

    def describe(self, name):
        values = self.times[name]
        spread = f" (min {min(values):.3f}, max {max(values):.3f})" if len(values) > 1 else ""
        return f"{statistics.median(values):8.3f} s{spread}"


def interleaved(timer, variants, repeats, warmup=True):
    """Run each variant ``repeats`` times, interleaved so drifts hit all alike.

    A warm-up round (not timed) first starts process pools and fills the OS
    file cache for every variant, as a session that runs several
    evaluations would have them.
    """
    if warmup:
        for name, function in variants.items():
            function()
    for _ in range(repeats):
        for name, function in variants.items():
            timer.run(name, function)


def grouped(timer, variants, repeats):
    """Each variant's repetitions back to back, after its own warm-up run.

    For variants that need differently configured worker pools (one pool is
    kept per session: alternating configurations would restart it each time).
    """
    for name, function in variants.items():
        function()
        for _ in range(repeats):
            timer.run(name, function)


def fresh_workdir(tag="wd"):
    return Path(tempfile.mkdtemp(prefix="mempamal-bench-")) / tag


#: One LocalBackend per set of options for the whole script: its workers stay
#: warm between rounds (a run by name would start and stop its own), as
#: joblib's reusable executor stays warm for scikit-learn's side.
_LOCAL_BACKENDS = {}


def local_backend(**options):
    """The script's LocalBackend with these options (closed at exit).

    Examples
    --------
    >>> workflow.run(backend=local_backend(), n_jobs=2)     # doctest: +SKIP
    """
    from mempamal.backends.local import LocalBackend

    key = tuple(sorted(options.items()))
    if key not in _LOCAL_BACKENDS:
        _LOCAL_BACKENDS[key] = LocalBackend(**options)
        atexit.register(_LOCAL_BACKENDS[key].close)
    return _LOCAL_BACKENDS[key]


def run_mempamal(experiment, X, y, n_jobs, chunk_size="auto", **options):
    """Build into a new workdir and run it (warm workers); the timed unit is build + run."""
    workdir = fresh_workdir()
    try:
        workflow = experiment.build(X, y, workdir=workdir, chunk_size=chunk_size)
        return workflow.run(backend=local_backend(**options), n_jobs=n_jobs, progress=False)
    finally:
        shutil.rmtree(workdir.parent, ignore_errors=True)


def same_nested_results(sk_result, mp_result):
    """Outer scores bit-for-bit equal, and the same best parameters per fold."""
    scores_equal = np.array_equal(np.asarray(sk_result["test_score"]), mp_result.test_scores["score"])
    params_equal = True
    if "estimator" in sk_result:
        for search, ours in zip(sk_result["estimator"], mp_result.best_params):
            params_equal &= repr(sorted(search.best_params_.items())) == repr(sorted(ours.items()))
    return bool(scores_equal and params_equal)


def emit(case, summary, quick=False):
    """Print the machine-readable line that run_all.py collects.

    A ``--quick`` run uses small data, where the targets do not apply.
    """
    summary = dict(case=case, quick=quick, **summary)
    print("BENCH-JSON " + json.dumps(summary), flush=True)
    return summary


def header(title, args):
    mode = "quick" if args.quick else "full"
    print(f"== {title} ({mode}, {args.repeats} repetition(s), {cpu_count()} cores, "
          f"python {sys.version.split()[0]})", flush=True)
