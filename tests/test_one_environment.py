"""One environment (issue 25, part 6): a task runs only under the library versions of its build.

The build records the versions (``manifest.json`` "environment", shown in
``experiment.json``); a task started under others refuses before unpickling
anything, naming each package and both versions, unless
``allow_version_mismatch`` is given, which its output records and
``status`` reports.  The second environments are real: a user's package
whose version changed on disk between build and task, and the oldest
supported scikit-learn's virtualenv (``tests/_oldest_venv.py``, scikit-learn
1.6.1 with its NumPy/SciPy/joblib/cloudpickle) running ``mempamal task`` on a
workdir built here.
"""

import json
import os
import platform
import subprocess
import sys

import joblib
import numpy as np
import pytest
import scipy
import sklearn
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold, cross_validate

import mempamal as mp
from mempamal import store

from _oldest_venv import ROOT, clean_environment, installed_versions, oldest_python  # noqa: F401 (fixture)
from slurm_cluster import require_slurm

X, y = load_diabetes(return_X_y=True)
X, y = X[:120], y[:120]
GRID = {"alpha": [0.1, 1.0]}


def _experiment():
    return mp.Experiment(Ridge(), param_grid=GRID, cv=KFold(3), inner_cv=KFold(2), scoring="r2")


def _output(workdir, task_id):
    return json.loads(store.output_path(workdir, task_id).read_text())


def test_build_records_the_versions_once_for_the_manifest_and_experiment_json(tmp_path):
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd")
    versions = workflow.manifest["environment"]["versions"]
    assert versions == {"python": platform.python_version(), "mempamal": mp.__version__,
                        "scikit-learn": sklearn.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                        "joblib": joblib.__version__, "cloudpickle": __import__("cloudpickle").__version__}
    assert json.loads((workflow.workdir / "experiment.json").read_text())["versions"] == versions
    mp.run_task(workflow.workdir, "fit-o0-i0-c0")
    output = _output(workflow.workdir, "fit-o0-i0-c0")
    assert output["versions"] == versions and output["host"] == platform.node()
    assert "version_mismatch_allowed" not in output
    assert workflow.status().mixed_versions == {}


PACKAGE = '''
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge

__version__ = "{version}"


class MyRidge(RegressorMixin, BaseEstimator):
    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def fit(self, X, y):
        self.model_ = Ridge(alpha=self.alpha).fit(X, y)
        return self

    def predict(self, X):
        return self.model_.predict(X)
'''


def _task(workdir, *args, pythonpath):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(pythonpath)]))
    return subprocess.run([sys.executable, "-m", "mempamal", "task", *args, str(workdir), "fit-o0-i0-c0"],
                          capture_output=True, text=True, env=env, timeout=300)


def test_the_estimators_own_package_is_recorded_and_a_task_under_another_release_refuses(tmp_path, monkeypatch):
    """A user's package, found by walking the estimator (here inside a Pipeline), released again after the build."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folder = tmp_path / "site"
    (folder / "myestimators").mkdir(parents=True)
    init = folder / "myestimators" / "__init__.py"
    init.write_text(PACKAGE.format(version="0.3"))
    monkeypatch.syspath_prepend(str(folder))
    from myestimators import MyRidge

    experiment = mp.Experiment(make_pipeline(StandardScaler(), MyRidge()), param_grid={"myridge__alpha": [0.1, 1.0]},
                               cv=KFold(3), inner_cv=KFold(2), scoring="r2")
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    assert workflow.manifest["environment"]["versions"]["myestimators"] == "0.3"
    assert workflow.manifest["environment"]["modules"] == {"myestimators": "myestimators"}
    init.write_text(PACKAGE.format(version="0.4"))  # the nodes got a newer release
    refused = _task(workflow.workdir, pythonpath=folder)
    assert refused.returncode == 1
    assert ("myestimators 0.4 here, 0.3 at build: same answer everywhere needs the same libraries; rebuild, "
            "or pass allow_version_mismatch=True") in refused.stderr, refused.stderr
    assert not store.output_path(workflow.workdir, "fit-o0-i0-c0").exists()
    allowed = _task(workflow.workdir, "--allow-version-mismatch", pythonpath=folder)
    assert allowed.returncode == 0, allowed.stderr
    output = _output(workflow.workdir, "fit-o0-i0-c0")
    assert output["versions"]["myestimators"] == "0.4"
    assert output["version_mismatch_allowed"] == {"myestimators": {"here": "0.4", "build": "0.3"}}
    assert workflow.status().mixed_versions == {"myestimators": {"build": "0.3", "outputs": {"0.4": 1}}}


def test_workflow_run_refuses_then_runs_with_the_override_and_results_ignore_the_bookkeeping(tmp_path):
    """The driver's own process under a version the build did not record: every task refuses, nothing runs."""
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd")
    manifest_path = workflow.workdir / store.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["environment"]["versions"]["scikit-learn"] = "0.0.1"  # as if built elsewhere
    store.write_json(manifest_path, manifest)
    workflow = mp.Workflow.open(workflow.workdir)
    with pytest.raises(mp.WorkflowError) as refused:
        workflow.run(n_jobs=1)
    assert f"scikit-learn {sklearn.__version__} here, 0.0.1 at build" in str(refused.value.failed)
    assert workflow.status().done == 0
    results = workflow.run(n_jobs=1, allow_version_mismatch=True)
    mixed = workflow.status().mixed_versions
    assert mixed == {"scikit-learn": {"build": "0.0.1", "outputs": {sklearn.__version__: workflow.status().total}}}
    search = GridSearchCV(Ridge(), GRID, cv=KFold(2), scoring="r2")
    expected = cross_validate(search, X, y, cv=KFold(3), scoring="r2")["test_score"]
    np.testing.assert_allclose(next(iter(results.test_scores.values())), expected, rtol=0, atol=1e-12)


def test_a_task_run_by_the_oldest_scikit_learn_on_a_workdir_built_here_refuses_then_records_the_override(
        oldest_python, tmp_path):
    there = dict(line.split("==") for line in installed_versions(oldest_python))
    assert there["scikit-learn"] != sklearn.__version__, "the second venv must hold another scikit-learn"
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd")

    def task(*flags):
        return subprocess.run([str(oldest_python), "-m", "mempamal", "task", *flags, str(workflow.workdir),
                               "fit-o0-i0-c0"], capture_output=True, text=True, env=clean_environment(),
                              cwd=tmp_path, timeout=300)

    refused = task()
    assert refused.returncode == 1
    assert f"scikit-learn {there['scikit-learn']} here, {sklearn.__version__} at build" in refused.stderr
    assert "same answer everywhere needs the same libraries; rebuild, or pass allow_version_mismatch=True" in refused.stderr
    assert f"numpy {there['numpy']} here, {np.__version__} at build" in refused.stderr
    # Refused before unpickling: scikit-learn's own unpickling warning never came.
    assert "InconsistentVersionWarning" not in refused.stderr
    assert not store.output_path(workflow.workdir, "fit-o0-i0-c0").exists()
    allowed = task("--allow-version-mismatch")
    assert allowed.returncode == 0, allowed.stderr
    output = _output(workflow.workdir, "fit-o0-i0-c0")
    assert output["versions"]["scikit-learn"] == there["scikit-learn"]
    assert output["version_mismatch_allowed"]["scikit-learn"] == {"here": there["scikit-learn"],
                                                                  "build": sklearn.__version__}
    status = workflow.status()
    assert status.mixed_versions["scikit-learn"] == {"build": sklearn.__version__,
                                                     "outputs": {there["scikit-learn"]: 1}}
    shown = subprocess.run([sys.executable, "-m", "mempamal", "status", str(workflow.workdir)], capture_output=True,
                           text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert (f"mixed versions: 1 output ran with scikit-learn {there['scikit-learn']} "
            f"(built with {sklearn.__version__})") in shown.stdout


@pytest.mark.timeout(600)
def test_slurm_jobs_on_another_environment_refuse_and_run_with_the_override(oldest_python, tmp_path):
    """``python=`` points the jobs at the second venv: a cluster whose nodes drifted from the driver."""
    require_slurm()
    workflow = mp.Experiment(Ridge(), cv=KFold(3), scoring="r2").build(X, y, workdir=tmp_path / "wd")
    options = dict(backend="slurm", python=str(oldest_python), n_jobs=2, poll_seconds=0.3)
    with pytest.raises(mp.WorkflowError) as refused:
        workflow.run(**options)
    there = dict(line.split("==") for line in installed_versions(oldest_python))["scikit-learn"]
    # A node's refusal reaches the driver (the job's stderr), naming the task and both versions.
    assert f"Task 'score-o0' of {workflow.workdir} refused to run: scikit-learn {there} here, " \
           f"{sklearn.__version__} at build" in refused.value.failed["score-o0"]
    assert workflow.status().done == 0
    workflow.run(allow_version_mismatch=True, **options)
    scripts = list((workflow.workdir / "submissions").glob("slurm-*/*.sh"))
    assert any("--allow-version-mismatch" in path.read_text() for path in scripts)
    assert "scikit-learn" in workflow.status().mixed_versions
