"""SIGKILL of a real ``mempamal run`` inside the final search (``final_fit=True``), then resume.

The run is killed with its workers (SIGKILL to its process group) once some
``fit-all`` tasks are done, then again inside ``select-all`` (while it refits
the best point on all the data); the resumed run must give scikit-learn's
``GridSearchCV(...).fit(X, y)`` model.
"""

import os
import signal
import subprocess
import sys

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

import mempamal as mp
from mempamal import store

from slow_experiment import cli, process_group_gone, start_cli, wait_until

X_iris, y_iris = load_iris(return_X_y=True)
X_NEW = np.random.RandomState(0).normal(X_iris.mean(0), X_iris.std(0), size=(30, 4))

KILL_SCRIPT = """
import os, sys, time
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
import mempamal as mp

class SlowLogistic(ClassifierMixin, BaseEstimator):
    def __init__(self, C=1.0, markers=None):
        self.C, self.markers = C, markers

    def fit(self, X, y):
        # 75 rows: an inner fit of the final search (inner_cv=2 on all 150); 150: its refit.
        if len(X) in (75, 150):
            open(os.path.join(self.markers, f"fit{len(X)}-{os.getpid()}-{time.monotonic_ns()}"), "w").close()
            time.sleep(0.4)
        self.model_ = LogisticRegression(C=self.C, max_iter=500).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)

X, y = load_iris(return_X_y=True)
exp = mp.Experiment(SlowLogistic(markers=sys.argv[2]), param_grid={"C": [0.1, 1.0, 10.0]}, cv=3, inner_cv=2)
exp.build(X, y, workdir=sys.argv[1], chunk_size=1)
"""


def test_resume_after_a_kill_inside_the_final_search_gives_the_same_model(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    script = tmp_path / "build.py"
    script.write_text(KILL_SCRIPT)
    workdir = tmp_path / "wd"
    subprocess.run([sys.executable, str(script), str(workdir), str(markers)], check=True)
    outputs = workdir / "outputs"
    seen = []
    for moment, reached in (
            ("some fit-all tasks done, select-all not", lambda: list(outputs.glob("fit-all-*/fit-all-*.json"))),
            ("inside select-all (the refit on all data)", lambda: list(markers.glob("fit150-*")))):
        process = start_cli("run", workdir, "-n", "2", "--no-progress")
        wait_until(lambda: reached() or process.poll() is not None, what=moment)
        assert process.poll() is None, f"the run ended before '{moment}'"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        wait_until(lambda: process_group_gone(process.pid), timeout=30, what="the killed workers to exit")
        assert not store.output_path(workdir, "select-all").exists(), moment
        seen.append({p.relative_to(outputs): p.stat().st_mtime_ns for p in outputs.glob("fit-all-*/fit-all-*.json")})
    assert 0 < len(seen[0]) < 6, "the first kill should land in the middle of the final search"
    done_before = seen[1]
    finished = cli("run", workdir, "-n", "2", "--no-progress")
    assert finished.returncode == 0, finished.stderr
    # Nothing finished before the kills was run again.
    assert {name: (outputs / name).stat().st_mtime_ns for name in done_before} == done_before
    res = mp.Results.load(workdir)
    reference = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.1, 1.0, 10.0]}, cv=2).fit(X_iris, y_iris)
    assert res.best_params_ == reference.best_params_
    ours = res.final_cv_results_
    assert list(ours) == list(reference.cv_results_)
    for key in ("mean_test_score", "std_test_score", "rank_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_allclose(ours[key], reference.cv_results_[key], rtol=0, atol=1e-12, err_msg=key)
    np.testing.assert_array_equal(res.best_estimator_.predict(X_NEW), reference.best_estimator_.predict(X_NEW))
    np.testing.assert_allclose(res.best_estimator_.model_.coef_, reference.best_estimator_.coef_, rtol=0, atol=1e-12)
