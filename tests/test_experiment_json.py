"""``experiment.json``: every build describes its experiment for people; ``mempamal show`` prints it.

Expected values come from the live objects (``get_params``, ``sklearn.__version__``,
the data's own shape and dtype, hashlib on the stored file), never from our output.
"""

import datetime
import hashlib
import json
import os
import platform
import stat

import cloudpickle
import joblib
import numpy as np
import pytest
import scipy
import sklearn
from scipy.stats import loguniform
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import mempamal as mp
from mempamal.cli import main

X, y = load_iris(return_X_y=True)
X, y = X[::3].astype(np.float32), y[::3]  # 50 samples, float32: the dtype recorded is the data's own
GRID = {"clf__C": [0.1, 1.0, 10.0]}


def _experiment(**options):
    estimator = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=300))])
    options = {"param_grid": GRID, "cv": StratifiedKFold(3, shuffle=True, random_state=7),
               "inner_cv": KFold(2), "scoring": "accuracy", "random_state": 3, **options}
    return mp.Experiment(estimator, **options)


def _as_json(value):
    return json.loads(json.dumps(value))


@pytest.mark.filterwarnings("ignore:The groups parameter is ignored")  # plain KFold splitters, groups recorded
def test_the_build_writes_a_readable_description_of_everything(tmp_path):
    experiment = _experiment()
    groups = np.arange(len(y)) % 4
    wf = experiment.build(X, y, groups=groups, workdir=tmp_path / "wd")
    path = wf.workdir / "experiment.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    doc = json.loads(path.read_text())
    estimator = experiment.estimator
    assert doc["estimator"]["repr"] == repr(estimator)
    expected = {name: (repr(value) if hasattr(value, "get_params") else value)
                for name, value in estimator.get_params(deep=False).items()}
    expected["steps"] = [[name, repr(step)] for name, step in estimator.steps]  # estimators inside: their repr
    assert doc["estimator"]["params"] == _as_json(expected)
    assert doc["search"] == {"kind": "grid", "param_grid": GRID, "n_candidates": 3}
    outer, inner = doc["cv"]["outer"], doc["cv"]["inner"]
    assert outer["class"].endswith("StratifiedKFold") and outer["repr"] == repr(experiment.cv)
    assert outer["params"] == {"n_splits": 3, "shuffle": True, "random_state": 7} and outer["n_splits"] == 3
    assert inner["class"].endswith("KFold") and inner["n_splits"] == [2, 2, 2]
    assert (doc["scoring"], doc["refit"], doc["random_state"], doc["n_permutations"]) == ("accuracy", True, 3, 0)
    assert doc["metrics"] == experiment.metrics and np.isnan(doc["error_score"])
    for name, value in (("X", X), ("y", y), ("groups", groups)):
        entry = doc["data"][name]
        assert entry["shape"] == list(value.shape) and entry["dtype"] == str(value.dtype)
        stored = (wf.workdir / entry["file"]).read_bytes()
        assert entry["size"] == len(stored) and entry["sha256"] == hashlib.sha256(stored).hexdigest()[:32]
    assert doc["versions"] == {"python": platform.python_version(), "mempamal": mp.__version__,
                               "scikit-learn": sklearn.__version__, "numpy": np.__version__,
                               "scipy": scipy.__version__, "joblib": joblib.__version__,
                               "cloudpickle": cloudpickle.__version__}
    created = datetime.datetime.strptime(doc["created"], "%Y-%m-%dT%H:%M:%S%z")
    assert abs((datetime.datetime.now(datetime.timezone.utc) - created).total_seconds()) < 600


def test_distributions_and_plain_cv_are_described(tmp_path):
    randomized = _experiment(param_grid=None, param_distributions={"clf__C": loguniform(1e-2, 1e2)}, n_iter=4)
    doc = json.loads((randomized.build(X, y, workdir=tmp_path / "r").workdir / "experiment.json").read_text())
    assert doc["search"]["kind"] == "randomized" and doc["search"]["n_iter"] == 4
    assert doc["search"]["param_distributions"]["clf__C"].startswith(loguniform.name)
    plain = mp.Experiment(LogisticRegression(max_iter=300), cv=4)
    doc = json.loads((plain.build(X, y, workdir=tmp_path / "p").workdir / "experiment.json").read_text())
    assert doc["search"] is None and doc["cv"]["inner"] is None
    assert doc["cv"]["outer"]["params"] == {"n_splits": 4} and doc["cv"]["outer"]["n_splits"] == 4
    assert doc["estimator"]["params"] == _as_json(LogisticRegression(max_iter=300).get_params(deep=False))


def test_mempamal_show_prints_the_estimator_and_grid(tmp_path, capsys):
    experiment = _experiment()
    wf = experiment.build(X, y, workdir=tmp_path / "wd")
    assert main(["show", str(wf.workdir)]) == 0
    out = capsys.readouterr().out
    assert f"estimator: {experiment.estimator!r}" in out
    assert f"grid search: {GRID} (3 candidates)" in out
    assert f"outer cv: {experiment.cv!r} (3 folds)" in out and f"scikit-learn {sklearn.__version__}" in out
    assert main(["show", "--json", str(wf.workdir)]) == 0
    assert json.loads(capsys.readouterr().out)["search"]["param_grid"] == GRID


def test_results_name_the_estimator_and_grid(tmp_path, capsys):
    wf = _experiment(final_fit=False).build(X, y, workdir=tmp_path / "wd")
    res = wf.run(n_jobs=1, progress=False)
    line = f"experiment: {' '.join(repr(res.experiment.estimator).split())}, param_grid={GRID} (3 candidates)"
    assert line in repr(res)
    assert main(["results", str(wf.workdir)]) == 0
    assert capsys.readouterr().out.startswith(line)


def test_a_workdir_without_experiment_json_still_works_and_show_says_so(tmp_path, capsys):
    wf = _experiment(final_fit=False).build(X, y, workdir=tmp_path / "wd")
    (wf.workdir / "experiment.json").unlink()  # as built by an older mempamal
    res = mp.Workflow.open(wf.workdir).run(n_jobs=1, progress=False)
    assert len(res.test_scores["score"]) == 3
    assert main(["show", str(wf.workdir)]) == 0
    assert "no experiment.json" in capsys.readouterr().out
    assert main(["results", str(wf.workdir)]) == 0
    assert not (wf.workdir / "experiment.json").exists()  # never needed to run, never re-created by a run
