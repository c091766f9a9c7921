"""Refuse, before any process starts, a script whose run would start again in every worker.

Worker processes started by ``multiprocessing``'s *spawn* method (distributed's
nannies, which the ``dask`` backend's private ``LocalCluster`` uses) import the
script that started them again, as ``__mp_main__``.  A script that runs its
experiment at top level, outside ``if __name__ == "__main__":``, then starts
the run again in each worker, which starts workers of its own...: distributed
gives up with ~120 lines ending in "Nanny failed to start".  Python's
documentation names the cure ("Safe importing of main module"); this module
says it in one line, naming the script and the line, before anything starts.

Jupyter kernels and ``python -c`` have no script to import again: nothing is
checked there.
"""

import ast
import sys

from ..exceptions import SetupError

GUARD_HINT = 'put the code that runs the experiment under `if __name__ == "__main__":`'


def script_call_line(frames=None):
    """``(path, line)`` where a script's top-level code called into mempamal, or None.

    None when the call comes from a function, a notebook or ``python -c``.

    Examples
    --------
    >>> where = script_call_line()   # None in a notebook; under pytest, pytest's own __main__
    >>> where is None or where[0].endswith(".py")
    True
    """
    frame = sys._getframe(1) if frames is None else frames
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") in ("__main__", "__mp_main__"):
            path = frame.f_globals.get("__file__")
            return (path, frame.f_lineno) if path else None
        frame = frame.f_back
    return None


def guarded_lines(source):
    """The line numbers inside ``if __name__ == "__main__":`` blocks of ``source``.

    Examples
    --------
    >>> sorted(guarded_lines('x = 1\\nif __name__ == "__main__":\\n    run()\\n    done()\\n'))
    [3, 4]
    """
    lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If) and _is_main_test(node.test):
            for statement in node.body:
                lines.update(range(statement.lineno, statement.end_lineno + 1))
    return lines


def _is_main_test(test):
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [side.id for side in sides if isinstance(side, ast.Name)]
    strings = [side.value for side in sides if isinstance(side, ast.Constant)]
    return names == ["__name__"] and strings == ["__main__"]


def check_main_guard(backend_name):
    """Raise :class:`~mempamal.exceptions.SetupError` when a script's unguarded top level starts spawned workers.

    Examples
    --------
    >>> check_main_guard("dask")       # called from no script: nothing to refuse
    """
    where = script_call_line(sys._getframe(1))
    if where is None:
        return
    path, line = where
    try:
        with open(path, encoding="utf-8") as handle:
            guarded = guarded_lines(handle.read())
    except (OSError, SyntaxError, ValueError):
        return  # no readable source: nothing can be said for sure
    if line in guarded:
        return
    raise SetupError(
        f"The {backend_name!r} backend starts worker processes that import {path} again: its line {line}, "
        f"outside `if __name__ == \"__main__\":`, would start the run again in each of them. "
        f"{GUARD_HINT[0].upper()}{GUARD_HINT[1:]}.")
