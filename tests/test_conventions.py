"""The conventions a scikit-learn user expects (issue 22, item 9).

- options are keyword-only, where scikit-learn's are: compared with the
  signatures of ``GridSearchCV`` and ``cross_validate`` themselves;
- ``progress`` has one default in ``run``, ``submit`` and ``Experiment.run``;
- ``n_jobs=None`` takes the ``n_jobs`` of joblib's active ``parallel_config``,
  observed in the pids of the processes that wrote the outputs.
"""

import inspect
import json
import os
import time

import pytest
from joblib import parallel_config
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import GridSearchCV, cross_validate

import mempamal as mp
from mempamal.run import Run

X, y = load_iris(return_X_y=True)
KEYWORD_ONLY = inspect.Parameter.KEYWORD_ONLY


class SlowDummy(DummyClassifier):
    """A DummyClassifier whose fit takes a while, so that every worker gets tasks."""

    def __init__(self, strategy="prior", seconds=0.3):
        super().__init__(strategy=strategy)
        self.seconds = seconds

    def fit(self, X, y, sample_weight=None):
        time.sleep(self.seconds)
        return super().fit(X, y, sample_weight=sample_weight)


def _parameters(function):
    return {name: p for name, p in inspect.signature(function).parameters.items() if name != "self"}


def _positional(function):
    return [name for name, p in _parameters(function).items()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def test_experiment_takes_keywords_after_param_grid_as_gridsearchcv():
    ours, theirs = _parameters(mp.Experiment.__init__), _parameters(GridSearchCV.__init__)
    assert _positional(mp.Experiment.__init__) == _positional(GridSearchCV.__init__) == ["estimator", "param_grid"]
    shared = set(ours) & set(theirs)
    assert {"cv", "scoring", "refit", "error_score", "return_train_score"} <= shared
    for name in shared:
        assert ours[name].kind == theirs[name].kind, name


@pytest.mark.parametrize("method", [mp.Experiment.build, mp.Experiment.run])
def test_build_and_experiment_run_take_data_as_cross_validate(method):
    ours, theirs = _parameters(method), _parameters(cross_validate)
    # cross_validate(estimator, X, y=None, *, groups=None, ...): the estimator is the Experiment.
    assert _positional(method) == ["X", "y"] and _positional(cross_validate) == ["estimator", "X", "y"]
    assert ours["y"].default is theirs["y"].default is None
    for name in set(ours) & set(theirs) - {"X", "y"}:
        assert ours[name].kind == theirs[name].kind == KEYWORD_ONLY, name
    assert all(p.kind == KEYWORD_ONLY for name, p in ours.items() if name not in ("X", "y", "options"))


@pytest.mark.parametrize("method", [mp.Workflow.run, mp.Workflow.submit, mp.Workflow.attach, Run.cancel])
def test_every_option_of_run_submit_attach_and_cancel_is_keyword_only(method):
    assert _positional(method) == []


def test_export_takes_the_path_then_keywords():
    assert _positional(mp.Workflow.export) == ["path"]


def test_a_positional_option_is_refused_by_python(tmp_path):
    experiment = mp.Experiment(DummyClassifier(), cv=2)
    with pytest.raises(TypeError, match="positional argument"):
        mp.Experiment(DummyClassifier(), None, 2)
    with pytest.raises(TypeError, match="positional argument"):
        experiment.build(X, y, None, None, tmp_path / "wd")
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    with pytest.raises(TypeError, match="positional argument"):
        workflow.run("local")
    assert workflow.status()["done"] == 0


def test_progress_has_one_default_everywhere():
    defaults = {method.__qualname__: _parameters(method)["progress"].default
                for method in (mp.Workflow.run, mp.Workflow.submit, mp.Experiment.run, mp.Workflow.attach)}
    assert set(defaults.values()) == {False}, defaults  # as scikit-learn's verbose=0


def test_n_jobs_has_one_default_everywhere():
    assert {_parameters(m)["n_jobs"].default for m in (mp.Workflow.run, mp.Workflow.submit, mp.Experiment.run)} == {None}


def _writers(workdir):
    """The pids of the processes that wrote the task outputs."""
    return {json.loads(path.read_text())["pid"] for path in (workdir / "outputs").glob("*/*.json")}


def test_n_jobs_none_takes_joblibs_parallel_config(tmp_path):
    experiment = mp.Experiment(SlowDummy(), {"strategy": ["prior", "most_frequent"]}, cv=4, inner_cv=2,
                               final_fit=False)
    with parallel_config(n_jobs=2):
        experiment.build(X, y, workdir=tmp_path / "two", chunk_size=1).run(n_jobs=None)
    two = _writers(tmp_path / "two")
    assert len(two) == 2 and os.getpid() not in two, two
    # One job: scikit-learn's n_jobs=1, which mempamal runs in the calling process.
    with parallel_config(n_jobs=1):
        experiment.build(X, y, workdir=tmp_path / "one", chunk_size=1).run()
    assert _writers(tmp_path / "one") == {os.getpid()}
    with parallel_config(backend="sequential"):
        experiment.build(X, y, workdir=tmp_path / "sequential", chunk_size=1).submit().wait()
    assert _writers(tmp_path / "sequential") == {os.getpid()}
    # Without a context None means all cores (not scikit-learn's 1): workers, not this process.
    experiment.build(X, y, workdir=tmp_path / "none", chunk_size=1).run()
    assert os.getpid() not in _writers(tmp_path / "none")
    # An explicit n_jobs wins over the context, as in scikit-learn.
    with parallel_config(n_jobs=1):
        experiment.build(X, y, workdir=tmp_path / "explicit", chunk_size=1).run(n_jobs=2)
    assert os.getpid() not in _writers(tmp_path / "explicit")
