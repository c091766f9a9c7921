"""Checks of Experiment's own arguments, with scikit-learn-style messages, run before any work starts.

The estimator, the search space (``param_grid``, ``param_distributions``,
``n_iter``), ``scoring``/``refit``/``error_score``, the splitters and the
options, as ``Experiment.__init__`` receives them; the warning about
``RandomState`` instances among them is given at build.  What ``build``
itself is given (the data, the workdir, the splits made from them) is
checked by :mod:`mempamal.validation.build`.
"""

import numbers
import warnings

import numpy as np

from .._constraints import HasMethods, Interval, Predicate, StrOptions, invalid, raise_invalid, validate_params

PREDICT_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")


def _dicts(value):
    return isinstance(value, dict) or (isinstance(value, (list, tuple)) and all(isinstance(g, dict) for g in value))


_GRID = Predicate(_dicts, "a dict or a list of dicts")

#: What each argument of ``Experiment`` may be, checked by :func:`check_experiment_params`;
#: what depends on several of them (names of the estimator's parameters,
#: ``refit`` among the metrics) is checked by the functions below.
EXPERIMENT_CONSTRAINTS = {
    "estimator": [HasMethods(["fit", "get_params"])],
    "param_grid": [_GRID, None],
    "param_distributions": [_GRID, None],
    "n_iter": [Interval(numbers.Integral, 1, None, closed="left")],
    "cv": ["cv_object", None],
    "inner_cv": ["cv_object", None],
    "scoring": [str, "callable", list, tuple, set, dict, None],
    "refit": ["boolean", str, "callable"],
    "error_score": [StrOptions({"raise"}), Predicate(
        lambda v: isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)), "a float (np.nan by default)")],
    "n_permutations": [Interval(numbers.Integral, 0, None, closed="left")],
    "random_state": ["random_state", None],
    "final_fit": ["boolean"],
    "return_estimator": ["boolean"],
    "return_train_score": ["boolean"],
    "predict": [StrOptions(PREDICT_METHODS), None],
}


def check_experiment_params(params):
    """Each of Experiment's arguments against :data:`EXPERIMENT_CONSTRAINTS` (the estimator's class first).

    Examples
    --------
    >>> check_experiment_params({"final_fit": "yes"})
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'final_fit' parameter of Experiment must be a bool; got 'yes' instead.
    """
    if "estimator" in params:
        check_estimator(params["estimator"])
    validate_params({k: v for k, v in params.items() if k != "estimator"}, EXPERIMENT_CONSTRAINTS, "Experiment")


def _fail(argument, expected, got, detail=""):
    raise_invalid(argument, "Experiment", expected, got, detail)


def check_estimator(estimator):
    """An estimator instance that ``sklearn.base.clone`` can copy (every task fits a clone).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> check_estimator(LogisticRegression)
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'estimator' parameter of Experiment must be an estimator instance such as LogisticRegression(); got the class LogisticRegression instead.
    """
    if isinstance(estimator, type):
        _fail("estimator", f"an estimator instance such as {estimator.__name__}()", estimator)
    validate_params({"estimator": estimator}, {"estimator": [Predicate(
        HasMethods(["fit", "get_params"]).accepts,
        "a scikit-learn estimator (an object with fit and get_params)")]}, "Experiment")
    from sklearn.base import clone

    try:
        clone(estimator)
    except Exception as exc:
        raise invalid(
            f"The 'estimator' parameter of Experiment must be cloneable with sklearn.base.clone "
            f"(each task fits a fresh clone); cloning {type(estimator).__name__} failed: {exc}"
        ) from None


def check_param_grid(estimator, param_grid):
    """Validate the grid like ParameterGrid does, plus unknown parameter names.

    Examples
    --------
    >>> from sklearn.svm import SVC
    >>> check_param_grid(SVC(), {"C": [0.1, 1.0]})
    >>> check_param_grid(SVC(), {"c": [0.1, 1.0]})                     # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'param_grid' parameter of Experiment names ['c'], which is not a parameter of SVC: did you mean 'C' for 'c'?
    """
    if param_grid is None:
        return
    from sklearn.model_selection import ParameterGrid

    validate_params({"param_grid": param_grid}, EXPERIMENT_CONSTRAINTS, "Experiment")
    subgrids = [param_grid] if isinstance(param_grid, dict) else list(param_grid)
    if not subgrids:
        _fail("param_grid", "a non-empty dict or list of dicts", param_grid)
    for subgrid in subgrids:
        for key, values in subgrid.items():
            if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
                raise invalid(
                    f"The 'param_grid' parameter of Experiment must map each parameter name to "
                    f"a non-empty sequence of values; got {values!r} for {key!r}."
                )
    try:
        ParameterGrid(param_grid)
    except (TypeError, ValueError) as exc:
        raise invalid(f"Invalid 'param_grid' for Experiment: {exc}") from None
    _check_parameter_names(estimator, subgrids, "param_grid")


def _check_parameter_names(estimator, subgrids, argument):
    valid = set(estimator.get_params(deep=True))
    for subgrid in subgrids:
        # "clf__C" is valid when "clf" itself is replaced in the same sub-grid.
        unknown = [key for key in subgrid
                   if key not in valid and not ("__" in key and key.split("__", 1)[0] in subgrid)]
        if unknown:
            raise invalid(
                f"The {argument!r} parameter of Experiment names {sorted(unknown)}, which "
                f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of "
                f"{type(estimator).__name__}: {_parameter_hint(sorted(unknown), valid)}"
            )


def _parameter_hint(unknown, valid):
    """``did you mean 'logisticregression__C'?`` for each unknown key (a Pipeline's step prefix included)."""
    hints = []
    for key in unknown:
        # A bare name of a Pipeline step's parameter: the same name under its step.
        close = sorted(name for name in valid if name.endswith(f"__{key}")) or closest_names(key, valid)
        if close:
            hints.append(f"did you mean {' or '.join(map(repr, close[:3]))} for {key!r}?")
    if hints:
        return " ".join(hints)
    if len(valid) <= 20:
        return f"Valid parameters are: {sorted(valid)}."
    return f"none is close; the {len(valid)} valid names: estimator.get_params().keys()."


def check_param_distributions(estimator, param_distributions, param_grid, n_iter):
    """``param_distributions`` and ``n_iter`` as ``RandomizedSearchCV`` takes them.

    Each parameter maps to a non-empty list of values or to an object with
    an ``rvs`` method (a ``scipy.stats`` distribution); it cannot be given
    together with ``param_grid``.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> check_param_distributions(LogisticRegression(), {"C": [1, 10]}, None, 0)
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'n_iter' parameter of Experiment must be an int in the range [1, inf); got 0 instead.
    """
    validate_params({"n_iter": n_iter, "param_distributions": param_distributions}, EXPERIMENT_CONSTRAINTS,
                    "Experiment")
    if param_distributions is None:
        return
    if param_grid is not None:
        raise invalid(
            "The 'param_grid' and 'param_distributions' parameters of Experiment cannot both be "
            "given: pass param_grid for an exhaustive search (GridSearchCV) or param_distributions "
            "with n_iter for a randomized one (RandomizedSearchCV)."
        )
    subgrids = [param_distributions] if isinstance(param_distributions, dict) else list(param_distributions)
    if not subgrids:
        _fail("param_distributions", "a non-empty dict or list of dicts", param_distributions)
    for subgrid in subgrids:
        for key, values in subgrid.items():
            if hasattr(values, "rvs"):
                continue
            if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
                raise invalid(
                    f"The 'param_distributions' parameter of Experiment must map each parameter "
                    f"name to a distribution with an rvs method (e.g. scipy.stats.loguniform(1e-3, "
                    f"1e3)) or a non-empty list of values; got {values!r} for {key!r}."
                )
    _check_parameter_names(estimator, subgrids, "param_distributions")


def closest_names(name, choices, n=3):
    """The ``choices`` closest to a misspelled ``name`` (``'roc-auc'`` -> ``['roc_auc', ...]``).

    Separators are compared as one (``-``, ``_``, space, case), then by
    ``difflib.get_close_matches``.

    Examples
    --------
    >>> closest_names("acuracy", ["accuracy", "balanced_accuracy", "f1"])
    ['accuracy']
    >>> closest_names("roc-auc", ["roc_auc", "roc_auc_ovr", "r2"])[0]
    'roc_auc'
    """
    import difflib

    def key(text):
        return str(text).lower().replace("-", "_").replace(" ", "_")

    by_key = {key(choice): choice for choice in choices}
    if key(name) in by_key:
        return [by_key[key(name)]]
    return [by_key[k] for k in difflib.get_close_matches(key(name), list(by_key), n=n, cutoff=0.6)]


def check_scorer_names(scoring):
    """Refuse an unknown scorer name in one line naming the closest ones (``did you mean 'accuracy'?``).

    Examples
    --------
    >>> check_scorer_names("acuracy")
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'scoring' parameter of Experiment names 'acuracy', which is no scorer name of scikit-learn: did you mean 'accuracy' or 'top_k_accuracy'? (all names: sklearn.metrics.get_scorer_names())
    """
    from sklearn.metrics import get_scorer_names

    names = [scoring] if isinstance(scoring, str) else list(scoring) if isinstance(scoring, (list, tuple)) else []
    known = get_scorer_names()
    for name in names:
        if isinstance(name, str) and name not in known:
            close = closest_names(name, known)
            hint = f"did you mean {' or '.join(map(repr, close))}?" if close else "no scorer name is close"
            raise invalid(f"The 'scoring' parameter of Experiment names {name!r}, which is no scorer name of "
                          f"scikit-learn: {hint} (all names: sklearn.metrics.get_scorer_names())")


def check_scoring_and_refit(estimator, scoring, refit, error_score):
    """Check ``scoring`` and ``refit`` as ``GridSearchCV`` would; return the metric names.

    Several metrics need ``refit`` to name one of them (or be a callable);
    one metric accepts ``True``, its own name or a callable.

    Examples
    --------
    >>> from sklearn.svm import SVC
    >>> check_scoring_and_refit(SVC(), ["accuracy", "f1_macro"], "f1_macro", float("nan"))
    ['accuracy', 'f1_macro']
    >>> check_scoring_and_refit(SVC(), ["accuracy", "f1_macro"], True, float("nan"))
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'refit' parameter of Experiment must be a metric name among ['accuracy', 'f1_macro'] or a callable (several metrics are scored); got True instead.
    """
    from ..engine.scoring import build_scorer

    validate_params({"scoring": scoring, "refit": refit}, EXPERIMENT_CONSTRAINTS, "Experiment")
    check_no_metric_function(estimator, scoring)
    check_scorer_names(scoring)
    try:
        _, metrics, multimetric = build_scorer(estimator, scoring, error_score)
    except (ValueError, TypeError, KeyError) as exc:
        raise invalid(
            f"The 'scoring' parameter of Experiment must be None, a scorer name, a callable, "
            f"a list of names or a dict of scorers; got {scoring!r} instead ({exc})."
        ) from None
    if callable(refit) or refit is False:
        # refit=False: as GridSearchCV, no candidate is refit (the outer folds
        # then score error_score, as cross_validate of such a search does).
        return metrics
    if callable(scoring) and isinstance(refit, str):
        # A callable may return a dict: its keys are known only once it has
        # scored, and GridSearchCV checks refit against them then (so do the tasks).
        return metrics
    if multimetric:
        if not isinstance(refit, str) or refit not in metrics:
            _fail("refit", f"a metric name among {metrics} or a callable (several metrics are scored)", refit)
    elif refit is not True and refit != metrics[0] and not (isinstance(scoring, str) and refit == scoring):
        # GridSearchCV accepts the name of its single metric as refit.
        _fail("refit", f"True, {scoring!r} or a callable" if isinstance(scoring, str) else "True or a callable",
              refit)
    return metrics


def check_no_metric_function(estimator, scoring):
    """Refuse a metric function (``f1_score``) where a scorer is expected, as scikit-learn does.

    ``scoring`` itself or a value of a dict of scorers: scikit-learn's
    ``check_scoring`` decides (a callable from ``sklearn.metrics`` that is
    not a scorer), and its message is kept.  Without this, every fit would
    score ``error_score`` and the first candidate would win.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.metrics import f1_score
    >>> check_no_metric_function(LogisticRegression(), {"f1": f1_score})   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'scoring' parameter of Experiment (entry 'f1') must be a scorer, callable(estimator, X, y), not the metric function f1_score: use the scorer name 'f1' or wrap it with sklearn.metrics.make_scorer. scikit-learn refuses it too: scoring value ... looks like it is a metric function rather than a scorer...
    """
    from sklearn.metrics import check_scoring, get_scorer_names

    if callable(scoring):
        entries = [(None, scoring)]
    elif isinstance(scoring, dict):
        entries = [(key, value) for key, value in scoring.items() if callable(value)]
    else:
        return
    for key, value in entries:
        try:
            check_scoring(estimator, value)
        except ValueError as exc:
            name = getattr(value, "__name__", repr(value))
            short = name[:-len("_score")] if name.endswith("_score") else name
            hint = f"the scorer name {short!r} or " if short in get_scorer_names() else ""
            where = "" if key is None else f" (entry {key!r})"
            raise invalid(
                f"The 'scoring' parameter of Experiment{where} must be a scorer, callable(estimator, X, y), "
                f"not the metric function {name}: use {hint}wrap it with sklearn.metrics.make_scorer. "
                f"scikit-learn refuses it too: {exc}")


def check_refit_false(param_grid, metrics, refit):
    """``refit=False`` with a search and several metrics cannot be cross-validated.

    ``cross_validate(GridSearchCV(..., refit=False), scoring=[...])`` raises
    AttributeError (a search that refit nothing has no ``predict``); with one
    metric scikit-learn gives ``error_score`` per fold, and so does mempamal.

    Examples
    --------
    >>> check_refit_false({"C": [1.0]}, ["accuracy", "f1"], False)
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'refit' parameter of Experiment must be a metric name among ['accuracy', 'f1'] or a callable with several metrics and a param_grid (cross_validate cannot score a GridSearchCV with refit=False: it has no predict); got False instead.
    """
    if refit is False and param_grid is not None and len(metrics) > 1:
        _fail("refit", f"a metric name among {metrics} or a callable with several metrics and a param_grid "
              "(cross_validate cannot score a GridSearchCV with refit=False: it has no predict)", refit)


def check_predict_method(estimator, predict):
    """The estimator must have the ``predict`` method (checked as ``cross_val_predict`` calls it).

    Examples
    --------
    >>> from sklearn.linear_model import Ridge
    >>> check_predict_method(Ridge(), "predict_proba")
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'predict' parameter of Experiment must be a method of the estimator; got 'predict_proba' instead (Ridge has no predict_proba).
    """
    if predict is not None and not hasattr(estimator, predict):
        _fail("predict", "a method of the estimator", predict, detail=f" ({type(estimator).__name__} has no {predict})")


def warn_unused_inner_cv(param_grid, inner_cv):
    """Warn that ``inner_cv`` does nothing without a ``param_grid`` (no inner loop).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_unused_inner_cv(None, 3)
    >>> "ignored because 'param_grid' is None" in str(caught[0].message)
    True
    """
    if param_grid is None and inner_cv is not None:
        warnings.warn(
            "The 'inner_cv' parameter of Experiment is ignored because 'param_grid' is None "
            "(plain cross-validation has no inner loop).",
            UserWarning,
            stacklevel=3,
        )


def _random_state_paths(value, path):
    """Where ``value`` holds a ``numpy.random.RandomState`` (an estimator's params, a list's items)."""
    if isinstance(value, np.random.RandomState):
        return [path]
    if hasattr(value, "get_params") and not isinstance(value, type):
        try:
            params = value.get_params(deep=True)
        except Exception:  # not our business to judge a broken get_params here
            return []
        return [f"{path}{'__' if path else ''}{name}" for name, item in params.items()
                if isinstance(item, np.random.RandomState)]
    if hasattr(value, "split") and isinstance(getattr(value, "random_state", None), np.random.RandomState):
        return [f"{path}{'.' if path else ''}random_state"]
    return []


def warn_random_state_instances(estimator, param_grid, param_distributions, cv, inner_cv):
    """Warn where a ``RandomState`` *instance* seeds an estimator or a splitter.

    scikit-learn draws from such a state fit after fit and split after split,
    so what a fit gets depends on everything drawn before it in the same
    process; separate tasks cannot reproduce that sequence.  An int seed
    gives the same numbers everywhere.

    Examples
    --------
    >>> import warnings
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_random_state_instances(RandomForestClassifier(random_state=np.random.RandomState(0)),
    ...                                 None, None, 5, None)
    >>> "'estimator'" in str(caught[0].message)
    True
    """
    found = [("estimator", where) for where in _random_state_paths(estimator, "")]
    for argument, grid in (("param_grid", param_grid), ("param_distributions", param_distributions)):
        subgrids = [grid] if isinstance(grid, dict) else list(grid or [])
        for subgrid in subgrids:
            for key, values in subgrid.items() if isinstance(subgrid, dict) else ():
                if hasattr(values, "rvs") or isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                    continue
                for value in values:
                    found.extend((argument, where) for where in _random_state_paths(value, key))
    for argument, splitter in (("cv", cv), ("inner_cv", inner_cv)):
        found.extend((argument, where) for where in _random_state_paths(splitter, ""))
    for argument, where in found:
        warnings.warn(
            f"The {argument!r} parameter of Experiment is seeded with a numpy.random.RandomState "
            f"instance ({where}). scikit-learn draws from such a state fit after fit (split after "
            f"split) in one process, which separate tasks cannot reproduce, so results may differ "
            f"from scikit-learn's. Pass an int seed instead (e.g. random_state=0).",
            UserWarning,
            stacklevel=3,
        )
