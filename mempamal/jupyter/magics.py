"""``%mempamal`` and ``%%mempamal``: thin magics over the public API.

``%%mempamal [-b BACKEND] [-n N] [-w WORKDIR] [-o NAME] [-a] [--preview]
[--estimate] [--export FMT:PATH] [--overwrite] [--reuse]`` runs the cell body through IPython in the
user namespace (``!ls``, ``%time`` and line magics work there); the body
defines ``estimator``, ``X``, ``y`` and optionally ``groups``, ``params``
(metadata for ``build``), ``cv``, ``inner_cv``, ``param_grid`` or
``param_distributions`` and ``n_iter``, ``scoring``, ``refit``,
``n_permutations``, ``random_state``, ``error_score``, ``final_fit``,
``return_estimator``, ``predict``, ``return_train_score``.  The magic builds
the workflow, previews or runs it, shows the summary and the scores plot, and
stores the Results in ``NAME``.  ``estimator``, ``X`` and ``y`` may come from
earlier cells; the optional settings are read only when the cell itself sets
them, so a ``param_grid`` left over from another experiment never changes
this one.

``%%mempamal --async`` (``-a``) submits the run and returns at once: the
cell shows a live panel, ``NAME`` holds the :class:`mempamal.Run` until
``%mempamal wait`` replaces it with the Results.

Line commands, each with its own parser (:mod:`.magic_options`) so an option
a command does not use is refused: ``status``, ``results``, ``wait``,
``cancel``, ``attach`` ``[WORKDIR]``, ``export FMT PATH [WORKDIR]``,
``resume [WORKDIR] [-b BACKEND] [-n N]``, ``estimate [WORKDIR] [-b BACKEND] [-n N]``, ``gui``, ``cluster start [-n N]``,
``cluster stop``; ``%mempamal --help`` (or ``%mempamal?``) lists every
command with its options, ``%mempamal COMMAND -h`` one of them.

Every scenario here is reachable from plain Python: the magic only calls
:class:`mempamal.Experiment`, :class:`mempamal.Workflow` and
:class:`mempamal.Results`.
"""

import functools
import inspect
import textwrap

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument
from IPython.display import display

from .cell_body import run_cell_body
from .magic_options import (HELP_FLAGS, backend_options, command, command_help, output_option, parse_options,
                            split_command, workdir_argument)
from .static import preview_static, show_figure

#: Cell variables handed to Experiment (beyond estimator, X, y, groups).
EXPERIMENT_VARIABLES = ("param_grid", "cv", "inner_cv", "scoring", "refit", "n_permutations",
                        "random_state", "error_score", "param_distributions", "n_iter", "final_fit",
                        "return_estimator", "predict", "return_train_score")
#: Cell variables handed to Experiment.build (metadata such as sample_weight).
BUILD_VARIABLES = ("params",)
#: ``%%mempamal`` (key ``"%mempamal"``) and every ``%mempamal COMMAND``, in help order: their decorated methods.
COMMANDS = {}
DEFAULT_OUTPUT = "mempamal_results"


def help_text():
    """What ``%mempamal --help`` and ``%mempamal?`` show: every command with its options.

    Examples
    --------
    >>> "%mempamal status [WORKDIR]" in help_text()
    True
    """
    return ("\n\n".join(command_help(func) for func in COMMANDS.values())
            + "\n\n%mempamal --help    this text; %mempamal COMMAND -h    one command")


def experiment_from_namespace(namespace, defined=None):
    """``(Experiment, X, y, groups)`` from the variables a cell defined.

    ``estimator``, ``X`` and ``y`` must be in ``namespace``; the optional
    settings (``groups`` and :data:`EXPERIMENT_VARIABLES`) are used only if
    their name is in ``defined`` (default: every name of ``namespace``).

    Examples
    --------
    >>> ns = {"estimator": estimator, "X": X, "y": y, "cv": 3}
    >>> experiment, X, y, groups = experiment_from_namespace(ns)
    >>> experiment.cv, groups is None
    (3, True)
    """
    import mempamal as mp

    missing = [name for name in ("estimator", "X", "y") if name not in namespace]
    if missing:
        raise UsageError(f"%%mempamal: the cell must define 'estimator', 'X' and 'y'; missing {missing}.")
    defined = set(namespace) if defined is None else set(defined)
    options = {name: namespace[name] for name in EXPERIMENT_VARIABLES if name in namespace and name in defined}
    ignored = [name for name in EXPERIMENT_VARIABLES + BUILD_VARIABLES + ("groups",)
               if name in namespace and name not in defined]
    if ignored:
        print(f"%%mempamal: not set in this cell, so not used: {', '.join(ignored)} (earlier cells' values)")
    try:
        experiment = mp.Experiment(namespace["estimator"], **options)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"%%mempamal: {exc}") from None
    groups = namespace["groups"] if "groups" in namespace and "groups" in defined else None
    return experiment, namespace["X"], namespace["y"], groups


def build_options_from_namespace(namespace, defined=None):
    """The keyword arguments of ``Experiment.build`` a cell set (:data:`BUILD_VARIABLES`).

    ``params`` (e.g. ``{"sample_weight": w}``) is metadata for the fits,
    passed to ``build`` like ``groups``, not to ``Experiment``.

    Examples
    --------
    >>> build_options_from_namespace({"params": {"sample_weight": [1, 2]}, "cv": 3})
    {'params': {'sample_weight': [1, 2]}}
    """
    defined = set(namespace) if defined is None else set(defined)
    return {name: namespace[name] for name in BUILD_VARIABLES if name in namespace and name in defined}


def _show_figure(display_object):
    show_figure(display_object.figure_)


@magics_class
class MempamalMagics(Magics):
    """The ``mempamal`` line and cell magic (see the module docstring).

    Examples
    --------
    >>> get_ipython().register_magics(MempamalMagics)                    # needs an IPython shell  # doctest: +SKIP
    >>> get_ipython().run_line_magic("mempamal", "--help")              # needs an IPython shell  # doctest: +SKIP
    """

    def __init__(self, shell):
        super().__init__(shell)
        self.last_workdir = None
        self.last_run = {"backend": "local", "n_jobs": -1}
        self.last_output = DEFAULT_OUTPUT
        self.cluster = None
        self.runs = {}  # workdir (absolute) -> the Run submitted or attached from this kernel

    @line_cell_magic
    def mempamal(self, line, cell=None):
        """Build, preview or run a mempamal experiment from a cell, or manage runs.

        Examples
        --------
        In a notebook, after ``%load_ext mempamal``::

            %%mempamal -n 2 -o res
            from sklearn.svm import SVC
            estimator, X, y, cv = SVC(), X, y, 3

            %mempamal status
        """
        if cell is None and line.strip() in HELP_FLAGS:
            print(help_text())
            return None
        name, rest = ("%mempamal", line) if cell is not None else split_command(line, COMMANDS)
        func = COMMANDS[name]
        if set(rest.split()) & set(HELP_FLAGS):  # `%mempamal status -h`, `%%mempamal -h`: that command's help
            print(command_help(func))
            return None
        if cell is not None:
            return self.run_cell(cell, parse_options(func, rest))
        return func(self, parse_options(func, rest))

    # ---------------------------------------------------------------- cell
    @command("%mempamal", COMMANDS)
    @backend_options
    @argument("-w", "--workdir", default=None, metavar="WORKDIR", help="the workdir (default: mempamal-runs/NAME)")
    @output_option
    @argument("-a", "--async", dest="submit", action="store_true",
              help="submit and return at once; NAME holds the Run (%%mempamal wait collects it)")
    @argument("--preview", action="store_true", help="show the task list and graph, run nothing")
    @argument("--estimate", action="store_true",
              help="run a small sample of the tasks (kept), predict the run's time and memory; run nothing else")
    @argument("--export", default=None, metavar="FMT:PATH", help="also export the graph (e.g. makefile:Makefile)")
    @argument("--overwrite", action="store_true", help="replace a workdir holding another experiment")
    @argument("--reuse", action="store_true",
              help="grow the experiment of the workdir: keep its finished tasks whose definition is unchanged")
    def run_cell(self, cell, args):
        """Run the cell body, build the workflow it defines, then preview, run or submit it.

        The body (IPython code: ``!ls``, ``%time``, line magics work) defines
        estimator, X, y and optionally groups, params, cv, inner_cv, param_grid
        or param_distributions and n_iter, scoring, refit, n_permutations,
        random_state, error_score, final_fit, return_estimator, predict,
        return_train_score. The Results (with -a, the Run) go to NAME.

        If the body fails, its traceback shows, then one UsageError line, and
        nothing is built.

        Examples
        --------
        >>> magics.run_cell("estimator = SVC(); cv = 3", parse_options(COMMANDS["%mempamal"], "-n 2"))  # needs an IPython shell  # doctest: +SKIP
        """
        namespace = self.shell.user_ns
        defined = run_cell_body(self.shell, cell)
        experiment, X, y, groups = experiment_from_namespace(namespace, defined=defined)
        output = args.output or DEFAULT_OUTPUT
        workdir = args.workdir or f"mempamal-runs/{output}"
        try:
            workflow = experiment.build(X, y, groups=groups, workdir=workdir, overwrite=args.overwrite,
                                        reuse=args.reuse, **build_options_from_namespace(namespace, defined))
        except FileExistsError as exc:
            raise UsageError(f"%%mempamal: {exc} (add --overwrite, or --reuse to keep what is unchanged)") from None
        except (TypeError, ValueError) as exc:
            raise UsageError(f"%%mempamal: {exc}") from None
        self.last_workdir = workdir
        self.last_run = {"backend": args.backend or "local", "n_jobs": -1 if args.n_jobs is None else args.n_jobs}
        if args.export:
            self._export(workflow, args.export)
        if args.preview:
            return self._preview(workflow)
        if args.estimate:
            return self._estimate(workflow, "%%mempamal")
        if args.submit:
            return self._submit(workflow, output)
        self._run(workflow, output)
        return None

    def _preview(self, workflow):
        display(preview_static(workflow))

    def _estimate(self, workflow, command):
        """Run the sample on the cell's backend and workers; print the estimate and return it."""
        options = self._run_options()
        try:
            estimate = workflow.estimate(backend=options.pop("backend"), n_jobs=options.pop("n_jobs"), **options)
        except (ValueError, ImportError) as exc:
            raise UsageError(f"{command}: {exc}") from None
        for warning in estimate.warnings:
            print(f"warning: {warning}")
        return estimate

    def _run_options(self):
        options = dict(self.last_run)
        if options["backend"] == "ipyparallel" and self.cluster is not None:
            options["client"] = self.cluster.client
        return options

    def _start(self, start, errors):
        """``start`` (``workflow.run`` or ``.submit``) with the cell's backend options; ``errors`` as UsageError."""
        options = self._run_options()
        try:
            return start(backend=options.pop("backend"), n_jobs=options.pop("n_jobs"), **options)
        except errors as exc:
            raise UsageError(f"%%mempamal: {exc}") from None

    def _run(self, workflow, output):
        from mempamal import WorkflowError

        # The cell blocks until the run ends: show a bar meanwhile (run's default is silent).
        results = self._start(functools.partial(workflow.run, progress=True), (WorkflowError, ValueError, ImportError))
        self._show_results(results, output)
        return results

    def _show_results(self, results, output):
        self.shell.user_ns[output] = results
        display(results)
        _show_figure(results.plot_scores())

    def _submit(self, workflow, output):
        from .panel import show_run

        run = self._start(workflow.submit, (ValueError, ImportError, TypeError))
        self.runs[str(workflow.workdir)] = run
        self.shell.user_ns[output] = run
        self.last_output = output
        show_run(run)
        print(f"submitted; the kernel is free. `%mempamal wait` puts the Results in {output!r}, "
              "`%mempamal cancel` stops the run.")

    def _export(self, workflow, spec):
        fmt, _, path = spec.partition(":")
        if not path:
            raise UsageError(f"--export expects FMT:PATH (e.g. makefile:Makefile); got {spec!r}.")
        try:
            print(f"exported {workflow.export(path, format=fmt)}")
        except (ValueError, ImportError) as exc:
            raise UsageError(f"%mempamal export: {exc}") from None

    # ---------------------------------------------------------------- line
    def _workflow(self, workdir, command):
        from mempamal import WorkdirError, Workflow

        workdir = workdir or self.last_workdir
        if workdir is None:
            raise UsageError(f"%mempamal {command}: give a WORKDIR (no %%mempamal cell has run yet).")
        try:
            return Workflow.open(workdir)
        except WorkdirError as exc:
            raise UsageError(f"%mempamal {command}: {exc}") from None

    @command("status", COMMANDS)
    @workdir_argument
    def _line_status(self, args):
        """Task counts and the graph of the workdir."""
        display(self._workflow(args.workdir, "status"))

    @command("results", COMMANDS)
    @workdir_argument
    @output_option
    def _line_results(self, args):
        """The summary and best parameters of the workdir's finished run; the Results go to NAME."""
        from mempamal import Results, WorkdirError

        workflow = self._workflow(args.workdir, "results")
        try:
            results = Results.load(workflow.workdir)
        except WorkdirError as exc:
            raise UsageError(f"%mempamal results: {exc}") from None
        self.shell.user_ns[args.output or DEFAULT_OUTPUT] = results
        display(results)

    def _submitted_run(self, workdir, command):
        workflow = self._workflow(workdir, command)
        run = self.runs.get(str(workflow.workdir))
        if run is None:
            raise UsageError(f"%mempamal {command}: no run of {workflow.workdir} was submitted or attached "
                             "from this kernel (use %%mempamal --async or %mempamal attach).")
        return run

    @command("wait", COMMANDS)
    @workdir_argument
    @output_option
    def _line_wait(self, args):
        """Wait for a run submitted with --async; its Results replace the Run (default NAME: the cell's)."""
        from mempamal import RunCancelled, WorkflowError

        run = self._submitted_run(args.workdir, "wait")
        try:
            results = run.wait()
        except (WorkflowError, RunCancelled, RuntimeError) as exc:
            raise UsageError(f"%mempamal wait: {exc}") from None
        self._show_results(results, args.output or self.last_output)  # else the name the --async cell used

    @command("cancel", COMMANDS)
    @workdir_argument
    def _line_cancel(self, args):
        """Stop a submitted run; finished tasks are kept (resume runs the rest)."""
        run = self._submitted_run(args.workdir, "cancel")
        run.cancel()
        print(f"{run.summary_line()}; finished tasks are kept (%mempamal resume runs the rest)")

    @command("attach", COMMANDS)
    @workdir_argument
    def _line_attach(self, args):
        """Follow a run started before a kernel restart (or by another process)."""
        from .panel import show_run

        workflow = self._workflow(args.workdir, "attach")
        run = self.runs.get(str(workflow.workdir))
        if run is None or run.done():  # a run of this kernel is shown again, not watched twice
            run = workflow.attach()
        if run is None:
            status = workflow.status()
            print(f"nothing is running in {workflow.workdir}: {status['done']}/{status['total']} tasks done")
            return None
        self.runs[str(workflow.workdir)] = run
        self.last_workdir = str(workflow.workdir)
        show_run(run)
        return None

    @command("export", COMMANDS)
    @argument("format", metavar="FMT", help="commands, shell, makefile or soma-workflow")
    @argument("path", metavar="PATH", help="the file to write")
    @workdir_argument
    def _line_export(self, args):
        """Write the workdir's graph for another runner."""
        self._export(self._workflow(args.workdir, "export"), f"{args.format}:{args.path}")

    @command("resume", COMMANDS)
    @workdir_argument
    @backend_options
    @output_option
    def _line_resume(self, args):
        """Run what is unfinished in the workdir, where the last cell ran it unless -b/-n say otherwise."""
        workflow = self._workflow(args.workdir, "resume")
        if args.backend is not None:
            self.last_run["backend"] = args.backend
        if args.n_jobs is not None:
            self.last_run["n_jobs"] = args.n_jobs
        self._run(workflow, args.output or DEFAULT_OUTPUT)

    @command("estimate", COMMANDS)
    @workdir_argument
    @backend_options
    def _line_estimate(self, args):
        """Run a small sample of the workdir's tasks (kept as done work), then predict the whole run's CPU
        time, wall time on the workers and memory per worker; the Estimate is the cell's value."""
        workflow = self._workflow(args.workdir, "estimate")
        if args.backend is not None:
            self.last_run["backend"] = args.backend
        if args.n_jobs is not None:
            self.last_run["n_jobs"] = args.n_jobs
        return self._estimate(workflow, "%mempamal estimate")

    @command("gui", COMMANDS)
    def _line_gui(self, args):
        """The ExperimentBuilder form (builder = %mempamal gui keeps a handle on it)."""
        from .widgets import ExperimentBuilder

        # Returned, not displayed: the cell shows it once, and
        # ``builder = %mempamal gui`` keeps a handle on the form.
        return ExperimentBuilder(namespace=self.shell.user_ns)

    @command("cluster start", COMMANDS)
    @argument("-n", "--n-engines", type=int, default=-1, metavar="N", help="engines, -1 = one per core (default)")
    def _line_cluster_start(self, args):
        """Start local ipyparallel engines that %%mempamal -b ipyparallel uses."""
        import os

        # The one import below the api layer a skin makes (tests/test_layers.py
        # allows it): LocalCluster, the private ipyparallel cluster, has no
        # api-layer counterpart and DESIGN.md fixes the public names.
        from mempamal.backends.ipyparallel import LocalCluster

        if self.cluster is not None:
            raise UsageError("%mempamal cluster start: a cluster is already running; stop it first.")
        n_engines = args.n_engines if args.n_engines > 0 else (os.cpu_count() or 1)
        self.cluster = LocalCluster(n_engines).__enter__()
        print(f"ipyparallel cluster started with {len(self.cluster.client.ids)} engines; "
              "%%mempamal -b ipyparallel uses it")

    @command("cluster stop", COMMANDS)
    def _line_cluster_stop(self, args):
        """Stop the engines of %mempamal cluster start."""
        if self.cluster is None:
            raise UsageError("%mempamal cluster stop: no cluster is running.")
        self.cluster.__exit__(None, None, None)
        self.cluster = None
        print("ipyparallel cluster stopped")


# `%mempamal?` shows the magic's docstring: what it is, every command with its options (an
# RST literal block, as autodoc renders it too), an example.
_summary, _, _examples = inspect.cleandoc(MempamalMagics.mempamal.__doc__).partition("Examples\n--------")
_commands = textwrap.indent(help_text(), "    ")
MempamalMagics.mempamal.__doc__ = (f"{_summary.strip()}\n\nCommands and options::\n\n{_commands}\n\n"
                                   f"Examples\n--------{_examples}")


def load_ipython_extension(ipython):
    """Register the magics (``%load_ext mempamal``) and the live panel of a displayed Run.

    Examples
    --------
    >>> get_ipython().run_line_magic("load_ext", "mempamal")            # needs an IPython shell  # doctest: +SKIP
    """
    ipython.register_magics(MempamalMagics)
    from .panel import has_widget_frontend, show_run

    if has_widget_frontend(ipython):
        # By name: registering must not import mempamal.run before it is used.
        ipython.display_formatter.ipython_display_formatter.for_type_by_name("mempamal.run", "Run", show_run)


def unload_ipython_extension(ipython):
    """Forget the magics and stop a cluster the magics started.

    Examples
    --------
    >>> get_ipython().run_line_magic("unload_ext", "mempamal")          # needs an IPython shell  # doctest: +SKIP
    """
    magics = ipython.magics_manager.registry.get("MempamalMagics")
    if magics is not None and magics.cluster is not None:
        magics.cluster.__exit__(None, None, None)
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("mempamal", None)
