"""The body of a ``%%mempamal`` cell, run through IPython like any other cell.

The body is IPython code, not plain Python: ``files = !ls``, ``%time ...``,
``%load_ext ...`` or ``estimator?`` work there as in any cell, because the
body goes through the shell's own input transformers (``!`` and ``%`` become
calls on ``get_ipython()``) and AST transformers before it is executed in the
user namespace.
"""

import ast
import sys

from IPython.core.error import UsageError


def assigned_names(cell):
    r"""Names a cell body binds (assignments, imports, loop targets...).

    ``cell`` is Python source (a body IPython has transformed); source that
    does not parse binds nothing.

    Examples
    --------
    >>> sorted(assigned_names("cv = 3\nfrom numpy import logspace as grid\nfor i in []: pass"))
    ['cv', 'grid', 'i']
    """
    try:
        tree = ast.parse(cell)
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def run_cell_body(shell, cell, magic="%%mempamal"):
    r"""Run ``cell`` in ``shell``'s user namespace as IPython runs a cell; the names it set.

    The returned names are those the body assigns (read from the transformed
    source) and those whose value it changed by other means, such as
    ``%time cv = 3``.  If the body fails, the user sees the traceback of
    their own lines (numbered as in the cell, below the ``%%mempamal``
    line) and a one-line :class:`~IPython.core.error.UsageError` is raised,
    so the caller builds nothing.

    Examples
    --------
    >>> from IPython.core.interactiveshell import InteractiveShell  # needs an IPython shell  # doctest: +SKIP
    >>> shell = InteractiveShell.instance()                          # needs an IPython shell  # doctest: +SKIP
    >>> sorted(run_cell_body(shell, "files = !ls\ncv = 3"))          # needs an IPython shell  # doctest: +SKIP
    ['cv', 'files']
    """
    namespace = shell.user_ns
    before = dict(namespace)
    try:
        transformed = shell.transform_cell(cell)
        # Blank lines stand for the %%mempamal line and for the leading blank
        # lines IPython's transformers drop, so line numbers match the cell.
        source = "\n" * (1 + max(_leading_blank_lines(cell) - _leading_blank_lines(transformed), 0)) + transformed
        # Cached under the cell's In[n] (run_cell counted it already) so that
        # tracebacks show the cell's lines, as IPython does for any cell.
        filename = shell.compile.cache(source, max(shell.execution_count - 1, 0), raw_code="\n" + cell)
        tree = shell.transform_ast(shell.compile.ast_parse(source, filename=filename))
        exec(shell.compile(tree, filename, "exec"), shell.user_global_ns, namespace)
    except Exception as exc:
        _show_user_traceback(shell, sys.exc_info())
        raise UsageError(f"{magic}: the cell raised {type(exc).__name__}; nothing was built.") from None
    rebound = {name for name, value in namespace.items() if name not in before or before[name] is not value}
    return assigned_names(source) | rebound


def _leading_blank_lines(text):
    lines = text.splitlines()
    return next((number for number, line in enumerate(lines) if line.strip()), len(lines))


def _show_user_traceback(shell, exc_info):
    kind, value, traceback = exc_info
    if traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next  # from the user's first line, not this module's exec
    shell.showtraceback((kind, value, traceback), tb_offset=0)
