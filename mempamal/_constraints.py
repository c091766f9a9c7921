"""One validator for every public argument: declarative constraints, scikit-learn's message shape.

A function lists what each of its arguments may be (scikit-learn's
``_parameter_constraints`` style) and calls :func:`validate_params` before
doing anything; a value that satisfies none of its constraints raises
:class:`mempamal.exceptions.InvalidParameterError` (a ``ValueError`` and a
``TypeError``) with one message shape::

    The 'cv' parameter of Experiment must be an int in the range [2, inf), a CV splitter or an iterable; got 'abc' instead.

A constraint is one of:

- an :class:`Interval` (``Interval(numbers.Integral, 1, None, closed="left")``),
- :class:`StrOptions` (``StrOptions({"auto"})``),
- a name: ``"boolean"``, ``"array-like"``, ``"cv_object"``, ``"path"``,
  ``"random_state"``, ``"callable"`` (the builtin :func:`callable` too),
- ``None`` (the value ``None`` itself),
- a type (any instance of it; ``bool`` is never taken for an ``int``),
- :class:`HasMethods` (an object with these methods),
- :class:`Predicate` (any test, with the words that describe it).

Rules that relate several arguments stay code, but raise through
:func:`invalid` (free wording) or :func:`raise_invalid` (the same shape).

This module imports nothing of mempamal but :mod:`mempamal.exceptions`, so
every layer (store, backends, api) may validate with it.

Examples
--------
>>> import numbers
>>> constraints = {"n_iter": [Interval(numbers.Integral, 1, None, closed="left")]}
>>> validate_params({"n_iter": 0}, constraints, "Experiment")
Traceback (most recent call last):
...
mempamal.exceptions.InvalidParameterError: The 'n_iter' parameter of Experiment must be an int in the range [1, inf); got 0 instead.
"""

import numbers
import os

import numpy as np

from .exceptions import InvalidParameterError

__all__ = ["Constraint", "HasMethods", "Interval", "Predicate", "StrOptions", "describe_value",
           "invalid", "make_constraint", "raise_invalid", "validate_params"]

#: Longer reprs are cut in messages (a whole array or DataFrame says nothing useful).
_REPR_LIMIT = 80


class Constraint:
    """What an argument may be: :meth:`accepts` tests a value, ``str()`` says it in words.

    Examples
    --------
    >>> str(make_constraint("boolean")), make_constraint("boolean").accepts(True)
    ('a bool', True)
    """

    def accepts(self, value):
        raise NotImplementedError

    def __str__(self):
        raise NotImplementedError


class Predicate(Constraint):
    """Any test: ``test(value)`` true means accepted; ``description`` says what it accepts.

    Examples
    --------
    >>> even = Predicate(lambda v: isinstance(v, int) and v % 2 == 0, "an even int")
    >>> even.accepts(4), even.accepts(3), str(even)
    (True, False, 'an even int')
    """

    def __init__(self, test, description):
        self.test = test
        self.description = description

    def accepts(self, value):
        return bool(self.test(value))

    def __str__(self):
        return self.description


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


class Interval(Constraint):
    """A number in a range: ``type`` is ``numbers.Integral`` or ``numbers.Real``; None bounds are infinite.

    ``closed`` is ``"left"``, ``"right"``, ``"both"`` or ``"neither"``, as
    scikit-learn's ``Interval``.  Booleans are never numbers here.

    Examples
    --------
    >>> positive = Interval(numbers.Real, 0, None, closed="neither")
    >>> positive.accepts(0.5), positive.accepts(0), str(positive)
    (True, False, 'a float in the range (0, inf)')
    """

    def __init__(self, type, left, right, *, closed):
        if type not in (numbers.Integral, numbers.Real):
            raise ValueError(f"Interval's type must be numbers.Integral or numbers.Real; got {type!r}.")
        if closed not in ("left", "right", "both", "neither"):
            raise ValueError(f"Interval's closed must be 'left', 'right', 'both' or 'neither'; got {closed!r}.")
        self.type, self.left, self.right, self.closed = type, left, right, closed

    def accepts(self, value):
        if not (_is_int(value) if self.type is numbers.Integral else _is_real(value)):
            return False
        if value != value:  # NaN is in no range
            return False
        if self.left is not None:
            if value < self.left or (value == self.left and self.closed in ("right", "neither")):
                return False
        if self.right is not None:
            if value > self.right or (value == self.right and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self):
        kind = "an int" if self.type is numbers.Integral else "a float"
        left = "-inf" if self.left is None else self.left
        right = "inf" if self.right is None else self.right
        opening = "[" if self.closed in ("left", "both") else "("
        closing = "]" if self.closed in ("right", "both") else ")"
        return f"{kind} in the range {opening}{left}, {right}{closing}"


class StrOptions(Constraint):
    """One of a set of strings.

    Examples
    --------
    >>> str(StrOptions({"raise"})), StrOptions({"b", "a"}).accepts("a")
    ("a str among {'raise'}", True)
    """

    def __init__(self, options):
        # A set is shown sorted; a sequence keeps its order (the most common first).
        self.options = sorted(options) if isinstance(options, (set, frozenset)) else list(options)

    def accepts(self, value):
        return isinstance(value, str) and value in self.options

    def __str__(self):
        return "a str among {" + ", ".join(repr(o) for o in self.options) + "}"


class HasMethods(Constraint):
    """An object with every one of ``methods`` (a name or a list of names).

    Examples
    --------
    >>> splitter = HasMethods(["split", "get_n_splits"])
    >>> str(splitter)
    "an object implementing 'split' and 'get_n_splits'"
    """

    def __init__(self, methods):
        self.methods = [methods] if isinstance(methods, str) else list(methods)

    def accepts(self, value):
        return all(callable(getattr(value, name, None)) for name in self.methods)

    def __str__(self):
        names = [repr(name) for name in self.methods]
        joined = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        return f"an object implementing {joined}"


class _InstanceOf(Constraint):
    def __init__(self, kind):
        self.kind = kind

    def accepts(self, value):
        if self.kind is int or self.kind is float:
            return (_is_int if self.kind is int else _is_real)(value)
        return isinstance(value, self.kind)

    def __str__(self):
        module = self.kind.__module__
        name = self.kind.__qualname__ if module == "builtins" else f"{module}.{self.kind.__qualname__}"
        return {"int": "an int", "float": "a float", "str": "a str", "dict": "a dict",
                "list": "a list"}.get(name, f"an instance of {name!r}")


def _is_array_like(value):
    # A string has a length but is one value, not a sequence of samples.
    if isinstance(value, (str, bytes)) or getattr(value, "ndim", 1) == 0:
        return False
    return hasattr(value, "__len__") or hasattr(value, "shape")


def _is_cv(value):
    if _is_int(value):
        return value >= 2
    if callable(getattr(value, "split", None)) and callable(getattr(value, "get_n_splits", None)):
        return True
    return not isinstance(value, str) and hasattr(value, "__iter__")


_NAMED = {
    "boolean": Predicate(lambda v: isinstance(v, (bool, np.bool_)), "a bool"),
    "array-like": Predicate(_is_array_like, "an array-like"),
    "cv_object": Predicate(_is_cv, "an int in the range [2, inf), a CV splitter or an iterable"),
    "path": Predicate(lambda v: isinstance(v, (str, os.PathLike)), "a path (str or os.PathLike)"),
    "random_state": Predicate(
        lambda v: (_is_int(v) and 0 <= v <= 2**32 - 1) or isinstance(v, np.random.RandomState),
        "an int in the range [0, 4294967295], an instance of 'numpy.random.RandomState'"),
    "callable": Predicate(callable, "a callable"),
}


def make_constraint(constraint):
    """The :class:`Constraint` for any accepted spelling (name, type, None, callable, Constraint).

    Examples
    --------
    >>> str(make_constraint(None)), str(make_constraint(dict)), str(make_constraint(callable))
    ('None', 'a dict', 'a callable')
    """
    if isinstance(constraint, Constraint):
        return constraint
    if constraint is None:
        return Predicate(lambda v: v is None, "None")
    if constraint is callable:
        return _NAMED["callable"]
    if isinstance(constraint, str):
        if constraint not in _NAMED:
            raise ValueError(f"Unknown constraint {constraint!r}; known names are {sorted(_NAMED)}.")
        return _NAMED[constraint]
    if isinstance(constraint, type):
        return _InstanceOf(constraint)
    raise TypeError(f"Not a constraint: {constraint!r}.")


def describe_value(value):
    """``repr(value)``, cut when long (a whole array says nothing in a message).

    Examples
    --------
    >>> describe_value("abc")
    "'abc'"
    >>> describe_value(list(range(100)))
    'list [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 1...'
    """
    if isinstance(value, type):
        return f"the class {value.__qualname__}"
    text = repr(value)
    return text if len(text) <= _REPR_LIMIT else f"{type(value).__name__} {text[:_REPR_LIMIT - 20]}..."


def _join(words):
    words = list(words)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def invalid(message):
    """The :class:`InvalidParameterError` of a rule no single constraint says (to ``raise``).

    Examples
    --------
    >>> raise invalid("The 'a' and 'b' parameters of f cannot both be given.")
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'a' and 'b' parameters of f cannot both be given.
    """
    return InvalidParameterError(message)


def raise_invalid(name, owner, expected, value, detail=""):
    """Raise the standard message: ``name`` of ``owner`` must be ``expected``; got ``value``.

    ``owner`` may be None (the function is named by the context);
    ``detail`` is added after "instead" (a hint, the cause).

    Examples
    --------
    >>> raise_invalid("timeout", "Run.wait", "a float in the range [0, inf) or None", -1)
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'timeout' parameter of Run.wait must be a float in the range [0, inf) or None; got -1 instead.
    """
    of = f" of {owner}" if owner else ""
    raise InvalidParameterError(
        f"The {name!r} parameter{of} must be {expected}; got {describe_value(value)} instead{detail}.")


def validate_params(params, constraints, owner):
    """Check each of ``params`` (name -> value) against ``constraints`` (name -> list); raise on the first bad one.

    A value is accepted when it satisfies any constraint of its list.
    Names absent from ``params`` are not checked; a name of ``params``
    without constraints is a programming error.

    Examples
    --------
    >>> validate_params({"predict": "proba"}, {"predict": [StrOptions({"predict", "predict_proba"}), None]},
    ...                 "Experiment")
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'predict' parameter of Experiment must be a str among {'predict', 'predict_proba'} or None; got 'proba' instead.
    """
    for name, value in params.items():
        allowed = [make_constraint(c) for c in constraints[name]]
        if not any(constraint.accepts(value) for constraint in allowed):
            raise_invalid(name, owner, _join(str(c) for c in allowed), value)
