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
    pickler = _NormalizedPickler(buffer, protocol=5)
    pickler.dump(objects)
    data = buffer.getvalue()
    if pickler.by_value:
        # Code pickled by value: its strings and constant tuples are shared
        # or not depending on interning (see _canonical_stream).  Only then,
        # so that the digests of importable code stay as they were.
        data = _canonical_stream(data).encode("utf-8")
    return hashlib.sha256(data).hexdigest()[:32]


_MEMO_PUTS = ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT")
_MEMO_GETS = ("GET", "BINGET", "LONG_BINGET")
_CONSTANTS = {"NONE": "None", "NEWTRUE": "True", "NEWFALSE": "False", "EMPTY_TUPLE": "()"}
# Opcodes pushing a string, bytes or number given as their argument.
_VALUES = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT", "STRING",
           "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "UNICODE",
           "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"}


def _canonical_stream(data):
    """The pickle ``data`` as text in which equal immutable values read the same.

    Pickle writes an object a second time as a reference to its first copy
    only when it is the *same* object.  Strings and tuples of them are
    shared or not by accident: names are interned when code is compiled, but
    not when cloudpickle rebuilds a ``__main__`` class after a load (and
    cloudpickle releases differ there).  Here every string, number, bytes
    and tuple or frozenset of those is written out in full wherever it
    occurs (frozensets sorted: they iterate in hash order); other objects
    keep their references (their sharing is structure, which pickling
    preserves).  Each remaining opcode is written with the values it takes
    from the stack (``@`` for an object already written).
    """
    import pickletools

    out, stack, memo, mark = [], [], {}, object()
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in ("PROTO", "FRAME", "STOP"):
            continue
        if name in _MEMO_PUTS:
            index = len(memo) if name == "MEMOIZE" else arg
            # A value is remembered as its text; an object by its number.
            memo[index] = stack[-1] if isinstance(stack[-1], str) else len(out)
            continue
        if name in _MEMO_GETS:
            value = memo[arg]
            if not isinstance(value, str):
                out.append(f"get {value}")
                value = ...
            stack.append(value)
            continue
        if name == "MARK":
            stack.append(mark)
            continue
        taken = _pop_arguments(op, stack, mark)
        values = all(isinstance(item, str) for item in taken)
        if name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name in _VALUES:
            stack.append(f"{type(arg).__name__}:{arg!r}")
        elif name.startswith("TUPLE") and values:
            stack.append("(" + ", ".join(taken) + ",)")
        elif name == "FROZENSET" and values:
            stack.append("frozenset(" + ", ".join(sorted(taken)) + ")")
        else:
            written = [item if isinstance(item, str) else "@" for item in taken]
            out.append(f"{name} {arg!r} [{', '.join(sorted(written) if name == 'ADDITEMS' else written)}]")
            stack.extend(... for _ in op.stack_after)
    out.extend(item for item in stack if isinstance(item, str))
    return "\n".join(out)


def _pop_arguments(op, stack, mark):
    """Pop what ``op`` takes from the simulated stack (values or ``...`` for objects), in stack order."""
    import pickletools

    before = list(op.stack_before)
    taken = []
    if pickletools.markobject in before:
        start = len(stack) - 1 - stack[::-1].index(mark)
        taken = stack[start + 1:]
        del stack[start:]
        before = before[:before.index(pickletools.markobject)]
    if before:
        taken = stack[len(stack) - len(before):] + taken
        del stack[len(stack) - len(before):]
    return taken


def _code_marker(*fields):
    """Stands for a code object in :func:`code_digest` pickles (never called)."""
    from ..exceptions import SetupError

    raise SetupError("code_digest pickles are fingerprints, not meant to be loaded")


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

        by_value = False

        def reducer_override(self, obj):
            reduced = super().reducer_override(obj)
            if isinstance(obj, (type, types.FunctionType)) and isinstance(reduced, tuple):
                self.by_value = True
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
