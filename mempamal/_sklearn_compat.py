"""Every private scikit-learn name mempamal uses, in one place.

mempamal computes "exactly scikit-learn" by calling scikit-learn's own
helpers, several of them private.  Private names may move or change between
releases, so they are imported here only: a release that moves one breaks
this module, not code all over the package, and a version gate (if one is
ever needed) lives here too.  Every scikit-learn from the floor of
``pyproject.toml`` (1.6) to the newest is tested against these names
(``tests/test_oldest_sklearn.py`` runs the exactness tests on the floor).

This module imports nothing from mempamal, so that every layer may use it;
it imports scikit-learn when first imported, so callers import it lazily,
inside functions, as they import scikit-learn itself.
"""

import sklearn
from sklearn.metrics._scorer import _check_multimetric_scoring, _MultimetricScorer, _PassthroughScorer, _Scorer
from sklearn.model_selection._search import _yield_masked_array_for_each_param
from sklearn.model_selection._validation import (_check_is_permutation, _enforce_prediction_order, _score,
                                                 _warn_or_raise_about_fit_failures)
from sklearn.utils import _safe_indexing
from sklearn.utils.metaestimators import _safe_split
from sklearn.utils.validation import _check_method_params

__all__ = [
    "SKLEARN_VERSION", "_check_is_permutation", "_check_method_params", "_check_multimetric_scoring",
    "_enforce_prediction_order", "_MultimetricScorer", "_PassthroughScorer", "_safe_indexing", "_safe_split",
    "_score", "_Scorer", "_warn_or_raise_about_fit_failures", "_yield_masked_array_for_each_param",
    "check_refit_for_multimetric", "multimetric_parts", "pipeline_transformers", "routed_params_for_fit",
    "validate_pipeline",
]


def _release(version):
    """``(major, minor)`` of a version string such as ``"1.6.1"`` or ``"1.9.dev0"``.

    Examples
    --------
    >>> _release("1.6.1"), _release("1.10.dev0")
    ((1, 6), (1, 10))
    """
    major, minor = version.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


#: The installed scikit-learn as ``(major, minor)``, for version gates.
SKLEARN_VERSION = _release(sklearn.__version__)


def routed_params_for_fit(search, params):
    """What ``search.fit(X, y, **params)`` routes to its inner fits and scorer.

    The ``Bunch`` that ``BaseSearchCV.fit`` builds (``.estimator.fit``,
    ``.scorer.score``, ``.splitter.split``), with scikit-learn's own errors
    and warnings for metadata nobody requested.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import GridSearchCV
    >>> routed = routed_params_for_fit(GridSearchCV(LogisticRegression(), {}), {"sample_weight": np.ones(2)})
    >>> sorted(routed.estimator.fit)
    ['sample_weight']
    """
    return search._get_routed_params_for_fit(params)


def check_refit_for_multimetric(search, metric_names):
    """Raise scikit-learn's own error when ``search.refit`` does not fit ``metric_names``.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> check_refit_for_multimetric(GridSearchCV(None, {}, refit="f1"), {"f1": None, "acc": None})
    >>> check_refit_for_multimetric(GridSearchCV(None, {}, refit=True), {"f1": None, "acc": None})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: For multi-metric scoring, the parameter refit must be set to a scorer key ...
    """
    search._check_refit_for_multimetric(metric_names)


def multimetric_parts(scorer):
    """The ``{name: scorer}`` mapping inside a ``_MultimetricScorer`` (None if it has none).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> scorers = _check_multimetric_scoring(LogisticRegression(), ["accuracy", "f1"])
    >>> sorted(multimetric_parts(_MultimetricScorer(scorers=scorers)))
    ['accuracy', 'f1']
    """
    return getattr(scorer, "_scorers", None)


def validate_pipeline(pipeline):
    """What ``Pipeline.fit`` does before fitting: check parameters, make ``steps`` a list, check steps.

    Examples
    --------
    >>> from sklearn.pipeline import Pipeline
    >>> validate_pipeline(Pipeline([("a", "passthrough"), ("b", None)]))
    >>> validate_pipeline(Pipeline([("a", 1), ("b", None)]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: All intermediate steps should be transformers and implement fit and transform ...
    """
    pipeline._validate_params()
    pipeline.steps = list(pipeline.steps)
    pipeline._validate_steps()


def pipeline_transformers(pipeline):
    """The steps ``Pipeline`` runs before its final one (passthrough and None left out).

    Examples
    --------
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.pipeline import Pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> pipe = Pipeline([("s", StandardScaler()), ("p", "passthrough"), ("r", Ridge())])
    >>> [type(step).__name__ for step in pipeline_transformers(pipe)]
    ['StandardScaler']
    """
    return [step for _, _, step in pipeline._iter(with_final=False)]
