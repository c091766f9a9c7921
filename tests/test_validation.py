"""Bad input gets a clear error naming the argument, before any file is written."""

import os
import re
import stat
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

import mempamal as mp
from mempamal import store

X, y = load_iris(return_X_y=True)


def _nothing_written(path):
    return not path.exists() or not any(path.iterdir())


def test_x_and_y_length_mismatch_names_both_before_writing(tmp_path):
    experiment = mp.Experiment(LogisticRegression())
    with pytest.raises(ValueError, match=r"'X' and 'y'.*150.*149"):
        experiment.build(X, y[:-1], workdir=tmp_path / "wd")
    assert _nothing_written(tmp_path / "wd")


def test_missing_y_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'y' parameter .* required"):
        mp.Experiment(LogisticRegression()).build(X, None, workdir=tmp_path / "wd")


def test_groups_of_wrong_length_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'groups'.*150"):
        mp.Experiment(LogisticRegression()).build(X, y, groups=np.zeros(10), workdir=tmp_path / "wd")


def test_group_splitter_without_groups_names_cv(tmp_path):
    with pytest.raises(ValueError, match=r"'cv' splitter.*groups"):
        mp.Experiment(LogisticRegression(), cv=GroupKFold(3)).build(X, y, workdir=tmp_path / "wd")
    assert _nothing_written(tmp_path / "wd")


def test_inner_group_splitter_without_groups_names_inner_cv(tmp_path):
    experiment = mp.Experiment(LogisticRegression(), param_grid={"C": [1.0]}, inner_cv=GroupKFold(3))
    with pytest.raises(ValueError, match=r"'inner_cv' splitter.*groups"):
        experiment.build(X, y, workdir=tmp_path / "wd")
    assert _nothing_written(tmp_path / "wd")


def test_unknown_scorer_name_is_refused_with_hint():
    with pytest.raises(ValueError, match=r"'scoring' parameter.*'acuracy'.*get_scorer_names"):
        mp.Experiment(LogisticRegression(), scoring="acuracy")


def test_grid_key_that_is_not_a_parameter_lists_valid_keys():
    with pytest.raises(ValueError, match=r"\['alpha'\].*not a parameter.*LogisticRegression.*Valid parameters.*'C'"):
        mp.Experiment(LogisticRegression(), param_grid={"alpha": [1.0]})


def test_empty_grid_value_list_is_refused():
    with pytest.raises(ValueError, match=r"non-empty sequence.*'C'"):
        mp.Experiment(LogisticRegression(), param_grid={"C": []})


def test_refit_naming_no_metric_is_refused():
    with pytest.raises(ValueError, match=r"'refit' parameter.*\['accuracy', 'f1_macro'\].*'auc'"):
        mp.Experiment(LogisticRegression(), param_grid={"C": [1.0]}, scoring=["accuracy", "f1_macro"], refit="auc")


def test_non_estimator_is_refused():
    with pytest.raises(TypeError, match=r"'estimator' parameter.*scikit-learn estimator"):
        mp.Experiment("LogisticRegression")


def test_inner_cv_without_param_grid_warns():
    with pytest.warns(UserWarning, match="'inner_cv'.*ignored"):
        mp.Experiment(LogisticRegression(), inner_cv=3)


def test_negative_n_permutations_is_refused():
    with pytest.raises(ValueError, match=r"'n_permutations'.*\[0, inf\).*-1"):
        mp.Experiment(LogisticRegression(), n_permutations=-1)


@pytest.mark.parametrize("cv", ["abc", 1, 2.5])
def test_bad_cv_is_refused_like_sklearn(cv):
    with pytest.raises(ValueError, match=r"'cv' parameter of Experiment must be an int"):
        mp.Experiment(LogisticRegression(), cv=cv)


def test_bad_n_jobs_names_n_jobs(tmp_path):
    workflow = mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(X, y, workdir=tmp_path / "wd")
    with pytest.raises(ValueError, match="'n_jobs'"):
        workflow.run(n_jobs=0, progress=False)


def test_unknown_backend_lists_registered_ones(tmp_path):
    workflow = mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(X, y, workdir=tmp_path / "wd")
    with pytest.raises(ValueError, match=r"'backend'.*'local'"):
        workflow.run(backend="nope", progress=False)


def test_building_a_different_experiment_into_a_workdir_is_refused_unless_overwrite(tmp_path):
    workdir = tmp_path / "wd"
    mp.Experiment(LogisticRegression(C=1.0), cv=3).build(X, y, workdir=workdir)
    with pytest.raises(FileExistsError, match="different experiment or data.*overwrite=True"):
        mp.Experiment(LogisticRegression(C=2.0), cv=3).build(X, y, workdir=workdir)
    with pytest.raises(FileExistsError, match="different experiment or data"):
        mp.Experiment(LogisticRegression(C=1.0), cv=3).build(X + 1, y, workdir=workdir)
    workflow = mp.Experiment(LogisticRegression(C=2.0), cv=3).build(X, y, workdir=workdir, overwrite=True)
    assert workflow.run(n_jobs=1, progress=False).experiment.estimator.C == 2.0


def test_a_folder_with_foreign_files_is_never_used_or_deleted(tmp_path):
    (tmp_path / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="holds other files"):
        mp.Experiment(LogisticRegression(), cv=3).build(X, y, workdir=tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_workdir_is_private_and_a_group_writable_one_is_refused(tmp_path):
    workdir = tmp_path / "wd"
    workflow = mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(X, y, workdir=workdir)
    assert stat.S_IMODE(os.stat(workdir).st_mode) == 0o700
    os.chmod(workdir, 0o770)
    with pytest.raises(mp.TaskError, match="writable by other users.*pickled code"):
        mp.run_task(workdir, workflow.tasks[0].id)


def test_incomplete_build_is_never_trusted(tmp_path):
    workdir = tmp_path / "wd"
    workflow = mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(X, y, workdir=workdir)
    (workdir / "manifest.json").unlink()  # as if the build had been killed before its last write
    with pytest.raises(mp.WorkdirError, match="incomplete build"):
        mp.Workflow.open(workdir)
    rebuilt = mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(X, y, workdir=workdir)
    assert rebuilt.run(n_jobs=1, progress=False).test_scores["score"].shape == (3,)
    del workflow


def test_missing_dependency_output_names_the_task_and_file(tmp_path):
    workflow = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [1.0]}, cv=3,
                             inner_cv=3).build(X, y, workdir=tmp_path / "wd")
    with pytest.raises(mp.TaskError, match=r"'select-o0'.*'fit-o0-i0-c0'.*outputs/fit-o0-i0-c0k/fit-o0-i0-c0.json.*missing"):
        mp.run_task(workflow.workdir, "select-o0")


def test_corrupt_output_names_the_task_and_file(tmp_path):
    workflow = mp.Experiment(LogisticRegression(max_iter=300), cv=3).build(X, y, workdir=tmp_path / "wd")
    for task_id in ("score-o1", "score-o2"):
        mp.run_task(workflow.workdir, task_id)
    store.output_path(workflow.workdir, "score-o0").write_text("{not json")  # in the shard they made
    with pytest.raises(mp.TaskError, match=r"'final'.*Corrupt file .*score-o0.json"):
        mp.run_task(workflow.workdir, "final")


def test_failed_task_is_reported_by_id_and_dependents_are_not_run(tmp_path):
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [1.0, -1.0]}, cv=3,
                               inner_cv=3, error_score="raise")
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # error_score="raise": the estimator's own error, as GridSearchCV raises it ...
        with pytest.raises(ValueError, match="'C' parameter of LogisticRegression") as info:
            workflow.run(n_jobs=1, progress=False)
    assert re.search(r"raised in task 'fit-o\d-i\d-c1'", "\n".join(info.value.__notes__))
    # ... caused by the run's WorkflowError, which names every failed and blocked task.
    failed = info.value.__cause__.failed
    assert isinstance(info.value.__cause__, mp.WorkflowError)
    assert "final" in failed
    assert "not run: depends on failed task" in failed["final"]
    assert workflow.failed_ids() and all(i.startswith("fit-") for i in workflow.failed_ids())
