"""Argument checks with scikit-learn-style messages, run before any work starts."""

import numbers
import warnings

import numpy as np


def _fail(argument, expected, got, owner="Experiment", exc=ValueError):
    raise exc(f"The {argument!r} parameter of {owner} must be {expected}; got {got!r} instead.")


def check_estimator(estimator):
    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        _fail("estimator", "a scikit-learn estimator (an object with fit and get_params)", estimator, exc=TypeError)


def check_cv_argument(cv, argument):
    if cv is None:
        return
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        if cv < 2:
            _fail(argument, "an int in the range [2, inf), a CV splitter or an iterable", cv)
        return
    if hasattr(cv, "split") and hasattr(cv, "get_n_splits"):
        return
    if isinstance(cv, str) or not hasattr(cv, "__iter__"):
        _fail(argument, "an int in the range [2, inf), a CV splitter or an iterable", cv)


def check_param_grid(estimator, param_grid):
    """Validate the grid like ParameterGrid does, plus unknown parameter names."""
    if param_grid is None:
        return
    from sklearn.model_selection import ParameterGrid

    if isinstance(param_grid, dict):
        subgrids = [param_grid]
    elif isinstance(param_grid, (list, tuple)) and all(isinstance(g, dict) for g in param_grid):
        subgrids = list(param_grid)
    else:
        _fail("param_grid", "a dict or a list of dicts", param_grid, exc=TypeError)
    if not subgrids:
        _fail("param_grid", "a non-empty dict or list of dicts", param_grid)
    for subgrid in subgrids:
        for key, values in subgrid.items():
            if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
                raise ValueError(
                    f"The 'param_grid' parameter of Experiment must map each parameter name to "
                    f"a non-empty sequence of values; got {values!r} for {key!r}."
                )
    try:
        ParameterGrid(param_grid)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"Invalid 'param_grid' for Experiment: {exc}") from None
    valid = set(estimator.get_params(deep=True))
    for subgrid in subgrids:
        # "clf__C" is valid when "clf" itself is replaced in the same sub-grid.
        unknown = [key for key in subgrid
                   if key not in valid and not ("__" in key and key.split("__", 1)[0] in subgrid)]
        if unknown:
            raise ValueError(
                f"The 'param_grid' parameter of Experiment names {sorted(unknown)}, which "
                f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of "
                f"{type(estimator).__name__}. Valid parameters are: {sorted(valid)}."
            )


def check_scoring_and_refit(estimator, scoring, refit, error_score):
    from .scoring import build_scorer

    try:
        _, metrics, multimetric = build_scorer(estimator, scoring, error_score)
    except (ValueError, TypeError, KeyError) as exc:
        from sklearn.metrics import get_scorer_names

        raise ValueError(
            f"The 'scoring' parameter of Experiment must be None, a scorer name, a callable, "
            f"a list of names or a dict of scorers; got {scoring!r} instead ({exc}). "
            f"Valid names are listed by sklearn.metrics.get_scorer_names(), e.g. "
            f"{sorted(get_scorer_names())[:6]}."
        ) from None
    if callable(refit):
        return metrics
    if multimetric:
        if not isinstance(refit, str) or refit not in metrics:
            _fail("refit", f"a metric name among {metrics} or a callable (several metrics are scored)", refit)
    elif refit is not True and refit != metrics[0]:
        _fail("refit", "True or a callable", refit)
    return metrics


def check_error_score(error_score):
    if isinstance(error_score, str) and error_score == "raise":
        return
    if not isinstance(error_score, numbers.Number) or isinstance(error_score, bool):
        _fail("error_score", "'raise' or a number (np.nan by default)", error_score)


def check_n_permutations(n_permutations):
    if not isinstance(n_permutations, numbers.Integral) or isinstance(n_permutations, bool) or n_permutations < 0:
        _fail("n_permutations", "an int in the range [0, inf)", n_permutations)


def warn_unused_inner_cv(param_grid, inner_cv):
    if param_grid is None and inner_cv is not None:
        warnings.warn(
            "The 'inner_cv' parameter of Experiment is ignored because 'param_grid' is None "
            "(plain cross-validation has no inner loop).",
            UserWarning,
            stacklevel=3,
        )


def _n_samples(value):
    if hasattr(value, "shape") and len(getattr(value, "shape", ())) > 0:
        return value.shape[0]
    return len(value)


def check_data(X, y, groups):
    """Check X, y and groups before anything is written."""
    if X is None:
        raise ValueError("The 'X' argument of Experiment.build is required; got None.")
    if y is None:
        raise ValueError(
            "The 'y' argument of Experiment.build is required (mempamal evaluates supervised "
            "estimators); got None."
        )
    if not hasattr(X, "__len__") and not hasattr(X, "shape"):
        raise TypeError(f"The 'X' argument of Experiment.build must be array-like; got {type(X).__name__}.")
    n_x, n_y = _n_samples(X), _n_samples(y)
    if n_x != n_y:
        raise ValueError(
            f"The 'X' and 'y' arguments of Experiment.build must have the same number of "
            f"samples; got X with {n_x} and y with {n_y}."
        )
    if groups is not None and _n_samples(groups) != n_x:
        raise ValueError(
            f"The 'groups' argument of Experiment.build must have one entry per sample "
            f"({n_x}); got {_n_samples(groups)}."
        )


def as_indexable(value):
    """What scikit-learn's ``indexable`` does: sparse to CSR, lists to arrays."""
    import scipy.sparse as sp

    if value is None:
        return None
    if sp.issparse(value):
        return value.tocsr()
    if hasattr(value, "iloc") or isinstance(value, np.ndarray):
        return value
    return np.asarray(value)
