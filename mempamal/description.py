"""``experiment.json``: what a workdir holds, in plain JSON, for people and provenance.

Every build writes it next to ``experiment.pkl``: the estimator (its repr and
``get_params(deep=False)``, estimators inside as their repr), the grid or
distributions, the outer and inner CV (class, parameters, fold counts),
scoring and refit, seeds, the data's shapes, dtypes and digests, the library
versions of the build and its creation time.  mempamal never reads it back to
run anything (``experiment.pkl``, the manifest and the task table do that);
``mempamal show WORKDIR`` prints it.  A workdir built before it existed has
none and works as before.
"""

import inspect
import json
import time
from pathlib import Path

import numpy as np

from . import store
from .engine.environment import build_environment
from .store import integrity

FORMAT = 1
NOTE = "For people and provenance: mempamal never reads this file back to run anything."


def write_description(workdir, experiment, data, table, metadata=None, environment=None):
    """Write ``WORKDIR/experiment.json`` (atomically, user-only, through :mod:`mempamal.store`).

    ``data`` is ``(X, y, groups)`` as stored in ``data/``; ``table`` the
    task table (its fold counts); ``environment`` what the manifest records
    (:func:`mempamal.engine.environment.build_environment`: one source of
    the versions), computed if not given.  Returns the description written.

    Examples
    --------
    >>> doc = write_description(tmp, exp, (X, y, None), {"split_sets": {"main": {"n_outer": 3, "n_inner": [2] * 3}}})
    >>> json.loads((tmp / "experiment.json").read_text())["cv"]["outer"]["n_splits"]
    3
    """
    workdir = Path(workdir)
    document = describe_build(workdir, experiment, data, table, metadata, environment)
    payload = json.dumps(document, indent=1, allow_nan=True).encode("utf-8")
    store.atomic_write_bytes(workdir / store.DESCRIPTION, payload)
    return document


def describe_build(workdir, experiment, data, table, metadata=None, environment=None):
    """The description of a build, as the JSON-able dict :func:`write_description` writes.

    Examples
    --------
    >>> describe_build(tmp, exp, (X, y, None), {"split_sets": {}})["estimator"]["class"]
    'sklearn.pipeline.Pipeline'
    """
    main = table.get("split_sets", {}).get("main", {})
    document = {"format": FORMAT, "note": NOTE, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    document["estimator"] = describe_estimator(experiment.estimator)
    document["search"] = _search(experiment)
    document["cv"] = {"outer": describe_splitter(experiment.cv, main.get("n_outer")),
                      "inner": (describe_splitter(experiment.inner_cv, main.get("n_inner"))
                                if experiment.nested else None)}
    for name in ("scoring", "refit", "error_score", "random_state", "n_permutations", "final_fit",
                 "return_estimator", "return_train_score", "predict"):
        document[name] = plain(getattr(experiment, name))
    document["metrics"] = list(experiment.metrics)
    names = ("X", "y", "groups")
    document["data"] = {name: describe_data(workdir, name, value) for name, value in zip(names, data)
                        if value is not None}
    params = (metadata or {}).get("params") or {}
    document["data"]["params"] = {name: describe_data(workdir, f"param-{index}", value)
                                  for index, (name, value) in enumerate(params.items())}
    if environment is None:
        environment = build_environment(experiment.estimator, experiment.param_grid,
                                        experiment.param_distributions)
    document["versions"] = dict(environment["versions"])
    return document


def describe_estimator(estimator):
    """Class, repr and ``get_params(deep=False)`` (estimators inside as their repr) of ``estimator``.

    Examples
    --------
    >>> from sklearn.svm import SVC
    >>> describe_estimator(SVC(C=2.0))["params"]["C"]
    2.0
    """
    kind = type(estimator)
    return {"class": f"{kind.__module__}.{kind.__qualname__}", "repr": repr(estimator),
            "params": plain(estimator.get_params(deep=False))}


def _search(experiment):
    if experiment.param_distributions is not None:
        return {"kind": "randomized", "param_distributions": plain(experiment.param_distributions),
                "n_iter": experiment.n_iter, "n_candidates": len(experiment.candidates)}
    if experiment.param_grid is not None:
        return {"kind": "grid", "param_grid": plain(experiment.param_grid),
                "n_candidates": len(experiment.candidates)}
    return None


def describe_splitter(cv, n_splits):
    """Class and parameters of a CV splitter (an int as ``check_cv`` reads it), with its fold count(s).

    ``n_splits`` is what the build computed: an int for the outer CV, a list
    (one per outer fold) for the inner CV.

    Examples
    --------
    >>> from sklearn.model_selection import KFold
    >>> describe_splitter(KFold(3, shuffle=True, random_state=0), 3)["params"]
    {'n_splits': 3, 'random_state': 0, 'shuffle': True}
    >>> describe_splitter(4, [4, 4])["class"]
    'int (KFold, or StratifiedKFold for a classifier, as check_cv)'
    """
    if cv is None:
        kind, params = "None (5-fold, as GridSearchCV)", {}
    elif isinstance(cv, int):
        kind, params = "int (KFold, or StratifiedKFold for a classifier, as check_cv)", {"n_splits": cv}
    elif isinstance(cv, list):
        kind, params = "list of (train, test) index arrays", {"n_splits": len(cv)}
    else:
        kind = f"{type(cv).__module__}.{type(cv).__qualname__}"
        # The splitter's __init__ arguments read back from its attributes, as its own repr does.
        names = [p for p in inspect.signature(type(cv).__init__).parameters if p not in ("self", "args", "kwargs")]
        params = {name: plain(getattr(cv, name, None)) for name in sorted(names)}
    return {"class": kind, "params": params, "repr": repr(cv) if not isinstance(cv, list) else None,
            "n_splits": n_splits}


def describe_data(workdir, name, value):
    """Type, shape, dtype(s) of ``value`` and the digest of its file in ``data/``.

    Examples
    --------
    >>> describe_data(tmp, "y", np.zeros(3))["shape"]
    [3]
    """
    kind = type(value)
    entry = {"type": f"{kind.__module__}.{kind.__qualname__}", "shape": list(np.shape(value))
             if hasattr(value, "shape") else [len(value)]}
    dtypes = getattr(value, "dtypes", None)
    if dtypes is not None and hasattr(dtypes, "items"):  # a DataFrame: one dtype per column
        entry["dtypes"] = {str(column): str(dtype) for column, dtype in dtypes.items()}
    elif hasattr(value, "dtype"):
        entry["dtype"] = str(value.dtype)
    files = sorted((Path(workdir) / store.DATA_DIR).glob(f"{name}.*"))
    if files:
        entry["file"] = f"{store.DATA_DIR}/{files[0].name}"
        entry.update(integrity.file_digest(files[0]))
    return entry


def library_versions(estimator=None):
    """Python's and the libraries' versions, plus the estimator's packages (what a build records).

    The one source of these versions is
    :func:`mempamal.engine.environment.build_environment`, which the manifest
    (checked by every task) and ``experiment.json`` share.

    Examples
    --------
    >>> import sklearn
    >>> library_versions()["scikit-learn"] == sklearn.__version__
    True
    """
    return build_environment(estimator)["versions"]


def plain(value):
    """``value`` in plain JSON values: numbers, strings, lists, dicts; anything else as its repr.

    Estimators and distributions are their repr; a callable its qualified name.

    Examples
    --------
    >>> from sklearn.svm import SVC
    >>> plain({"C": np.logspace(0, 1, 2), "estimator": SVC(), "n": np.int64(3)})
    {'C': [1.0, 10.0], 'estimator': 'SVC()', 'n': 3}
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value.tolist()
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(item) for item in value]
    if hasattr(value, "dist") and hasattr(value, "args"):  # a frozen scipy.stats distribution
        arguments = [repr(plain(a)) for a in value.args] + [f"{k}={plain(v)!r}" for k, v in value.kwds.items()]
        return f"{value.dist.name}({', '.join(arguments)})"
    if callable(value) and not hasattr(value, "get_params"):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
    return repr(value)


def read_description(workdir):
    """The ``experiment.json`` of ``workdir``, or None when it has none (built by an older mempamal).

    Examples
    --------
    >>> read_description("runs/iris")["search"]["param_grid"]
    {'clf__C': [0.1, 1.0, 10.0]}
    """
    path = Path(workdir) / store.DESCRIPTION
    if not path.exists():
        return None
    return store.read_json(path)


def short_line(experiment):
    """One line naming the estimator and its grid (what ``Results`` and ``mempamal results`` print).

    Examples
    --------
    >>> short_line(exp)
    "Pipeline(steps=[('scale', StandardScaler()), ('clf', LogisticRegression())]), param_grid={'clf__C': [0.1, 1.0, 10.0]} (3 candidates)"
    """
    text = " ".join(repr(experiment.estimator).split())
    if len(text) > 100:
        text = text[:97] + "..."
    if experiment.param_distributions is not None:
        text += (f", param_distributions={plain(experiment.param_distributions)} "
                 f"({len(experiment.candidates)} sampled candidates)")
    elif experiment.param_grid is not None:
        text += f", param_grid={plain(experiment.param_grid)} ({len(experiment.candidates)} candidates)"
    return text
