"""Shared helpers: scikit-learn's own answer for an Experiment, and comparisons."""

import contextlib
import os
import signal
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

#: A module defining ``SlowLogistic``: a LogisticRegression whose fit sleeps
#: ``delay`` s, to interrupt or kill runs in the middle.  Tests write it to a
#: folder that their workers (processes, engines) can import from.
SLOW_MODULE = textwrap.dedent("""
    import time
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.linear_model import LogisticRegression

    class SlowLogistic(ClassifierMixin, BaseEstimator):
        def __init__(self, C=1.0, delay=0.3):
            self.C, self.delay = C, delay
        def fit(self, X, y):
            time.sleep(self.delay)
            self.model_ = LogisticRegression(C=self.C, max_iter=300).fit(X, y)
            self.classes_ = self.model_.classes_
            return self
        def predict(self, X):
            return self.model_.predict(X)
""")


#: A LogisticRegression whose ``fit``, while ``GATE/open`` does not exist,
#: writes ``GATE/running-<pid>`` and waits: a test then knows which worker
#: process runs a task *now*, kills it mid-task, and opens the gate.
#: ``gate=None`` is plain LogisticRegression (scikit-learn's reference).
GATED_MODULE = textwrap.dedent("""
    import os
    import time
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.linear_model import LogisticRegression

    class GatedLogistic(ClassifierMixin, BaseEstimator):
        def __init__(self, C=1.0, gate=None):
            self.C, self.gate = C, gate
        def fit(self, X, y):
            if self.gate and not os.path.exists(os.path.join(self.gate, "open")):
                open(os.path.join(self.gate, f"running-{os.getpid()}"), "w").close()
                while not os.path.exists(os.path.join(self.gate, "open")):
                    time.sleep(0.02)
            self.model_ = LogisticRegression(C=self.C, max_iter=300).fit(X, y)
            self.classes_ = self.model_.classes_
            return self
        def predict(self, X):
            return self.model_.predict(X)
""")


def running_pids(gate, n=1, timeout=120):
    """The pids of the first ``n`` processes that wait in a GatedLogistic fit at ``gate``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = sorted(int(path.name.split("-")[1]) for path in Path(gate).glob("running-*"))
        if len(pids) >= n:
            return pids[:n]
        time.sleep(0.02)
    raise AssertionError(f"no {n} task(s) started waiting at {gate} in {timeout} s")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Tests never touch the user's files: HOME and config dirs are temporary."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("IPYTHONDIR", str(home / ".ipython"))
    monkeypatch.setenv("MPLBACKEND", "Agg")


def sklearn_reference(experiment, X, y, groups=None):
    """What scikit-learn itself computes for ``experiment`` (DESIGN.md §3)."""
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_validate

    if experiment.param_distributions is not None:
        estimator = RandomizedSearchCV(
            experiment.estimator, experiment.param_distributions, n_iter=experiment.n_iter,
            cv=experiment.inner_cv, scoring=experiment.scoring, refit=experiment.refit,
            error_score=experiment.error_score, random_state=experiment.random_state,
        )
        params = None if groups is None else {"groups": groups}
    elif experiment.param_grid is None:
        estimator, params = experiment.estimator, None
    else:
        estimator = GridSearchCV(
            experiment.estimator, experiment.param_grid, cv=experiment.inner_cv,
            scoring=experiment.scoring, refit=experiment.refit, error_score=experiment.error_score,
        )
        params = None if groups is None else {"groups": groups}
    return cross_validate(
        estimator, X, y, groups=groups, cv=experiment.cv, scoring=experiment.scoring,
        params=params, return_estimator=True, error_score=experiment.error_score,
    )


def assert_matches_sklearn(results, experiment, X, y, groups=None, atol=1e-12):
    """Outer scores, best params and inner cv_results_ equal scikit-learn's."""
    reference = sklearn_reference(experiment, X, y, groups)
    for metric in results.metrics:
        key = "test_score" if metric == "score" else f"test_{metric}"
        np.testing.assert_allclose(results.test_scores[metric], reference[key], rtol=0, atol=atol,
                                   err_msg=f"outer {metric}")
    if not experiment.nested:
        return reference
    for fold, search in enumerate(reference["estimator"]):
        if not hasattr(search, "best_params_"):
            continue  # this outer fold failed in sklearn too
        assert _same_params(results.best_params[fold], search.best_params_), (fold, results.best_params[fold])
        ours = results.cv_results(fold)
        for key, value in search.cv_results_.items():
            if key.startswith(("mean_test", "std_test", "rank_test", "split")):
                np.testing.assert_allclose(ours[key], value, rtol=0, atol=atol, err_msg=f"fold {fold} {key}")
        assert [repr(p) for p in ours["params"]] == [repr(p) for p in search.cv_results_["params"]]
    return reference


def _same_params(ours, theirs):
    return repr(sorted(ours.items())) == repr(sorted(theirs.items()))


def comparable(raw):
    """results.json without the timings (which legitimately differ run to run)."""
    raw = dict(raw)
    raw.pop("fit_time"), raw.pop("score_time")
    if raw.get("inner"):
        raw["inner"] = [{k: v for k, v in fold.items() if k in ("scores", "n_failed_fits")} for fold in raw["inner"]]
    if raw.get("final_fit"):
        # The final search's scores and choice; not its timings, nor the model
        # files' digests (pickles of equal models need not be equal bytes).
        raw["final_fit"] = {k: v for k, v in raw["final_fit"].items()
                            if k in ("best_index", "inner_scores", "n_failed_fits", "error")}
    raw.pop("estimators", None)
    return repr(raw)


def squeue_job_ids(name):
    """Ids of the Slurm jobs called ``name`` that ``squeue`` lists now."""
    import subprocess

    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True)
    return set(out.stdout.split())


@contextlib.contextmanager
def kept_environment():
    """Undo what a cluster started by a test writes into ``os.environ``.

    distributed's nannies put their workers' settings (``OMP_NUM_THREADS=1``,
    ...) into the parent's environment; worker pools started by later tests
    would inherit them.
    """
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# Tests that wait on a batch scheduler (Slurm jobs, dask-jobqueue workers,
# the private multi-node clusters of tests/cluster), marked so that they can
# be chosen or left out (`-m scheduler`, `-m "not scheduler"`).
SCHEDULER_WORDS = ("slurm", "jobqueue", "tests/cluster/")


# Tests that mostly wait on processes they start, kill or drive (a browser,
# JupyterLab, drivers killed mid-run, runs side by side): `make test` runs them
# in a pytest process of their own (-m processes), beside the others.
PROCESS_PATHS = ("tests/faults/", "tests/browser/", "tests/test_concurrent_runs.py")


def pytest_collection_modifyitems(config, items):
    for item in items:
        nodeid = item.nodeid.lower()
        if any(word in nodeid for word in SCHEDULER_WORDS):
            item.add_marker(pytest.mark.scheduler)
        if nodeid.startswith(PROCESS_PATHS):
            item.add_marker(pytest.mark.processes)


def pytest_configure(config):
    # A pytest started in the background by a shell (`make test &`, a CI
    # script) has SIGINT ignored, which its children inherit:
    # the drivers that tests interrupt (os.kill(driver, SIGINT), as Ctrl-C)
    # would not see it. A handler (not an ignore) is reset to the default at
    # exec, so every process the tests start gets Python's usual Ctrl-C.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
