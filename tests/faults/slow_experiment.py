"""A small, slow experiment for fault tests, built and checked in real subprocesses.

The estimator is defined in the script's ``__main__`` (so it travels by
cloudpickle, as a notebook class does) and leaves marker files that tell the
test where a run is: ``refit-<pid>-<n>`` when a ``select`` task refits on an
outer training set (100 samples of iris with cv=3), ``load-<pid>-<n>`` when a
process unpickles the experiment (a worker loading the workdir); while the
file ``hold`` exists in the markers folder, every fit waits (a test keeps a
run going for as long as it needs).
"""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

TESTS_DIR = str(Path(__file__).resolve().parents[1])


def _shared_helpers():
    """tests/conftest.py under a name of its own: another conftest.py in this
    folder would otherwise shadow ``import conftest``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mempamal_shared_test_helpers", Path(TESTS_DIR) / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = _shared_helpers()
assert_matches_sklearn, comparable = _helpers.assert_matches_sklearn, _helpers.comparable

SCRIPT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    import mempamal as mp

    class SlowLogistic(ClassifierMixin, BaseEstimator):
        def __init__(self, C=1.0, delay=0.0, load_delay=0.0, markers=None):
            self.C, self.delay, self.load_delay, self.markers = C, delay, load_delay, markers

        def _mark(self, kind):
            if self.markers and os.path.isdir(self.markers):
                name = f"{kind}-{os.getpid()}-{time.monotonic_ns()}"
                open(os.path.join(self.markers, name), "w").close()

        def __setstate__(self, state):
            super().__setstate__(state)
            self._mark("load")
            time.sleep(self.load_delay)

        def fit(self, X, y):
            # A test holds every fit while the file "hold" exists.
            while self.markers and os.path.exists(os.path.join(self.markers, "hold")):
                time.sleep(0.02)
            if len(X) == 100:
                self._mark("refit")
                time.sleep(0.3)  # a select task lasts long enough to be killed inside it
            time.sleep(self.delay)
            self.model_ = LogisticRegression(C=self.C, max_iter=500).fit(X, y)
            self.classes_ = self.model_.classes_
            return self

        def predict(self, X):
            return self.model_.predict(X)

    X, y = load_iris(return_X_y=True)
    exp = mp.Experiment(SlowLogistic(delay=DELAY, load_delay=LOAD_DELAY, markers=MARKERS),
                        param_grid={"C": [0.1, 1.0, 10.0]}, cv=3, inner_cv=2,
                        n_permutations=1, random_state=0, final_fit=False)  # final search: test_final_model_kill
    command, workdir = sys.argv[1], sys.argv[2]
    if command == "build":
        exp.build(X, y, workdir=workdir, chunk_size=1)
    elif command == "run":
        exp.build(X, y, workdir=workdir, chunk_size=1).run(n_jobs=2, progress=False)
    elif command == "check":
        sys.path.insert(0, sys.argv[3])
        from conftest import assert_matches_sklearn
        results = mp.Results.load(workdir)
        exp.estimator.set_params(delay=0.0, load_delay=0.0)  # same scores, faster reference
        assert_matches_sklearn(results, exp, X, y)
        from sklearn.model_selection import permutation_test_score
        from sklearn.model_selection import GridSearchCV
        search = GridSearchCV(exp.estimator, exp.param_grid, cv=exp.inner_cv)
        score, perms, pvalue = permutation_test_score(search, X, y, cv=exp.cv, n_permutations=1, random_state=0)
        assert score == results.score and list(perms) == list(results.permutation_scores), (score, perms)
        assert pvalue == results.pvalue
        print("MATCH")
        if len(sys.argv) > 4:  # and an uninterrupted run, in this process, gives the same file
            import json
            from conftest import comparable
            exp.build(X, y, workdir=sys.argv[4], chunk_size=1).run(n_jobs=1, progress=False)
            same = [comparable(json.load(open(f"{folder}/results.json"))) for folder in (workdir, sys.argv[4])]
            print("SAME" if same[0] == same[1] else "DIFFERENT")
""")


#: Rebuilds a workdir with another experiment (overwrite=True), from its own process.
REBUILD_OTHER_GRID = textwrap.dedent("""
    import sys
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    import mempamal as mp
    X, y = load_iris(return_X_y=True)
    mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [5.0]}, cv=3, inner_cv=2).build(
        X, y, workdir=sys.argv[1], overwrite=True)
""")


def write_script(folder, delay=0.1, load_delay=0.0, markers=None):
    """Write the experiment script; returns its path."""
    text = (SCRIPT.replace("DELAY", repr(delay), 1).replace("LOAD_DELAY", repr(load_delay), 1)
            .replace("MARKERS", repr(None if markers is None else str(markers)), 1))
    path = Path(folder) / f"slow_experiment_{delay}_{load_delay}.py"
    path.write_text(text)
    return path


def script(path, command, workdir, *extra, **kwargs):
    """Run the script (``build``, ``run`` or ``check [REFERENCE_WORKDIR]``) to completion."""
    return subprocess.run([sys.executable, str(path), command, str(workdir), TESTS_DIR, *map(str, extra)],
                          capture_output=True, text=True, timeout=300, **kwargs)


def cli(*args, **kwargs):
    """``python -m mempamal ARGS`` to completion."""
    return subprocess.run([sys.executable, "-m", "mempamal", *map(str, args)],
                          capture_output=True, text=True, timeout=300, **kwargs)


def start_cli(*args):
    """``python -m mempamal ARGS`` in its own process group (to kill it with its workers)."""
    return subprocess.Popen([sys.executable, "-m", "mempamal", *map(str, args)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(condition, timeout=120.0, interval=0.02, what="condition"):
    """Poll ``condition()`` until true (the machine is loaded: generous timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def output_files(workdir):
    folder = Path(workdir) / "outputs"
    return sorted(folder.glob("*/*.json")) if folder.exists() else []


def fingerprints_of_outputs(workdir):
    """``{name: (mtime_ns, pid, start)}``: who wrote each output, and when."""
    found = {}
    for path in output_files(workdir):
        output = json.loads(path.read_text())
        found[path.name] = (path.stat().st_mtime_ns, output["pid"], output["start"])
    return found


def process_group_gone(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False
