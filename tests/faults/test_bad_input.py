"""Bad input, table-driven: each case raises the right error type, names the
argument, and writes nothing (the folder tree, current folder included, is
byte-for-byte and mtime-for-mtime unchanged).

Also the inputs that must be *accepted* as scikit-learn accepts them:
``cv=np.int64(3)`` and ``refit="accuracy"`` with ``scoring="accuracy"``.
"""

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, cross_validate

import mempamal as mp
from mempamal.cli import main as cli_main

from trust_helpers import tree_snapshot

X, Y = load_iris(return_X_y=True)
GRID = {"C": [0.1, 1.0]}


class ModifiesItsParameter(ClassifierMixin, BaseEstimator):
    """Breaks scikit-learn's clone contract: __init__ changes what it is given."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha * 2

    def fit(self, X, y):
        return self


def _lr():
    return LogisticRegression(max_iter=300)


def _exp(**kwargs):
    return mp.Experiment(kwargs.pop("estimator", _lr()), **kwargs)


def _build(new, experiment=None, **kwargs):
    args = {"X": X, "y": Y, "workdir": new}
    args.update(kwargs)
    return (experiment or _exp()).build(args.pop("X"), args.pop("y"), **args)


@dataclass
class Case:
    """One bad input: what to call, the error it must raise, the argument its message names."""

    id: str
    call: Callable  # call(new_workdir_path, built_workflow) -> None
    error: type
    names: str  # regex the message must match (always names the argument)
    built: bool = False  # needs an existing workdir (run/export cases)


CASES = [
    # ---------------------------------------------------------- Experiment()
    Case("estimator-None", lambda new, wf: _exp(estimator=None), TypeError, r"'estimator'"),
    Case("estimator-class", lambda new, wf: _exp(estimator=LogisticRegression), TypeError,
         r"'estimator'.*instance such as LogisticRegression\(\)"),
    Case("estimator-not-cloneable", lambda new, wf: _exp(estimator=ModifiesItsParameter()), TypeError,
         r"'estimator'.*cloneable.*ModifiesItsParameter"),
    Case("estimator-string", lambda new, wf: _exp(estimator="svm"), TypeError, r"'estimator'"),
    Case("param_grid-string", lambda new, wf: _exp(param_grid="C"), TypeError, r"'param_grid'"),
    Case("param_grid-empty-values", lambda new, wf: _exp(param_grid={"C": []}), ValueError, r"'param_grid'"),
    Case("param_grid-scalar-values", lambda new, wf: _exp(param_grid={"C": 1.0}), ValueError, r"'param_grid'"),
    Case("param_grid-unknown-key", lambda new, wf: _exp(param_grid={"gamma": [1]}), ValueError, r"'param_grid'.*gamma"),
    Case("cv-string", lambda new, wf: _exp(cv="abc"), ValueError, r"'cv'"),
    Case("cv-1", lambda new, wf: _exp(cv=1), ValueError, r"'cv'.*\[2, inf\)"),
    Case("cv-bool", lambda new, wf: _exp(cv=True), ValueError, r"'cv'"),
    Case("cv-float", lambda new, wf: _exp(cv=2.5), ValueError, r"'cv'"),
    Case("inner_cv-string", lambda new, wf: _exp(param_grid=GRID, inner_cv="abc"), ValueError, r"'inner_cv'"),
    Case("inner_cv-0", lambda new, wf: _exp(param_grid=GRID, inner_cv=0), ValueError, r"'inner_cv'"),
    Case("scoring-unknown", lambda new, wf: _exp(scoring="nope"), ValueError, r"'scoring'.*'nope'"),
    Case("scoring-int", lambda new, wf: _exp(scoring=3), ValueError, r"'scoring'"),
    Case("scoring-metric-function", lambda new, wf: _exp(scoring=f1_score), ValueError,
         r"'scoring'.*not the metric function f1_score.*looks like it is a metric function"),
    Case("scoring-dict-metric-function", lambda new, wf: _exp(scoring={"f1": f1_score}, refit="f1"), ValueError,
         r"'scoring' parameter of Experiment \(entry 'f1'\).*metric function"),
    Case("refit-not-a-metric", lambda new, wf: _exp(param_grid=GRID, scoring=["accuracy", "f1_macro"], refit="f1"),
         ValueError, r"'refit'.*'accuracy', 'f1_macro'"),
    Case("refit-other-metric", lambda new, wf: _exp(param_grid=GRID, scoring="accuracy", refit="roc_auc"),
         ValueError, r"'refit'.*'accuracy'"),
    Case("error_score-string", lambda new, wf: _exp(error_score="ignore"), ValueError, r"'error_score'"),
    Case("n_permutations-negative", lambda new, wf: _exp(n_permutations=-1), ValueError, r"'n_permutations'"),
    Case("n_permutations-float", lambda new, wf: _exp(n_permutations=1.5), ValueError, r"'n_permutations'"),
    Case("n_permutations-bool", lambda new, wf: _exp(n_permutations=True), ValueError, r"'n_permutations'"),
    Case("random_state-string", lambda new, wf: _exp(random_state="x"), ValueError, r"'random_state'.*'x'"),
    Case("random_state-negative", lambda new, wf: _exp(random_state=-1), ValueError, r"'random_state'"),
    Case("random_state-float", lambda new, wf: _exp(random_state=1.5), ValueError, r"'random_state'"),
    # ---------------------------------------------------------------- build()
    Case("workdir-empty", lambda new, wf: _build(""), ValueError, r"'workdir'.*non-empty"),
    Case("workdir-blank", lambda new, wf: _build("  "), ValueError, r"'workdir'"),
    Case("workdir-None", lambda new, wf: _build(None), TypeError, r"'workdir'.*None"),
    Case("workdir-int", lambda new, wf: _build(3), TypeError, r"'workdir'"),
    Case("workdir-a-file", lambda new, wf: _build(wf.workdir / "tasks.json"), FileExistsError,
         r"'workdir'.*is a file", True),
    Case("workdir-foreign-folder", lambda new, wf: _build(wf.workdir.parent), FileExistsError,
         r"'workdir'.*holds other files", True),
    Case("overwrite-string", lambda new, wf: _build(new, overwrite="yes"), TypeError, r"'overwrite'"),
    Case("chunk_size-True", lambda new, wf: _build(new, experiment=_exp(param_grid=GRID), chunk_size=True),
         ValueError, r"'chunk_size'.*True"),
    Case("chunk_size-0", lambda new, wf: _build(new, chunk_size=0), ValueError, r"'chunk_size'"),
    Case("chunk_size-string", lambda new, wf: _build(new, chunk_size="big"), ValueError, r"'chunk_size'"),
    Case("X-None", lambda new, wf: _build(new, X=None), ValueError, r"'X'"),
    Case("X-string", lambda new, wf: _build(new, X="abc"), TypeError, r"'X'.*'abc'"),
    Case("X-scalar", lambda new, wf: _build(new, X=5.0), TypeError, r"'X'"),
    Case("X-no-samples", lambda new, wf: _build(new, X=np.empty((0, 4)), y=np.empty(0)), ValueError,
         r"'X'.*at least one sample"),
    Case("y-None", lambda new, wf: _build(new, y=None), ValueError, r"'y'"),
    Case("y-scalar", lambda new, wf: _build(new, y=3), TypeError, r"'y'.*3"),
    Case("y-numpy-scalar", lambda new, wf: _build(new, y=np.float64(1.0)), TypeError, r"'y'"),
    Case("y-wrong-length", lambda new, wf: _build(new, y=Y[:-1]), ValueError, r"'X' and 'y'.*150.*149"),
    Case("groups-wrong-length", lambda new, wf: _build(new, groups=np.arange(10)), ValueError, r"'groups'"),
    Case("groups-string", lambda new, wf: _build(new, groups="abc"), TypeError, r"'groups'"),
    Case("cv-group-splitter-without-groups", lambda new, wf: _build(new, experiment=_exp(cv=GroupKFold(3))),
         ValueError, r"'cv'"),
    Case("cv-index-out-of-range", lambda new, wf: _build(new, experiment=_exp(
        cv=[(np.arange(100), np.arange(100, 151))])), ValueError, r"'cv'.*out of range.*\[0, 150\).*max 150"),
    Case("cv-negative-index", lambda new, wf: _build(new, experiment=_exp(
        cv=[(np.arange(-1, 99), np.arange(100, 150))])), ValueError, r"'cv'.*out of range"),
    Case("cv-float-indices", lambda new, wf: _build(new, experiment=_exp(
        cv=[(np.arange(100) * 1.0, np.arange(100, 150) * 1.0)])), ValueError, r"'cv'.*integer indices"),
    Case("cv-short-mask", lambda new, wf: _build(new, experiment=_exp(
        cv=[(np.ones(10, bool), np.zeros(10, bool))])), ValueError, r"'cv'.*boolean mask"),
    Case("cv-out-of-range-with-overwrite-keeps-the-old-workdir", lambda new, wf: _build(
        wf.workdir, experiment=_exp(cv=[(np.arange(100), np.arange(100, 151))]), overwrite=True),
        ValueError, r"'cv'.*out of range", True),
    Case("cv-no-splits", lambda new, wf: _build(new, experiment=_exp(cv=[])), ValueError, r"'cv'.*no splits"),
    Case("inner_cv-index-out-of-range", lambda new, wf: _build(new, experiment=_exp(
        param_grid=GRID, cv=3, inner_cv=[(np.arange(50), np.arange(50, 140))])),
        ValueError, r"'inner_cv'.*out of range.*\[0, 100\)"),
    # ------------------------------------------------------------------ run()
    Case("n_jobs-0", lambda new, wf: wf.run(n_jobs=0, progress=False), ValueError, r"'n_jobs'.*0", True),
    Case("n_jobs-string", lambda new, wf: wf.run(n_jobs="all", progress=False), ValueError, r"'n_jobs'", True),
    Case("n_jobs-bool", lambda new, wf: wf.run(n_jobs=True, progress=False), ValueError, r"'n_jobs'", True),
    Case("n_jobs-0-soma-workflow", lambda new, wf: wf.run(backend="soma-workflow", n_jobs=0, progress=False),
         ValueError, r"'n_jobs'", True),
    Case("backend-unknown", lambda new, wf: wf.run(backend="nope", progress=False), ValueError,
         r"'backend'.*'local'", True),
    Case("backend-int", lambda new, wf: wf.run(backend=3, progress=False), ValueError, r"'backend'", True),
    Case("backend-unknown-option", lambda new, wf: wf.run(n_jobs=1, progress=False, turbo=True), TypeError,
         r"unexpected keyword argument 'turbo'", True),
    # ---------------------------------------------------------------- export()
    Case("export-format", lambda new, wf: wf.export(new.parent / "x", format="yaml"), ValueError,
         r"'format'.*'makefile'", True),
    Case("export-format-None", lambda new, wf: wf.export(new.parent / "x", format=None), ValueError,
         r"'format'", True),
    Case("export-path-missing-folder", lambda new, wf: wf.export(new.parent / "no" / "x.json"), ValueError,
         r"'path'.*existing folder", True),
    Case("export-path-a-folder", lambda new, wf: wf.export(wf.workdir), ValueError, r"'path'.*not a folder", True),
    Case("export-path-None", lambda new, wf: wf.export(None), TypeError, r"'path'", True),
    Case("export-unknown-option", lambda new, wf: wf.export(new.parent / "x", format="shell", colour=1), TypeError,
         r"'colour'", True),
    Case("export-makefile-newline-workdir", lambda new, wf: wf.export(
        new.parent / "Makefile", format="makefile", workdir="/shared/a\nb"), ValueError, r"'workdir' path", True),
]

# Command line: (id, argv with {wd} for a built workdir and {new} for a fresh path, exit code, stderr regex)
CLI_CASES = [
    ("cli-run-n-0", ["run", "{wd}", "-n", "0", "--no-progress"], 1, r"'n_jobs'"),
    ("cli-run-n-not-int", ["run", "{wd}", "-n", "many"], 2, r"-n/--n-jobs.*invalid int value: 'many'"),
    # A usage error: the parser's choices (exit 2, the usage block), as for -f below.
    ("cli-run-backend", ["run", "{wd}", "-b", "nope", "--no-progress"], 2, r"-b/--backend.*invalid choice: 'nope'"),
    ("cli-run-not-a-workdir", ["run", "{new}"], 1, r"not a mempamal workdir"),
    ("cli-status-not-a-workdir", ["status", "{new}"], 1, r"not a mempamal workdir"),
    ("cli-task-unknown-id", ["task", "{wd}", "no-such-task"], 1, r"No task 'no-such-task'"),
    ("cli-task-missing-id", ["task", "{wd}"], 2, r"required: TASK_ID"),
    ("cli-export-format", ["export", "{wd}", "-f", "yaml", "-o", "{new}"], 2, r"--format.*invalid choice: 'yaml'"),
    ("cli-export-no-output", ["export", "{wd}", "-f", "shell"], 2, r"-o/--output"),
    ("cli-export-missing-folder", ["export", "{wd}", "-f", "shell", "-o", "{new}/x/run.sh"], 1, r"'path'.*existing folder"),
    ("cli-results-unfinished", ["results", "{wd}"], 1, r"no results yet"),
    ("cli-unknown-command", ["frobnicate"], 2, r"unknown command 'frobnicate'"),
]


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A folder that is also the current one (so workdir='' would land here)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _built(sandbox):
    return _exp(cv=3).build(X, Y, workdir=sandbox / "built")


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_names_the_argument_and_writes_nothing(sandbox, case):
    workflow = _built(sandbox) if case.built else None
    new = sandbox / "new"
    before = tree_snapshot(sandbox)
    with pytest.raises(case.error) as raised:
        case.call(new, workflow)
    assert re.search(case.names, str(raised.value), flags=re.S), str(raised.value)
    assert not new.exists()
    assert tree_snapshot(sandbox) == before, "something was written"


@pytest.mark.parametrize("argv,code,names", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_command_line_exits_with_a_message_naming_the_argument_and_writes_nothing(sandbox, capsys, argv,
                                                                                         code, names):
    workflow = _built(sandbox)
    new = sandbox / "new"
    argv = [arg.format(wd=workflow.workdir, new=new) for arg in argv]
    before = tree_snapshot(sandbox)
    try:
        returned = cli_main(argv)
    except SystemExit as exc:  # argparse's usage errors
        returned = exc.code
    stderr = capsys.readouterr().err
    assert returned == code, stderr
    assert re.search(names, stderr, flags=re.S), stderr
    assert "Traceback" not in stderr
    assert tree_snapshot(sandbox) == before, "something was written"


def test_the_table_has_at_least_40_cases():
    assert len(CASES) + len(CLI_CASES) >= 40


# ---------------------------------------------------- accepted like sklearn
def test_numpy_integer_cv_works_as_that_many_folds_like_check_cv(tmp_path):
    experiment = mp.Experiment(_lr(), param_grid=GRID, cv=np.int64(3), inner_cv=np.int32(2))
    results = experiment.run(X, Y, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    reference = cross_validate(GridSearchCV(_lr(), GRID, cv=2), X, Y, cv=3, return_estimator=True)
    np.testing.assert_allclose(results.test_scores["score"], reference["test_score"], rtol=0, atol=1e-12)
    assert results.best_params == [search.best_params_ for search in reference["estimator"]]


def test_refit_naming_the_single_scoring_metric_is_accepted_like_gridsearchcv(tmp_path):
    experiment = mp.Experiment(_lr(), param_grid=GRID, cv=KFold(3, shuffle=True, random_state=0), inner_cv=2,
                               scoring="balanced_accuracy", refit="balanced_accuracy")
    results = experiment.run(X, Y, workdir=tmp_path / "wd", n_jobs=1, progress=False)
    search = GridSearchCV(_lr(), GRID, cv=2, scoring="balanced_accuracy", refit="balanced_accuracy")
    reference = cross_validate(search, X, Y, cv=KFold(3, shuffle=True, random_state=0),
                               scoring="balanced_accuracy", return_estimator=True)
    np.testing.assert_allclose(results.test_scores["score"], reference["test_score"], rtol=0, atol=1e-12)
    assert results.best_params == [s.best_params_ for s in reference["estimator"]]


def test_random_state_accepts_what_sklearn_accepts(tmp_path):
    for random_state in (None, 0, np.int64(7), 2**32 - 1, np.random.RandomState(0)):
        mp.Experiment(_lr(), n_permutations=1, random_state=random_state)
