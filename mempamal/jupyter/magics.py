"""``%mempamal`` and ``%%mempamal``: thin magics over the public API.

``%%mempamal [-b BACKEND] [-n N] [-w WORKDIR] [-o NAME] [--preview] [--export FMT:PATH]``
runs the cell in the user namespace; the cell defines ``estimator``, ``X``,
``y`` and optionally ``groups``, ``params`` (metadata for ``build``),
``cv``, ``inner_cv``, ``param_grid`` or ``param_distributions`` and
``n_iter``, ``scoring``, ``refit``, ``n_permutations``, ``random_state``,
``error_score``, ``final_fit``, ``return_estimator``, ``predict``,
``return_train_score``.  The magic builds the workflow, previews or runs it, shows
the summary and the scores plot, and stores the Results in ``NAME``.
``estimator``, ``X`` and ``y`` may come from earlier cells; the optional
settings are read only when the cell itself assigns them, so a
``param_grid`` left over from another experiment never changes this one.

``%%mempamal --async`` (``-a``) submits the run and returns at once: the
cell shows a live panel, ``NAME`` holds the :class:`mempamal.Run` until
``%mempamal wait`` replaces it with the Results.

``%mempamal status|results|wait|cancel|attach [WORKDIR]``, ``%mempamal
export FMT PATH``, ``%mempamal resume``, ``%mempamal gui``, ``%mempamal
cluster start -n N``, ``%mempamal cluster stop``, ``%mempamal --help``.

Every scenario here is reachable from plain Python: the magic only calls
:class:`mempamal.Experiment`, :class:`mempamal.Workflow` and
:class:`mempamal.Results`.
"""

import functools

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from .static import preview_static, show_figure

#: Cell variables handed to Experiment (beyond estimator, X, y, groups).
EXPERIMENT_VARIABLES = ("param_grid", "cv", "inner_cv", "scoring", "refit", "n_permutations",
                        "random_state", "error_score", "param_distributions", "n_iter", "final_fit",
                        "return_estimator", "predict", "return_train_score")
#: Cell variables handed to Experiment.build (metadata such as sample_weight).
BUILD_VARIABLES = ("params",)
LINE_COMMANDS = ("status", "results", "wait", "cancel", "attach", "export", "resume", "gui", "cluster")

USAGE = """\
%%mempamal [-b BACKEND] [-n N] [-w WORKDIR] [-o NAME] [-a] [--preview] [--export FMT:PATH] [--overwrite]
    The cell defines estimator, X, y and optionally groups, params, cv, inner_cv,
    param_grid or param_distributions and n_iter, scoring, refit, n_permutations,
    random_state, error_score, final_fit, return_estimator, predict,
    return_train_score; the magic builds the
    workflow and runs it (Results in NAME), or with -a/--async submits it and returns
    at once (NAME holds the Run; the cell shows a live panel).

%mempamal status  [WORKDIR]    task counts and the graph
%mempamal results [WORKDIR]    summary and best parameters (Results in -o NAME)
%mempamal wait    [WORKDIR]    wait for a submitted run; its Results go to NAME
%mempamal cancel  [WORKDIR]    stop a submitted run (finished tasks are kept)
%mempamal attach  [WORKDIR]    follow a run started before a kernel restart
%mempamal export FMT PATH      commands, shell, makefile, soma-workflow
%mempamal resume  [WORKDIR]    run what is unfinished
%mempamal gui                  the ExperimentBuilder form
%mempamal cluster start -n N | cluster stop    local ipyparallel engines for -b ipyparallel
%mempamal --help               this text

WORKDIR defaults to the last one used by a %%mempamal cell.\
"""


def assigned_names(cell):
    r"""Names a cell body binds (assignments, imports, loop targets...).

    Examples
    --------
    >>> sorted(assigned_names("cv = 3\nfrom numpy import logspace as grid\nfor i in []: pass"))
    ['cv', 'grid', 'i']
    """
    import ast

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


def experiment_from_namespace(namespace, defined=None):
    """``(Experiment, X, y, groups)`` from the variables a cell defined.

    ``estimator``, ``X`` and ``y`` must be in ``namespace``; the optional
    settings (``groups`` and :data:`EXPERIMENT_VARIABLES`) are used only if
    their name is in ``defined`` (default: every name of ``namespace``).

    Examples
    --------
    >>> ns = {"estimator": LogisticRegression(), "X": X, "y": y, "cv": 3}   # doctest: +SKIP
    >>> experiment, X, y, groups = experiment_from_namespace(ns)            # doctest: +SKIP
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
    >>> get_ipython().register_magics(MempamalMagics)                    # doctest: +SKIP
    >>> get_ipython().run_line_magic("mempamal", "--help")              # doctest: +SKIP
    """

    def __init__(self, shell):
        super().__init__(shell)
        self.last_workdir = None
        self.last_run = {"backend": "local", "n_jobs": -1}
        self.last_output = "mempamal_results"
        self.cluster = None
        self.runs = {}  # workdir (absolute) -> the Run submitted or attached from this kernel

    @magic_arguments()
    @argument("command", nargs="*", help="line magic: status|results [WORKDIR], export FMT PATH, resume, gui, "
                                          "cluster start -n N, cluster stop")
    @argument("-b", "--backend", default="local", help="local, ipyparallel, soma-workflow or a registered name")
    @argument("-n", "--n-jobs", type=int, default=-1, help="workers (-1 = all cores)")
    @argument("-w", "--workdir", default=None, help="workdir (default: mempamal-runs/NAME)")
    @argument("-o", "--output", default="mempamal_results", help="variable receiving the Results")
    @argument("-a", "--async", dest="submit", action="store_true",
              help="submit and return at once; NAME holds the Run (see %%mempamal wait)")
    @argument("--preview", action="store_true", help="show the task list and graph, run nothing")
    @argument("--export", default=None, metavar="FMT:PATH", help="also export the graph (e.g. makefile:Makefile)")
    @argument("--overwrite", action="store_true", help="replace a workdir holding another experiment")
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
        if line.strip() in ("-h", "--help"):
            print(USAGE)
            return None
        args = parse_argstring(self.mempamal, line)
        if cell is not None:
            if args.command:
                raise UsageError(f"%%mempamal takes options only; got {args.command}.")
            return self.run_cell(cell, args)
        if not args.command or args.command[0] not in LINE_COMMANDS:
            raise UsageError(f"%mempamal needs a command among {list(LINE_COMMANDS)}; got {args.command}.")
        return getattr(self, f"_line_{args.command[0]}")(args.command[1:], args)

    # ---------------------------------------------------------------- cell
    def run_cell(self, cell, args):
        """The ``%%mempamal`` cell: define, build, then preview or run.

        Examples
        --------
        >>> magics.run_cell("estimator = SVC(); cv = 3", args)          # doctest: +SKIP
        """
        namespace = self.shell.user_ns
        self._execute_body(cell)
        defined = assigned_names(cell)
        experiment, X, y, groups = experiment_from_namespace(namespace, defined=defined)
        workdir = args.workdir or f"mempamal-runs/{args.output}"
        try:
            workflow = experiment.build(X, y, groups=groups, workdir=workdir, overwrite=args.overwrite,
                                        **build_options_from_namespace(namespace, defined))
        except FileExistsError as exc:
            raise UsageError(f"%%mempamal: {exc} (add --overwrite)") from None
        except (TypeError, ValueError) as exc:
            raise UsageError(f"%%mempamal: {exc}") from None
        self.last_workdir = workdir
        self.last_run = {"backend": args.backend, "n_jobs": args.n_jobs}
        if args.export:
            self._export(workflow, args.export)
        if args.preview:
            return self._preview(workflow)
        if args.submit:
            return self._submit(workflow, args.output)
        self._run(workflow, args.output)
        return None

    def _execute_body(self, cell):
        """Run the cell body in the user namespace; its own errors show the user's code only."""
        import sys

        # Registered with IPython's compiler cache so tracebacks show the cell's lines,
        # under the cell's In[n] (run_cell counted it already), one blank line
        # standing for the %%mempamal line so that line numbers match the cell.
        body = "\n" + cell
        filename = self.shell.compile.cache(body, max(self.shell.execution_count - 1, 0))
        try:
            exec(compile(body, filename, "exec"), self.shell.user_ns)
        except Exception as exc:
            kind, value, traceback = sys.exc_info()
            self.shell.showtraceback((kind, value, traceback.tb_next), tb_offset=0)  # from the user's first line
            raise UsageError(f"%%mempamal: the cell raised {type(exc).__name__}; nothing was built.") from None

    def _preview(self, workflow):
        display(preview_static(workflow))

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
    def _workflow(self, words, command):
        from mempamal import WorkdirError, Workflow

        workdir = words[0] if words else self.last_workdir
        if workdir is None:
            raise UsageError(f"%mempamal {command}: give a WORKDIR (no %%mempamal cell has run yet).")
        try:
            return Workflow.open(workdir)
        except WorkdirError as exc:
            raise UsageError(f"%mempamal {command}: {exc}") from None

    def _line_status(self, words, args):
        workflow = self._workflow(words, "status")
        display(workflow)
        return None

    def _line_results(self, words, args):
        from mempamal import Results, WorkdirError

        workflow = self._workflow(words, "results")
        try:
            results = Results.load(workflow.workdir)
        except WorkdirError as exc:
            raise UsageError(f"%mempamal results: {exc}") from None
        self.shell.user_ns[args.output] = results
        display(results)
        return None

    def _submitted_run(self, words, command):
        workflow = self._workflow(words, command)
        run = self.runs.get(str(workflow.workdir))
        if run is None:
            raise UsageError(f"%mempamal {command}: no run of {workflow.workdir} was submitted or attached "
                             "from this kernel (use %%mempamal --async or %mempamal attach).")
        return run

    def _line_wait(self, words, args):
        from mempamal import RunCancelled, WorkflowError

        run = self._submitted_run(words, "wait")
        try:
            results = run.wait()
        except (WorkflowError, RunCancelled, RuntimeError) as exc:
            raise UsageError(f"%mempamal wait: {exc}") from None
        # -o on this line wins; else the name the --async cell used.
        output = args.output if args.output != "mempamal_results" else self.last_output
        self._show_results(results, output)

    def _line_cancel(self, words, args):
        run = self._submitted_run(words, "cancel")
        run.cancel()
        print(f"{run.summary_line()}; finished tasks are kept (%mempamal resume runs the rest)")

    def _line_attach(self, words, args):
        from .panel import show_run

        workflow = self._workflow(words, "attach")
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

    def _line_export(self, words, args):
        if len(words) != 2:
            raise UsageError("%mempamal export FMT PATH (e.g. %mempamal export soma-workflow wf.json)")
        self._export(self._workflow([], "export"), f"{words[0]}:{words[1]}")

    def _line_resume(self, words, args):
        self._run(self._workflow(words, "resume"), args.output)

    def _line_gui(self, words, args):
        from .widgets import ExperimentBuilder

        # Returned, not displayed: the cell shows it once, and
        # ``builder = %mempamal gui`` keeps a handle on the form.
        return ExperimentBuilder(namespace=self.shell.user_ns)

    def _line_cluster(self, words, args):
        import os

        # The one import below the api layer a skin makes (tests/test_layers.py
        # allows it): LocalCluster, the private ipyparallel cluster, has no
        # api-layer counterpart and DESIGN.md fixes the public names.
        from mempamal.backends.ipyparallel import LocalCluster

        action = words[0] if words else None
        if action == "start":
            if self.cluster is not None:
                raise UsageError("%mempamal cluster: a cluster is already running; stop it first.")
            # -n N engines; without a positive -n, one per core (what n_jobs=-1 means).
            n_engines = args.n_jobs if args.n_jobs > 0 else (os.cpu_count() or 1)
            self.cluster = LocalCluster(n_engines).__enter__()
            print(f"ipyparallel cluster started with {len(self.cluster.client.ids)} engines; "
                  "%%mempamal -b ipyparallel uses it")
        elif action == "stop":
            if self.cluster is None:
                raise UsageError("%mempamal cluster: no cluster is running.")
            self.cluster.__exit__(None, None, None)
            self.cluster = None
            print("ipyparallel cluster stopped")
        else:
            raise UsageError("%mempamal cluster start -n N | %mempamal cluster stop")


def load_ipython_extension(ipython):
    """Register the magics (``%load_ext mempamal``) and the live panel of a displayed Run.

    Examples
    --------
    >>> get_ipython().run_line_magic("load_ext", "mempamal")            # doctest: +SKIP
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
    >>> get_ipython().run_line_magic("unload_ext", "mempamal")          # doctest: +SKIP
    """
    magics = ipython.magics_manager.registry.get("MempamalMagics")
    if magics is not None and magics.cluster is not None:
        magics.cluster.__exit__(None, None, None)
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("mempamal", None)
