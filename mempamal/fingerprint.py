"""Stable fingerprints of an experiment and its data.

A rebuilt workdir may reuse finished work only if what runs and the data are
the same.  Two views are combined: a structural description (estimator class
and parameters, arrays by content hash: readable, session-independent) and
:func:`code_digest`, the digest of the cloudpickle bytes of what runs, so a
different lambda or an edited notebook class gives a different fingerprint
even when names and parameters are equal.
"""

import hashlib
import io
import json
import types
from collections import ChainMap

import numpy as np


def describe(value):
    """A JSON-able, session-independent description of ``value``.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> describe(LogisticRegression(C=2.0))["params"]["C"]
    2.0
    """
    if all(hasattr(value, name) for name in ("rvs", "dist", "args", "kwds")):
        # A frozen scipy.stats distribution: its generator object prints
        # with its address and holds the global RandomState, neither of
        # which says what it samples.
        return {"distribution": _qualified_name(type(value.dist)), "args": describe(list(value.args)),
                "kwds": describe(dict(value.kwds))}
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
    """Content hash of arrays, sparse matrices and pandas objects.

    Examples
    --------
    >>> import numpy as np
    >>> data_hash(np.arange(3)) == data_hash(np.arange(3)) != data_hash(np.arange(4))
    True
    """
    import joblib

    return joblib.hash(values)


def fingerprint(description):
    """Short hex digest of a JSON-able description.

    Examples
    --------
    >>> len(fingerprint({"cv": 5}))
    32
    >>> fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})   # key order does not matter
    True
    """
    text = json.dumps(description, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def code_digest(*objects):
    """Digest of the cloudpickle bytes of ``objects``, minus session noise.

    cloudpickle pickles lambdas, ``__main__`` and notebook classes by value
    (their bytecode), so an edited method or another lambda changes the
    digest.  What changes from one session to the next without changing what
    runs is left out: the random id cloudpickle gives each class it pickles
    by value, the file names and line numbers of code objects (a
    notebook cell gets a new file name in every kernel) and the ``__file__``
    of the script that defined a function.  Objects pickled by
    reference (importable functions and classes) count by their name, as for
    pickle itself.

    Examples
    --------
    >>> code_digest(lambda y, p: 1.0) == code_digest(lambda y, p: 1.0)
    True
    >>> code_digest(lambda y, p: 1.0) == code_digest(lambda y, p: 2.0)
    False
    """
    buffer = io.BytesIO()
    _NormalizedPickler(buffer, protocol=5).dump(objects)
    return hashlib.sha256(buffer.getvalue()).hexdigest()[:32]


def _code_marker(*fields):
    """Stands for a code object in :func:`code_digest` pickles (never called)."""
    raise RuntimeError("code_digest pickles are fingerprints, not meant to be loaded")


def _code_text(value):
    """Canonical text of a code object or constant, built from values only.

    Object identity must not show: the compiler shares equal tuples between
    code objects (``__init__``'s names and ``fit``'s keyword names, say),
    and pickle memoizes shared objects, so once cloudpickle has unpickled a
    ``__main__`` class in the defining process -- which replaces the class's
    methods by rebuilt, unshared copies -- the same code would pickle to
    other bytes.
    """
    if isinstance(value, types.CodeType):
        fields = (value.co_name, value.co_argcount, value.co_posonlyargcount, value.co_kwonlyargcount,
                  value.co_flags, value.co_code, value.co_consts, value.co_names, value.co_varnames,
                  value.co_freevars, value.co_cellvars)
        return "code(" + ", ".join(_code_text(field) for field in fields) + ")"
    if isinstance(value, tuple):
        return "(" + ", ".join(_code_text(item) for item in value) + ",)"
    if isinstance(value, frozenset):
        # Frozenset constants (``x in {"a", "b"}``) iterate in hash order,
        # which changes between sessions for strings.
        return "frozenset(" + ", ".join(sorted(_code_text(item) for item in value)) + ")"
    return f"{type(value).__name__}:{value!r}"


def _normalized_code_reduce(code):
    return _code_marker, (_code_text(code),)


def _make_pickler_class():
    import cloudpickle
    from cloudpickle import cloudpickle as internals

    class NormalizedPickler(cloudpickle.Pickler):
        dispatch_table = ChainMap({types.CodeType: _normalized_code_reduce}, cloudpickle.Pickler.dispatch_table)

        def reducer_override(self, obj):
            reduced = super().reducer_override(obj)
            if isinstance(obj, type) and isinstance(reduced, tuple) and len(reduced) > 2:
                # A class pickled by value: drop its per-session tracker id.
                tracker = getattr(internals, "_get_or_create_tracker_id", lambda cls: None)(obj)
                reduced = (reduced[0], tuple(None if arg == tracker else arg for arg in reduced[1]),
                           _without_slotnames(reduced[2])) + reduced[3:]
            elif isinstance(obj, types.FunctionType) and isinstance(reduced, tuple) and len(reduced) > 2:
                # A function pickled by value carries its module's __file__:
                # the same code run from another script is the same code.
                args = tuple({k: v for k, v in arg.items() if k not in ("__file__", "__path__")}
                             if isinstance(arg, dict) else arg for arg in reduced[1])
                reduced = (reduced[0], args) + reduced[2:]
            return reduced

    return NormalizedPickler


def _without_slotnames(state):
    # copyreg caches ``__slotnames__`` in a class the first time one of its
    # instances is pickled: a cache, not code.
    if isinstance(state, tuple) and state and isinstance(state[0], dict) and "__slotnames__" in state[0]:
        return ({k: v for k, v in state[0].items() if k != "__slotnames__"},) + state[1:]
    return state


class _LazyPickler:
    """Builds the pickler class on first use (keeps ``import mempamal`` light)."""

    cls = None

    def __call__(self, *args, **kwargs):
        if self.cls is None:
            self.cls = _make_pickler_class()
        return self.cls(*args, **kwargs)


_NormalizedPickler = _LazyPickler()
