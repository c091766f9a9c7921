"""Sample-aligned metadata (``build(..., params=)``) routed as scikit-learn routes it.

``cross_validate(estimator, X, y, params=params)`` decides, once, which
metadata goes to ``fit`` and which to the scorer; each fold then slices the
sample-aligned values with its train or test indices.  With a grid search,
``GridSearchCV.fit`` receives the outer training slice and routes it again
(inner fits, inner scorer, refit).  The routing depends on names and on the
estimator's and scorer's requests, never on the values, so it is computed
here once per task on the full arrays, and then sliced exactly as
scikit-learn slices it (``_check_method_params``, first by the outer train
indices, then by the inner ones).

Whether metadata routing is on is part of scikit-learn's global config at
build time: :func:`routing_enabled` is the one place that reads it.
"""

import warnings
from contextlib import contextmanager


def routing_enabled():
    """``sklearn.get_config()["enable_metadata_routing"]`` of this process.

    Read at build time (``Experiment.build``) and stored with the
    metadata; tasks re-enter it with :func:`routing_config`.

    Examples
    --------
    >>> routing_enabled()
    False
    """
    from sklearn import get_config

    return bool(get_config().get("enable_metadata_routing", False))


@contextmanager
def routing_config(enabled):
    """Run a block with metadata routing on or off, as it was at build time.

    Examples
    --------
    >>> with routing_config(True):
    ...     routing_enabled()
    True
    """
    from sklearn import config_context

    with config_context(enable_metadata_routing=bool(enabled)):
        yield


def _outer_router(owner, estimator, scorer):
    from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping

    router = MetadataRouter(owner=owner).add(
        estimator=estimator, method_mapping=MethodMapping().add(caller="fit", callee="fit"))
    if scorer is not None:
        router = router.add(scorer=scorer, method_mapping=MethodMapping().add(caller="fit", callee="score"))
    return router


def _search_for_routing(experiment):
    """A GridSearchCV with the experiment's estimator, inner cv and scoring: the
    object whose routing ``cross_validate(GridSearchCV(...), params=)`` uses."""
    from sklearn.model_selection import GridSearchCV

    return GridSearchCV(experiment.estimator, {}, cv=experiment.inner_cv, scoring=experiment.scoring,
                        refit=experiment.refit, error_score=experiment.error_score)


def route(experiment, scorer, params, enabled):
    """Where each metadata goes: ``{"fit": {...}, "score": {...}, "inner_fit": {...},
    "inner_score": {...}}`` of full-length values.

    ``fit``/``score`` are what ``cross_validate`` gives the outer fits and
    the outer scorer; ``inner_fit``/``inner_score`` what ``GridSearchCV.fit``
    gives each inner fit (and the refit) and the inner scorer, from the
    values it receives (``fit``).  Raises scikit-learn's own errors for
    metadata nobody requested.

    Examples
    --------
    >>> import numpy as np, mempamal as mp
    >>> from sklearn.linear_model import LogisticRegression
    >>> exp = mp.Experiment(LogisticRegression())
    >>> routes = route(exp, None, {"sample_weight": np.ones(4)}, enabled=False)
    >>> sorted(routes["fit"]), routes["score"]
    (['sample_weight'], {})
    """
    from .._sklearn_compat import routed_params_for_fit

    params = dict(params or {})
    nested = experiment.nested
    outer_estimator = _search_for_routing(experiment) if nested else experiment.estimator
    if enabled:
        from sklearn.utils.metadata_routing import process_routing

        with routing_config(True):
            routed = process_routing(_outer_router("cross_validate", outer_estimator, scorer), "fit", **params)
            fit, score = dict(routed.estimator.fit), dict(routed.scorer.score) if scorer is not None else {}
            inner_fit, inner_score = {}, {}
            if nested:
                inner = routed_params_for_fit(outer_estimator, fit)
                inner_fit, inner_score = dict(inner.estimator.fit), dict(inner.scorer.score)
    else:
        fit, score = params, {}
        inner_fit, inner_score = {}, {}
        if nested:
            with warnings.catch_warnings():
                # GridSearchCV warns once per fit when the scorer ignores
                # sample_weight; the build shows that warning, tasks do not.
                warnings.simplefilter("ignore")
                inner = routed_params_for_fit(outer_estimator, fit)
            inner_fit, inner_score = dict(inner.estimator.fit), dict(inner.scorer.score)
    return {"fit": fit, "score": score, "inner_fit": inner_fit, "inner_score": inner_score}


def check_routing(experiment, scorer, params, enabled):
    """Route ``params`` at build time, so unrequested metadata (with routing)
    fails before anything is written, with scikit-learn's own message; the
    warnings scikit-learn gives (a scorer ignoring ``sample_weight``) are shown
    here once.

    Examples
    --------
    >>> import numpy as np, mempamal as mp
    >>> from sklearn.linear_model import LogisticRegression
    >>> check_routing(mp.Experiment(LogisticRegression()), None, {"sample_weight": np.ones(3)}, False)
    """
    if enabled:
        route(experiment, scorer, params, enabled)
    elif experiment.nested and params:
        from .._sklearn_compat import routed_params_for_fit

        routed_params_for_fit(_search_for_routing(experiment), dict(params))


def slice_params(X, params, indices):
    """``params`` sliced by ``indices`` as ``_fit_and_score`` slices them.

    Examples
    --------
    >>> import numpy as np
    >>> slice_params(np.zeros((3, 1)), {"sample_weight": np.array([1., 2., 3.])}, [2, 0])
    {'sample_weight': array([3., 1.])}
    """
    from .._sklearn_compat import _check_method_params

    if not params:
        return {}
    return _check_method_params(X, params=params, indices=indices)
