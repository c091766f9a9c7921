"""The one argument validator (mempamal/_constraints.py) and the public entry points that use it.

Each kind of constraint accepts what it says and refuses the rest; the
message has scikit-learn's shape (and, where the two libraries describe the
same constraint, scikit-learn's words); every public entry point refuses a
bad argument with ``InvalidParameterError`` before it writes anything.
"""

import numbers
import threading
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.utils import _param_validation as sk  # only to compare the words, never used by mempamal

import mempamal as mp
from mempamal._constraints import HasMethods, Interval, Predicate, StrOptions, invalid, make_constraint, \
    raise_invalid, validate_params
from mempamal.exceptions import InvalidParameterError

X, y = load_iris(return_X_y=True)
X, y = X[::3], y[::3]  # 50 samples: enough for 2 folds, quick to build


def _accepts(constraint, value):
    return make_constraint(constraint).accepts(value)


# ------------------------------------------------------------- each kind
@pytest.mark.parametrize("constraint, good, bad", [
    (Interval(numbers.Integral, 1, None, closed="left"), [1, 7, np.int64(3)], [0, -1, 1.0, True, "1", None]),
    (Interval(numbers.Integral, 0, 3, closed="both"), [0, 3], [-1, 4]),
    (Interval(numbers.Integral, 0, 3, closed="neither"), [1, 2], [0, 3]),
    (Interval(numbers.Real, 0, None, closed="neither"), [0.5, 1, np.float32(2)], [0, 0.0, -1.5, float("nan"), False]),
    (Interval(numbers.Real, 0, None, closed="right"), [1e9], [0]),
    (StrOptions({"auto", "raise"}), ["auto", "raise"], ["AUTO", "", 1, None]),
    ("boolean", [True, False, np.bool_(True)], [0, 1, "True", None]),
    ("array-like", [[1, 2], np.zeros(3), (1,), np.zeros((2, 2))], ["ab", b"ab", 3, np.float64(1.0), None]),
    ("cv_object", [2, 10, KFold(3), [(np.arange(2), np.arange(2, 4))]], [1, 0, "abc", 2.5, True]),
    ("path", ["runs/x", Path("runs/x")], [3, None, b"x"]),
    ("random_state", [0, 2**32 - 1, np.random.RandomState(0)], [-1, 2**32, 1.5, "0"]),
    (callable, [len, lambda: 0], [1, "len"]),
    ("callable", [print], [None]),
    (None, [None], [0, "", False]),
    (dict, [{}, {"a": 1}], [[], None]),
    (int, [1, np.int32(2)], [True, 1.0]),
    (HasMethods(["split", "get_n_splits"]), [KFold(2)], [[1], "split"]),
    (Predicate(lambda v: isinstance(v, str) and v.startswith("tcp://"), "an address"), ["tcp://h:1"], ["h:1", 1]),
])
def test_each_constraint_accepts_what_it_says_and_refuses_the_rest(constraint, good, bad):
    for value in good:
        assert _accepts(constraint, value), value
    for value in bad:
        assert not _accepts(constraint, value), value


def test_the_message_has_scikit_learns_shape():
    constraints = {"cv": ["cv_object", None]}
    with pytest.raises(InvalidParameterError) as info:
        validate_params({"cv": "abc"}, constraints, "Experiment")
    assert str(info.value) == ("The 'cv' parameter of Experiment must be an int in the range [2, inf), "
                               "a CV splitter or an iterable or None; got 'abc' instead.")
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert isinstance(info.value, mp.MempamalError)
    with pytest.raises(InvalidParameterError, match=r"^The 'a' parameter must be a bool; got 1 instead\.$"):
        validate_params({"a": 1}, {"a": ["boolean"]}, None)


def test_the_words_are_scikit_learns_where_both_describe_the_same_constraint():
    for ours, theirs in [
        (Interval(numbers.Integral, 1, None, closed="left"), sk.Interval(numbers.Integral, 1, None, closed="left")),
        (Interval(numbers.Integral, 0, 10, closed="both"), sk.Interval(numbers.Integral, 0, 10, closed="both")),
        (Interval(numbers.Integral, None, 0, closed="neither"), sk.Interval(numbers.Integral, None, 0, closed="neither")),
        (HasMethods(["split", "get_n_splits"]), sk.HasMethods(["split", "get_n_splits"])),
        (HasMethods("fit"), sk.HasMethods("fit")),
        (StrOptions({"raise"}), sk.StrOptions({"raise"})),
        (make_constraint(None), sk.make_constraint(None)),
        (make_constraint(callable), sk.make_constraint(callable)),
    ]:
        assert str(ours) == str(theirs)
    # scikit-learn's own check of the same argument names the same argument and value.
    with pytest.raises(sk.InvalidParameterError, match=r"The 'n_jobs' parameter of .* Got 'x' instead"):
        sk.validate_parameter_constraints({"n_jobs": [numbers.Integral, None]}, {"n_jobs": "x"}, "f")


def test_a_long_value_is_cut_and_a_class_is_named():
    with pytest.raises(InvalidParameterError) as info:
        validate_params({"y": np.arange(1000)}, {"y": [None]}, "f")
    assert len(str(info.value)) < 200 and "got ndarray array([" in str(info.value)
    with pytest.raises(InvalidParameterError, match="got the class LogisticRegression instead"):
        mp.Experiment(LogisticRegression)


def test_rules_over_several_arguments_raise_the_same_error():
    with pytest.raises(InvalidParameterError, match=r"^The 'x' parameter of f must be small; got 3 instead \(why\)\.$"):
        raise_invalid("x", "f", "small", 3, " (why)")
    assert isinstance(invalid("free words"), InvalidParameterError)
    with pytest.raises(InvalidParameterError, match="cannot both be given"):
        mp.Experiment(LogisticRegression(), param_grid={"C": [1]}, param_distributions={"C": [1]})


def test_an_unknown_constraint_is_a_programming_error():
    with pytest.raises(ValueError, match="Unknown constraint"):
        make_constraint("bolean")
    with pytest.raises(ValueError, match="closed"):
        Interval(numbers.Integral, 0, 1, closed="open")


# --------------------------------------------- every public entry point
def _listing(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


@pytest.mark.parametrize("arguments, match", [
    ({"cv": "abc"}, r"'cv' parameter of Experiment must be an int in the range \[2, inf\)"),
    ({"inner_cv": 1, "param_grid": {"C": [1]}}, "'inner_cv' parameter of Experiment"),
    ({"n_permutations": -1}, r"'n_permutations' parameter of Experiment must be an int in the range \[0, inf\)"),
    ({"random_state": "x"}, "'random_state' parameter of Experiment"),
    ({"error_score": "nan"}, "'error_score' parameter of Experiment must be a str among {'raise'} or a float"),
    ({"final_fit": "yes"}, "'final_fit' parameter of Experiment must be a bool; got 'yes'"),
    ({"predict": "proba"}, "'predict' parameter of Experiment must be a str among {'predict', "),
    ({"param_grid": "C"}, "'param_grid' parameter of Experiment must be a dict or a list of dicts or None"),
    ({"scoring": 3}, "'scoring' parameter of Experiment"),
    ({"refit": 3}, "'refit' parameter of Experiment must be a bool, a str or a callable; got 3"),
    ({"n_iter": 0, "param_distributions": {"C": [1]}}, "'n_iter' parameter of Experiment"),
])
def test_experiment_refuses_each_bad_argument(arguments, match):
    with pytest.raises(InvalidParameterError, match=match):
        mp.Experiment(LogisticRegression(), **arguments)


@pytest.mark.parametrize("arguments, match", [
    ({"workdir": 3}, r"'workdir' parameter of build must be a path \(str or os.PathLike\); got 3"),
    ({"workdir": " "}, "'workdir' parameter of build must be a non-empty path"),
    ({"overwrite": "yes"}, "'overwrite' parameter of build must be a bool"),
    ({"chunk_size": 0}, r"'chunk_size' parameter of build must be a str among {'auto'} or an int in the range \[1, inf\)"),
    ({"groups": "runs/x"}, r"'groups' parameter of Experiment.build .* \(the workdir is passed as workdir=...\)"),
    ({"groups": np.arange(3)}, r"'groups' parameter of Experiment.build must have one entry per sample \(50\)"),
    ({"params": "runs/x"}, "'params' parameter of Experiment.build must be None or a dict"),
    ({"y": 3}, "'y' parameter of Experiment.build must be an array-like; got 3"),
    ({"y": y[:-1]}, "'X' and 'y' parameters of Experiment.build must have the same number of samples"),
])
def test_build_and_experiment_run_refuse_bad_input_before_writing_anything(tmp_path, arguments, match):
    arguments = {"y": y, "workdir": tmp_path / "wd", **arguments}
    experiment = mp.Experiment(LogisticRegression(), cv=2)
    with pytest.raises(InvalidParameterError, match=match):
        experiment.build(X, **arguments)
    with pytest.raises(InvalidParameterError, match=match):
        experiment.run(X, **arguments)
    assert _listing(tmp_path) == []


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return mp.Experiment(LogisticRegression(), cv=2).build(X, y, workdir=tmp_path_factory.mktemp("c") / "wd")


@pytest.mark.parametrize("call, match", [
    (lambda wf: wf.run(n_jobs=0), "'n_jobs' parameter of Workflow.run must be a non-zero int or None; got 0"),
    (lambda wf: wf.run(n_jobs=2.0), "'n_jobs' parameter of Workflow.run"),
    (lambda wf: wf.submit(progress="yes"), "'progress' parameter of Workflow.run must be a bool"),
    (lambda wf: wf.run(stop=True), "'stop' parameter of Workflow.run must be an object implementing 'is_set'"),
    (lambda wf: wf.run(wait=-1), r"'wait' parameter of Workflow.run must be a bool or a float in the range \[0, inf\)"),
    (lambda wf: wf.run(backend="nowhere"), "'backend' parameter must be one of"),
    (lambda wf: wf.run(backend=3), "'backend' parameter must be one of"),
    (lambda wf: wf.run(threads_per_worker=0), "'threads_per_worker' parameter of the local backend"),
    (lambda wf: wf.run(limit_threads="no"), "'limit_threads' parameter of the local backend must be a bool"),
    (lambda wf: wf.run(backend="slurm", job_seconds=-1), "'job_seconds' parameter of the 'slurm' backend"),
    (lambda wf: wf.run(backend="slurm", partition=""), "'partition' parameter of the 'slurm' backend"),
    (lambda wf: wf.export(wf.workdir.parent / "x.sh", format="bash"), "'format' parameter of export must be a str among"),
    (lambda wf: wf.export(wf.workdir.parent / "x.sh", n_jobs=0), "'n_jobs' parameter of export"),
    (lambda wf: wf.export(wf.workdir.parent / "x.sh", format="shell", tasks_per_job=0), "'tasks_per_job' parameter of export"),
    (lambda wf: wf.export("", format="shell"), "'path' parameter of export must be a file path"),
    (lambda wf: wf.export(wf.workdir.parent, format="shell"), "'path' parameter of export must be a file, not a folder"),
    (lambda wf: wf.export(wf.workdir.parent / "x.sh", format="shell", color=1), "Unknown options"),
])
def test_run_submit_and_export_refuse_bad_options_before_writing_anything(built, call, match):
    root = built.workdir.parent
    before = _listing(root)
    with pytest.raises(InvalidParameterError, match=match):
        call(built)
    assert _listing(root) == before


def test_the_run_controls_refuse_bad_options(built):
    run = built.submit(n_jobs=1)
    try:
        with pytest.raises(InvalidParameterError, match=r"'timeout' parameter of Run.wait must be a float"):
            run.wait(timeout=-1)
        with pytest.raises(InvalidParameterError, match="'wait' parameter of Run.cancel must be a bool"):
            run.cancel(wait="yes")
    finally:
        run.wait()


def test_backend_constructors_and_bundles_refuse_bad_options(built):
    from mempamal.backends.bundles import make_bundles
    from mempamal.backends.local import LocalBackend
    from mempamal.store.lock import WorkdirLock

    with pytest.raises(InvalidParameterError, match=r"'threads_per_worker' parameter of the local backend must be an int in the range \[1, inf\) or None; got 0"):
        LocalBackend(threads_per_worker=0)
    with pytest.raises(InvalidParameterError, match=r"'n_workers' parameter of make_bundles"):
        make_bundles(built, built.pending_ids(), n_workers=0)
    with pytest.raises(InvalidParameterError, match="either 'job_seconds' or 'tasks_per_job', not both"):
        make_bundles(built, built.pending_ids(), n_workers=1, job_seconds=1, tasks_per_job=1)
    with pytest.raises(InvalidParameterError, match="'wait' parameter of WorkdirLock"):
        WorkdirLock(built.workdir, wait="soon")
    with pytest.raises(InvalidParameterError, match="'name' parameter of register_backend"):
        mp.register_backend("", LocalBackend)


def test_a_stop_event_is_accepted(built):
    stop = threading.Event()
    results = built.run(n_jobs=1, stop=stop)
    assert len(results.test_scores["score"]) == 2
