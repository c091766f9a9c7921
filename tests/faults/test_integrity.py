"""Wrong results that look right (issue 10, items 1-7): each is exact or a clear error."""

import json
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, ShuffleSplit, cross_validate

import mempamal as mp
from mempamal import store

from slow_experiment import (
    REBUILD_OTHER_GRID, assert_matches_sklearn, cli, comparable, output_files, script, wait_until, write_script,
)


def _small_experiment(**kwargs):
    settings = dict(param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2)
    settings.update(kwargs)
    return mp.Experiment(LogisticRegression(max_iter=300), **settings)


# ------------------------------------------------------ stamps (items 1, 2, 4)
def test_output_of_an_old_build_landing_after_a_rebuild_is_not_trusted(tmp_path):
    """The issue's scenario: a task of build A finishes after build B replaced it."""
    markers = tmp_path / "markers"
    markers.mkdir()
    path = write_script(tmp_path, delay=0.0, markers=markers)
    workdir = tmp_path / "wd"
    assert script(path, "build", workdir).returncode == 0
    (markers / "hold").touch()  # the task waits inside its fit until the rebuild is done
    straggler = subprocess.Popen([sys.executable, "-m", "mempamal", "task", str(workdir), "fit-o0-i0-c0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: list(markers.glob("load-*")), what="the task to load build A")
    (tmp_path / "rebuild.py").write_text(REBUILD_OTHER_GRID)
    rebuilt = subprocess.run([sys.executable, str(tmp_path / "rebuild.py"), str(workdir)],
                             capture_output=True, text=True)
    assert rebuilt.returncode == 0, rebuilt.stderr  # a single task does not hold the runner lock
    (markers / "hold").unlink()
    assert straggler.wait(timeout=120) == 0, straggler.stderr.read()
    planted = store.output_path(workdir, "fit-o0-i0-c0")
    assert planted.exists(), "the old task should have written its output into the new build"

    workflow = mp.Workflow.open(workdir)
    status = workflow.status()
    assert status["done"] == 0
    assert "written by another build" in status["untrusted"]["fit-o0-i0-c0"]
    assert str(planted) in status["untrusted"]["fit-o0-i0-c0"]
    assert "not counted" in cli("status", workdir).stdout
    with pytest.warns(UserWarning, match="Not trusting .*fit-o0-i0-c0.json"):
        results = workflow.run(n_jobs=1, progress=False)
    X, y = load_iris(return_X_y=True)
    rebuilt_experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [5.0]}, cv=3, inner_cv=2)
    assert_matches_sklearn(results, rebuilt_experiment, X, y)


def test_output_copied_from_another_task_is_not_trusted_and_is_run_again(tmp_path):
    X, y = load_iris(return_X_y=True)
    workflow = _small_experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    for task_id in ("fit-o0-i0-c0", "fit-o0-i1-c0"):
        mp.run_task(workflow.workdir, task_id)
    outputs = workflow.workdir / "outputs"
    shutil.copy(store.output_path(workflow.workdir, "fit-o0-i0-c0"), store.output_path(workflow.workdir, "fit-o0-i1-c0"))
    status = workflow.status()
    assert status["done"] == 1
    assert "is the output of task 'fit-o0-i0-c0', not of 'fit-o0-i1-c0'" in status["untrusted"]["fit-o0-i1-c0"]
    with pytest.warns(UserWarning, match="fit-o0-i1-c0.json"):
        results = workflow.run(n_jobs=1, progress=False)
    assert_matches_sklearn(results, _small_experiment(), X, y)


def test_dependency_output_of_another_build_makes_the_task_fail_naming_the_file(tmp_path):
    X, y = load_iris(return_X_y=True)
    first = _small_experiment().build(X, y, workdir=tmp_path / "a", chunk_size=2)
    second = _small_experiment().build(X, y, workdir=tmp_path / "b", chunk_size=2)
    first.run(n_jobs=1, progress=False)
    for task in second.tasks:
        if task.kind == "fit" and task.outer == 0:
            target = store.output_path(second.workdir, task.id)
            target.parent.mkdir(exist_ok=True)
            shutil.copy(store.output_path(first.workdir, task.id), target)
    with pytest.raises(mp.TaskError, match=r"fit-o0-i0-c0\.json was written by another build"):
        mp.run_task(second.workdir, "select-o0")


@pytest.mark.parametrize("edit", ["inner fold removed", "outer fold added", "chunk changed"])
def test_edited_task_table_is_refused_naming_the_file(tmp_path, edit):
    X, y = load_iris(return_X_y=True)
    workflow = _small_experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    path = workflow.workdir / "tasks.json"
    table = json.loads(path.read_text())
    # The compact table: fold counts and chunks stand for the rows.
    if edit == "inner fold removed":
        table["split_sets"]["main"]["n_inner"][1] -= 1
    elif edit == "outer fold added":
        table["split_sets"]["main"]["n_outer"] += 1
        table["split_sets"]["main"]["n_inner"].append(2)
    else:
        table["chunks"][0] = table["chunks"][1]
    path.write_text(json.dumps(table))
    with pytest.raises(mp.WorkdirError, match=f"{path} does not match the digest"):
        mp.Workflow.open(workflow.workdir).run(n_jobs=1, progress=False)
    with pytest.raises(mp.TaskError, match=f"{path} does not match the digest"):
        mp.run_task(workflow.workdir, "fit-o0-i0-c0")
    assert output_files(workflow.workdir) == []
    if edit == "inner fold removed":  # the same through the CLI, once
        for command in (("status",), ("run", "--no-progress"), ("task", "fit-o0-i0-c0")):
            done = cli(command[0], workflow.workdir, *command[1:])
            assert done.returncode == 1 and "tasks.json does not match the digest" in done.stderr, done.stderr


# ------------------------------------------------------------ fingerprint (3)
def test_different_lambda_scorers_are_different_experiments(tmp_path):
    X, y = load_iris(return_X_y=True)
    accuracy = lambda est, X, y: float(np.mean(est.predict(X) == y))  # noqa: E731
    same_code = lambda est, X, y: float(np.mean(est.predict(X) == y))  # noqa: E731
    other = lambda est, X, y: float(np.mean(est.predict(X) != y))  # noqa: E731
    workflow = _small_experiment(scoring=accuracy).build(X, y, workdir=tmp_path / "wd")
    mp.run_task(workflow.workdir, workflow.tasks[0].id)
    assert _small_experiment(scoring=same_code).build(X, y, workdir=workflow.workdir).status()["done"] == 1
    with pytest.raises(FileExistsError, match="different experiment"):
        _small_experiment(scoring=other).build(X, y, workdir=workflow.workdir)
    with pytest.raises(FileExistsError, match="different experiment"):
        _small_experiment(scoring=accuracy, refit=lambda results: 0).build(X, y, workdir=workflow.workdir)


NOTEBOOK_CLASS = textwrap.dedent("""
    import sys
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.datasets import load_iris
    import mempamal as mp

    class Majority(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            # A set constant: its order changes with each interpreter's hash seed.
            self.numeric_ = y.dtype.kind in {"i", "u", "f", "b"}
            self.classes_, counts = np.unique(y, return_counts=True)
            self.label_ = self.classes_[BODY]
            return self
        def predict(self, X):
            return np.full(len(X), self.label_)

    X, y = load_iris(return_X_y=True)
    workflow = mp.Experiment(Majority(), cv=3).build(X, y, workdir=sys.argv[1])
    if len(sys.argv) > 2:
        workflow.run(n_jobs=1, progress=False)
    print("DONE", workflow.status()["done"])
""")


def test_edited_class_of_a_script_is_a_different_experiment_the_same_class_is_reused(tmp_path):
    original, edited = tmp_path / "original.py", tmp_path / "edited.py"
    original.write_text(NOTEBOOK_CLASS.replace("BODY", "np.argmax(counts)"))
    edited.write_text(NOTEBOOK_CLASS.replace("BODY", "np.argmin(counts)"))
    workdir = tmp_path / "wd"

    def build(path, *extra):
        return subprocess.run([sys.executable, str(path), str(workdir), *extra], capture_output=True, text=True)

    assert build(original, "run").returncode == 0
    again = build(original)  # a new interpreter (new hash seed): same code, same fingerprint
    assert again.returncode == 0 and "DONE 5" in again.stdout, again.stderr
    refused = build(edited)
    assert refused.returncode != 0 and "already holds a different experiment" in refused.stderr


# ------------------------------------------------------ all fits failed (5)
def _sklearn_error(estimator, X, y, **kwargs):
    with pytest.raises(ValueError) as caught:
        cross_validate(estimator, X, y, **kwargs)
    return str(caught.value)


def _same_shape(ours, theirs):
    """Header, failure counts and each failure's final line agree."""
    head = "Below are more details about the failures:\n"
    assert ours.split(head)[0] == theirs.split(head)[0]
    blocks = lambda text: [(b.splitlines()[0], b.strip().splitlines()[-1])  # noqa: E731
                           for b in text.split("-" * 80 + "\n")[1:]]
    assert blocks(ours) == blocks(theirs)


@pytest.mark.parametrize("case", ["single-class y", "continuous y for a classifier"])
@pytest.mark.parametrize("nested", [False, True], ids=["plain", "nested"])
def test_all_fits_failed_raises_like_scikit_learn(tmp_path, case, nested):
    X, y = load_iris(return_X_y=True)
    y = np.zeros_like(y) if case == "single-class y" else y + np.linspace(0, 0.5, len(y))
    estimator = LogisticRegression(max_iter=300)
    reference = GridSearchCV(estimator, {"C": [0.1, 1.0]}, cv=2) if nested else estimator
    theirs = _sklearn_error(reference, X, y, cv=3)
    exp = mp.Experiment(estimator, param_grid={"C": [0.1, 1.0]} if nested else None, cv=3, inner_cv=2)
    workflow = exp.build(X, y, workdir=tmp_path / "wd")
    with pytest.raises(ValueError) as caught:
        workflow.run(n_jobs=1, progress=False)
    _same_shape(str(caught.value), theirs)
    assert "All the 3 fits failed" in str(caught.value)
    if nested and case == "single-class y":  # the CLI: exit 1 and the same message
        ran = cli("run", workflow.workdir, "--no-progress")
        assert ran.returncode == 1 and "All the 3 fits failed" in ran.stderr
        assert "fits failed with the following error" in ran.stderr


def test_some_fits_failed_warns_like_scikit_learn(tmp_path):
    X, y = load_iris(return_X_y=True)
    y = y.astype(float)
    y[:50] += 0.5  # the first outer fold of KFold sees continuous labels in training only
    from sklearn.model_selection import KFold

    exp = mp.Experiment(LogisticRegression(max_iter=300), cv=KFold(3))
    with pytest.warns(FitFailedWarning, match="fits failed out of a total of 3") as ours:
        exp.build(X, y, workdir=tmp_path / "wd").run(n_jobs=1, progress=False)
    with pytest.warns(FitFailedWarning) as theirs:
        cross_validate(LogisticRegression(max_iter=300), X, y, cv=KFold(3))
    def first_line(records):
        return [str(w.message).strip().splitlines()[0] for w in records if w.category is FitFailedWarning]

    assert first_line(ours.list) == first_line(theirs.list) == ["2 fits failed out of a total of 3."]


# ------------------------------------------------------------ ranking (6)
BIG = np.finfo(np.float64).max


def _extreme_scorer(estimator, X, y):
    # Once clamped like GridSearchCV does, the largest float ties with +inf
    # and NaN ranks below -inf.  (sklearn's outer scorer gets the search.)
    C = getattr(estimator, "best_estimator_", estimator).C
    return {0.01: np.nan, 0.1: -np.inf, 1.0: BIG, 10.0: np.inf}[C]


def test_ranking_with_infinite_scores_matches_grid_search(tmp_path):
    X, y = load_iris(return_X_y=True)
    exp = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.01, 0.1, 1.0, 10.0]}, cv=3,
                        inner_cv=ShuffleSplit(n_splits=1, test_size=0.3, random_state=0), scoring=_extreme_scorer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "scores are non-finite", as sklearn says
        results = exp.build(X, y, workdir=tmp_path / "wd").run(n_jobs=1, progress=False)
        reference = assert_matches_sklearn(results, exp, X, y)
    assert [search.best_params_ for search in reference["estimator"]] == [{"C": 1.0}] * 3
    assert results.best_params == [{"C": 1.0}] * 3
    np.testing.assert_array_equal(results.cv_results(0)["rank_test_score"], [4, 3, 1, 1])


# ------------------------------------------------------------ status and results.json (7)
def test_status_does_not_count_corrupt_outputs_and_names_them(tmp_path):
    X, y = load_iris(return_X_y=True)
    workflow = _small_experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    ids = [task.id for task in workflow.tasks[:3]]
    for task_id in ids:
        mp.run_task(workflow.workdir, task_id)
    outputs = workflow.workdir / "outputs"
    text = store.output_path(workflow.workdir, ids[0]).read_text()
    store.output_path(workflow.workdir, ids[0]).write_text(text[: len(text) // 2])
    store.output_path(workflow.workdir, ids[1]).write_bytes(b"\x00garbage")
    status = workflow.status()
    assert status["done"] == 1 and set(status["untrusted"]) == set(ids[:2])
    assert all(message.startswith("Corrupt file") for message in status["untrusted"].values())
    printed = cli("status", workflow.workdir).stdout
    assert "1/" in printed and f"{store.output_path('outputs', ids[0]).relative_to('outputs')} (not complete JSON" in printed
    assert f"{store.output_path('outputs', ids[1]).relative_to('outputs')} (not complete JSON" in printed


@pytest.mark.parametrize("damage", ["deleted", "truncated", "from another workdir"])
def test_lost_results_json_of_a_finished_workdir_is_written_again(tmp_path, damage):
    X, y = load_iris(return_X_y=True)
    workflow = _small_experiment().build(X, y, workdir=tmp_path / "wd")
    workflow.run(n_jobs=1, progress=False)
    before = comparable(json.loads((workflow.workdir / "results.json").read_text()))
    stamps = {p.name: p.stat().st_mtime_ns for p in output_files(workflow.workdir) if p.name != "final.json"}
    path = workflow.workdir / "results.json"
    if damage == "deleted":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    else:
        other = _small_experiment(param_grid={"C": [5.0]}).build(X, y, workdir=tmp_path / "other")
        other.run(n_jobs=1, progress=False)
        shutil.copy(other.workdir / "results.json", path)
    with pytest.raises(mp.WorkdirError, match="results.json") as caught:
        mp.Results.load(workflow.workdir)
    assert "run the workdir again" in str(caught.value)
    assert "results.json" in mp.Workflow.open(workflow.workdir).status()["results"]
    if damage == "deleted":  # through the CLI once, in-process otherwise (faster)
        ran = cli("run", workflow.workdir, "--no-progress")
        assert ran.returncode == 0, ran.stderr
    else:
        mp.Workflow.open(workflow.workdir).run(n_jobs=1, progress=False)
    assert comparable(json.loads(path.read_text())) == before
    assert {p.name: p.stat().st_mtime_ns for p in output_files(workflow.workdir) if p.name != "final.json"} == stamps
    assert_matches_sklearn(mp.Results.load(workflow.workdir), _small_experiment(), X, y)


def test_many_untrusted_outputs_are_reported_in_one_warning_and_run_again(tmp_path):
    X, y = load_iris(return_X_y=True)
    workflow = _small_experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    fits = [task.id for task in workflow.tasks if task.kind == "fit"]
    for task_id in fits:
        store.make_private_dir(store.output_path(workflow.workdir, task_id).parent)
        store.output_path(workflow.workdir, task_id).write_text("{}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = workflow.run(n_jobs=1, progress=False)
    messages = [str(w.message) for w in caught if "Not trusting" in str(w.message)]
    assert len(messages) == 1 and messages[0].startswith(f"Not trusting {len(fits)} outputs"), messages
    assert_matches_sklearn(results, _small_experiment(), X, y)
