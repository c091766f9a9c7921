"""The grid syntax of the experiment builder: one parameter per line.

::

    clf__C: log(-3, 3, 7)          # 7 values from 1e-3 to 1e3
    clf__gamma: lin(0.1, 1.0, 4)   # 4 evenly spaced values
    clf__kernel: ["rbf", "linear"] # any Python list literal
"""

import ast
import re

import numpy as np

_RANGE = re.compile(r"^(log|lin)\(\s*([^,]+),\s*([^,]+),\s*(\d+)\s*\)$")


def parse_grid_text(text):
    """``{name: values}`` from the builder's grid text; ValueError names the bad line.

    Examples
    --------
    >>> parse_grid_text("C: log(-1, 1, 3)\\nkernel: ['rbf']")
    {'C': array([ 0.1,  1. , 10. ]), 'kernel': ['rbf']}
    """
    grid = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, spec = line.partition(":")
        name, spec = name.strip(), spec.strip()
        if not sep or not name or not spec:
            raise ValueError(f"grid line {number} must read 'name: values'; got {raw!r}.")
        grid[name] = _values(spec, number)
    return grid


def _values(spec, number):
    match = _RANGE.match(spec)
    if match:
        kind, start, stop, count = match.groups()
        start, stop, count = float(start), float(stop), int(count)
        if count < 1:
            raise ValueError(f"grid line {number}: the count must be >= 1.")
        return np.logspace(start, stop, count) if kind == "log" else np.linspace(start, stop, count)
    try:
        values = ast.literal_eval(spec)
    except (ValueError, SyntaxError):
        raise ValueError(f"grid line {number}: expected a list like [1, 2], log(a, b, n) or lin(a, b, n); "
                         f"got {spec!r}.") from None
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"grid line {number}: expected a non-empty list; got {spec!r}.")
    return list(values)
