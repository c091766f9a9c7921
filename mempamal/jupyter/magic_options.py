"""The options of ``%mempamal``: one parser per command, shared option groups as decorators.

As in ipyparallel's magics (``exec_args``, ``output_args``), each group below
adds the same options to every command it decorates, so ``-b``/``-n`` mean
the same on ``%%mempamal`` and ``%mempamal resume``, and a command has only
the options it uses: ``%mempamal status --preview`` is refused in one line
naming the option and the command, not ignored.
"""

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

HELP_FLAGS = ("-h", "--help")


def _with(func, arguments):
    # Applied last-first: construct_parser reverses the decorators, so the
    # options appear in the help in the order written here.
    for decorator in reversed(arguments):
        func = decorator(func)
    return func


def backend_options(func):
    """Add ``-b BACKEND`` and ``-n N`` (where a run goes, on how many workers).

    Examples
    --------
    >>> @command("demo", {})
    ... @backend_options
    ... def demo(self, args):
    ...     "Run somewhere."
    >>> parse_options(demo, "-b dask -n 2")
    Namespace(backend='dask', n_jobs=2)
    """
    return _with(func, [
        argument("-b", "--backend", default=None, metavar="BACKEND",
                 help="local, ipyparallel, dask, slurm, soma-workflow or a registered name (default: local)"),
        argument("-n", "--n-jobs", type=int, default=None, metavar="N",
                 help="workers, -1 = all cores (default: -1)"),
    ])


def output_option(func):
    """Add ``-o NAME``, the notebook variable receiving the Results.

    Examples
    --------
    >>> @command("demo", {})
    ... @output_option
    ... def demo(self, args):
    ...     "Store something."
    >>> parse_options(demo, "-o res").output
    'res'
    """
    return _with(func, [
        argument("-o", "--output", default=None, metavar="NAME",
                 help="the notebook variable receiving the Results (default: mempamal_results)"),
    ])


def workdir_argument(func):
    """Add the optional ``WORKDIR`` (default: the last one a ``%%mempamal`` cell used).

    Examples
    --------
    >>> @command("demo", {})
    ... @workdir_argument
    ... def demo(self, args):
    ...     "Look at a workdir."
    >>> parse_options(demo, "runs/a").workdir, parse_options(demo, "").workdir
    ('runs/a', None)
    """
    return _with(func, [
        argument("workdir", nargs="?", default=None, metavar="WORKDIR",
                 help="a workdir (default: the last one a %%%%mempamal cell used)"),
    ])


def command(name, registry):
    """Build the parser of ``%mempamal NAME`` from the option decorators below it; file it in ``registry``.

    The parser refuses abbreviations (``--prev``), so every option is spelt
    as the help shows it.  ``name`` ``"%mempamal"`` is the cell magic itself.

    Examples
    --------
    >>> commands = {}
    >>> @command("status", commands)
    ... @workdir_argument
    ... def status(self, args):
    ...     "Task counts."
    >>> list(commands), usage(status)
    (['status'], '%mempamal status [WORKDIR]')
    """
    def decorate(func):
        doc = func.__doc__
        func = magic_arguments(name if name.startswith("%") else f"mempamal {name}")(func)
        func.__doc__ = doc  # magic_arguments put the argparse help there; the parser keeps it
        func.parser.allow_abbrev = False
        registry[name] = func
        return func
    return decorate


def usage(func):
    """The one-line usage of the command ``func`` (``%mempamal status [WORKDIR]``).

    Examples
    --------
    >>> @command("gui", {})
    ... def gui(self, args):
    ...     "The form."
    >>> usage(gui)
    '%mempamal gui'
    """
    return " ".join(func.parser.format_usage().replace("::", "").split())


def parse_options(func, argstring):
    """The options of the command ``func`` in ``argstring``; a mistake is one line naming it.

    Raises :class:`~IPython.core.error.UsageError` with the command, what
    argparse found wrong (``unrecognized arguments: --preview``) and the
    command's usage.

    Examples
    --------
    >>> @command("status", {})
    ... @workdir_argument
    ... def status(self, args):
    ...     "Task counts."
    >>> parse_options(status, "wd --preview")              # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    IPython.core.error.UsageError: %mempamal status: unrecognized arguments: --preview (usage: ...)
    """
    try:
        return func.parser.parse_argstring(argstring)
    except (UsageError, ValueError) as exc:  # ValueError: an unclosed quote
        raise UsageError(f"%{func.parser.prog}: {exc} (usage: {usage(func)})") from None


def split_command(line, registry):
    """``(command, rest of the line)``: ``"cluster start -n 2"`` -> ``("cluster start", "-n 2")``.

    Examples
    --------
    >>> split_command("cluster start -n 2", {"cluster start": None, "status": None})
    ('cluster start', '-n 2')
    >>> split_command("status", {"status": None})
    ('status', '')
    """
    for count in (2, 1):  # two-word commands first ("cluster start")
        words = line.split(None, count)
        name = " ".join(words[:count])
        if len(words) >= count and name in registry and not name.startswith("%"):
            return name, words[count] if len(words) > count else ""
    commands = [name for name in registry if not name.startswith("%")]
    first = line.split(None, 1)[0] if line.strip() else ""
    hint = "; options come after it, and those of a run (-n, -w...) on a %%mempamal cell" if first[:1] == "-" else ""
    raise UsageError(f"%mempamal needs a command among {commands}; got {first!r}{hint} (%mempamal --help lists them).")


def command_help(func):
    """The help of one command: its usage, what it does, each option.

    Examples
    --------
    >>> @command("status", {})
    ... @workdir_argument
    ... def status(self, args):
    ...     "Task counts and the graph."
    >>> print(command_help(status))              # doctest: +NORMALIZE_WHITESPACE
    %mempamal status [WORKDIR]
        Task counts and the graph.
        WORKDIR   a workdir (default: the last one a %%mempamal cell used)
    """
    import textwrap

    def fill(text, indent):
        return textwrap.fill(" ".join(text.replace("``", "").split()), width=100, initial_indent=indent,
                             subsequent_indent=" " * len(indent))

    # The parser's description is the command's docstring: its paragraphs before Examples.
    paragraphs = func.parser.description.split("Examples\n")[0].strip().split("\n\n")
    lines = [usage(func)] + [fill(paragraph, "    ") for paragraph in paragraphs]
    for action in func.parser._actions:
        if action.option_strings:
            flags = ", ".join(action.option_strings) + (f" {action.metavar}" if action.nargs != 0 else "")
        else:
            flags = action.metavar
        lines.append(fill(action.help.replace("%%", "%"), f"    {flags:<24} "))
    return "\n".join(lines)
