"""Stable fingerprints of an experiment and its data.

A rebuilt workdir may reuse finished work only if the experiment and the data
are the same.  Pickles are not stable across sessions (notebook classes,
lambdas), so experiments are described structurally: estimators by class and
parameters, functions by qualified name, arrays by content hash.
"""

import hashlib
import json

import numpy as np


def describe(value):
    """A JSON-able, session-independent description of ``value``.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> describe(LogisticRegression(C=2.0))["params"]["C"]
    2.0
    """
    if hasattr(value, "get_params") and not isinstance(value, type):
        params = value.get_params(deep=False)
        return {
            "class": _qualified_name(type(value)),
            "params": {name: describe(params[name]) for name in sorted(params)},
        }
    if isinstance(value, dict):
        return {"dict": [[describe(key), describe(item)] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [describe(item) for item in value]}
    if isinstance(value, np.ndarray):
        return {"ndarray": data_hash(value)}
    if isinstance(value, np.random.RandomState):
        return {"RandomState": data_hash(value.get_state()[1])}
    if isinstance(value, float) and value != value:
        return "nan"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if callable(value):
        return {"callable": _qualified_name(value)}
    if hasattr(value, "__dict__"):
        return {"object": _qualified_name(type(value)), "state": describe(vars(value))}
    return {"repr": repr(value)}


def _qualified_name(obj):
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def data_hash(*values):
    """Content hash of arrays, sparse matrices and pandas objects."""
    import joblib

    return joblib.hash(values)


def fingerprint(description):
    """Short hex digest of a JSON-able description."""
    text = json.dumps(description, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
