"""ExperimentBuilder: an ipywidgets form that writes an Experiment for you.

Every choice maps to an argument of :class:`mempamal.Experiment` or
``Workflow.run``; :meth:`ExperimentBuilder.experiment` returns exactly the
Experiment you would have written by hand, so whatever the form does is
also reachable from plain Python.
"""

import contextvars
import html
import threading

import ipywidgets as widgets
from IPython.display import display

from .catalogue import SPLITTERS, estimator_catalogue, make_splitter, tunable_parameters  # noqa: F401
from .grid_text import parse_grid_text
from .static import Static, preview_static, show_figure

#: Labels sized to their text instead of being cut at ipywidgets' default width.
_WIDE_LABEL = {"description_width": "initial"}


class _CVControls(widgets.HBox):
    def __init__(self, label, n_splits):
        self.splitter = widgets.Dropdown(options=SPLITTERS, description=label, style=_WIDE_LABEL,
                                         layout=widgets.Layout(width="260px"))
        self.n_splits = widgets.BoundedIntText(value=n_splits, min=2, max=100, description="folds",
                                               layout=widgets.Layout(width="140px"))
        self.shuffle = widgets.Checkbox(value=True, description="shuffle", indent=False,
                                        layout=widgets.Layout(width="90px"))
        self.seed = widgets.IntText(value=0, description="seed", layout=widgets.Layout(width="140px"))
        super().__init__([self.splitter, self.n_splits, self.shuffle, self.seed])

    def value(self):
        return make_splitter(self.splitter.value, self.n_splits.value, self.shuffle.value, self.seed.value)


class ExperimentBuilder(widgets.VBox):
    """Pick estimator, grid, CV, scoring and backend; preview, run, export.

    Examples
    --------
    >>> builder = ExperimentBuilder(X=X, y=y)
    >>> builder
    ExperimentBuilder(estimator='scaled LogisticRegression', workdir='mempamal-runs/builder'): a form, shown in Jupyter
    >>> exp = builder.experiment()
    """

    def __init__(self, X=None, y=None, namespace=None):
        self.namespace = dict(namespace or {})
        self.data = {"X": X, "y": y}
        self._build_controls()
        self.live_box = widgets.VBox([widgets.HTML("<i>Run shows the progress and the outer folds here.</i>")])
        self.tabs = widgets.Tab([self._form(), self.preview_output, widgets.VBox([self.live_box])])
        for index, title in enumerate(("Experiment", "Preview", "Results")):
            self.tabs.set_title(index, title)
        super().__init__([self.tabs])
        self.results = self.last_run = self._static = None
        self._running = False
        self.validate()

    # -------------------------------------------------------------- controls
    def _build_controls(self):
        from sklearn.metrics import get_scorer_names

        from mempamal import available_backends

        self.estimators = dict(estimator_catalogue())
        for name, value in self.namespace.items():
            if not name.startswith("_") and hasattr(value, "fit") and hasattr(value, "get_params") \
                    and not isinstance(value, type):
                self.estimators[f"{name} (notebook)"] = value
        arrays = ["(given)"] + [n for n, v in self.namespace.items() if not n.startswith("_") and hasattr(v, "shape")]
        self.estimator = widgets.Dropdown(options=list(self.estimators), description="estimator",
                                          style=_WIDE_LABEL, layout=widgets.Layout(width="420px"))

        def default(name):  # the notebook's own X / y, unless data were given
            return name if self.data[name] is None and name in arrays else "(given)"

        self.X = widgets.Dropdown(options=arrays, value=default("X"), description="X")
        self.y = widgets.Dropdown(options=arrays, value=default("y"), description="y")
        self.groups = widgets.Dropdown(options=["(none)"] + arrays[1:], description="groups")
        self.grid = widgets.Textarea(placeholder="one parameter per line, for example:\n"
                                                 "    <name>: log(-3, 3, 7)    or    <name>: [1, 2, 5]",
                                     description="grid", layout=widgets.Layout(width="520px", height="80px"))
        self.parameters = widgets.HTML()
        self.outer = _CVControls("outer cv", 5)
        self.inner = _CVControls("inner cv", 3)
        self.scoring = widgets.SelectMultiple(options=sorted(get_scorer_names()), description="scoring", rows=5)
        self.refit = widgets.Dropdown(options=["(first)"], description="refit")
        self.n_permutations = widgets.BoundedIntText(value=0, min=0, max=100000, description="permutations",
                                                     style=_WIDE_LABEL)
        self.backend = widgets.Dropdown(options=available_backends(), value="local", description="backend")
        self.n_jobs = widgets.IntText(value=-1, description="workers")
        self.workdir = widgets.Text(value="mempamal-runs/builder", description="workdir")
        self.overwrite = widgets.Checkbox(value=False, description="overwrite", indent=False)
        self.reuse = widgets.Checkbox(value=False, description="reuse", indent=False,
                                      tooltip="grow the workdir's experiment: keep its unchanged finished tasks")
        self.export_path = widgets.Text(value="workflow-soma.json", description="export to", style=_WIDE_LABEL)
        self.message = widgets.HTML()
        self.preview_button = widgets.Button(description="Preview", icon="eye")
        self.estimate_button = widgets.Button(description="Estimate", icon="clock-o",
                                              tooltip="run a small sample of the tasks (kept) and predict the run")
        self.run_button = widgets.Button(description="Run", button_style="success", icon="play")
        self.export_button = widgets.Button(description="Export soma-workflow", icon="download")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True,
                                            tooltip="stop the run; finished tasks are kept")
        self.preview_output = widgets.Output()
        for control in (self.estimator, self.X, self.y, self.groups, self.grid, self.scoring, self.refit,
                        self.n_permutations, self.outer.splitter, self.inner.splitter, self.n_jobs,
                        self.workdir):
            control.observe(lambda change: self.validate(), names="value")
        self.preview_button.on_click(lambda button: self.preview())
        self.estimate_button.on_click(lambda button: self.estimate())
        self.run_button.on_click(lambda button: self.start())  # returns at once: the kernel stays free
        self.export_button.on_click(lambda button: self.export())
        self.cancel_button.on_click(lambda button: self.cancel())

    def _form(self):
        return widgets.VBox([
            self.estimator, self.parameters, widgets.HBox([self.X, self.y, self.groups]), self.grid,
            self.outer, self.inner, widgets.HBox([self.scoring, widgets.VBox([self.refit, self.n_permutations])]),
            widgets.HBox([self.backend, self.n_jobs]), widgets.HBox([self.workdir, self.overwrite, self.reuse]),
            widgets.HBox([self.preview_button, self.estimate_button, self.run_button, self.cancel_button,
                          self.export_button, self.export_path]),
            self.message,
        ])

    # --------------------------------------------------------------- values
    def _array(self, choice, given):
        return given if choice == "(given)" else self.namespace[choice]

    def inputs(self):
        """``(X, y, groups)`` chosen in the form.

        Examples
        --------
        >>> X, y, groups = ExperimentBuilder(X=X, y=y).inputs()
        >>> groups is None
        True
        """
        groups = None if self.groups.value == "(none)" else self.namespace[self.groups.value]
        return self._array(self.X.value, self.data["X"]), self._array(self.y.value, self.data["y"]), groups

    def experiment(self):
        """The :class:`mempamal.Experiment` the form describes (raises on invalid choices).

        Examples
        --------
        >>> builder = ExperimentBuilder(X=X, y=y)
        >>> builder.grid.value = "logisticregression__C: [0.1, 1, 10]"
        >>> builder.experiment().param_grid
        {'logisticregression__C': [0.1, 1, 10]}
        """
        import mempamal as mp
        from sklearn.base import clone

        grid = parse_grid_text(self.grid.value) or None
        scoring = list(self.scoring.value) or None
        if scoring is not None and len(scoring) == 1:
            scoring = scoring[0]
        refit = True if self.refit.value == "(first)" or not isinstance(scoring, list) else self.refit.value
        if isinstance(scoring, list) and refit is True:
            refit = scoring[0]
        return mp.Experiment(
            clone(self.estimators[self.estimator.value]), param_grid=grid, cv=self.outer.value(),
            inner_cv=self.inner.value() if grid else None, scoring=scoring, refit=refit,
            n_permutations=self.n_permutations.value, random_state=0,  # permutation_test_score's default
        )

    def validate(self):
        """Check the form; show an inline message and disable Run when invalid.

        Examples
        --------
        >>> builder = ExperimentBuilder(X=X, y=y)
        >>> builder.n_jobs.value = 0
        >>> builder.validate(), builder.run_button.disabled
        (False, True)
        """
        names = tunable_parameters(self.estimators[self.estimator.value])
        self.parameters.value = f"<small>grid parameters: {html.escape(', '.join(names))}</small>"
        chosen = list(self.scoring.value)
        self.refit.options = ["(first)"] + chosen
        try:
            self.experiment()
            X, y, groups = self.inputs()
            if X is None or y is None:
                raise ValueError("choose X and y (variables of the notebook) or pass them to ExperimentBuilder.")
            self._check_run_choices(groups)
        except (ValueError, TypeError, KeyError) as exc:
            self.message.value = f"<span style='color:#c00'>{html.escape(str(exc))}</span>"
            self.run_button.disabled = self.preview_button.disabled = self.estimate_button.disabled = \
                self.export_button.disabled = True
            return False
        if self._running:  # choices may change while a run goes; the buttons wait for its end
            return True
        self.message.value = "<span style='color:#080'>ready</span>"
        self.run_button.disabled = self.preview_button.disabled = self.estimate_button.disabled = \
            self.export_button.disabled = False
        return True

    def _check_run_choices(self, groups):
        """What Experiment cannot check before build: groups, workers, workdir."""
        splitters = [self.outer.splitter.value] + ([self.inner.splitter.value] if self.grid.value.strip() else [])
        if "GroupKFold" in splitters and groups is None:
            raise ValueError("GroupKFold needs groups: choose a variable in 'groups'.")
        if self.n_jobs.value == 0:
            raise ValueError("workers must be a positive number or -1 (all cores); got 0.")
        if not self.workdir.value.strip():
            raise ValueError("workdir must name a folder.")

    # -------------------------------------------------------------- actions
    def build(self):
        """Build the workflow into the chosen workdir.

        Examples
        --------
        >>> builder = ExperimentBuilder(X=X, y=y)
        >>> wf = builder.build(); wf.status()["done"]
        0
        """
        X, y, groups = self.inputs()
        return self.experiment().build(X, y, groups=groups, workdir=self.workdir.value,
                                       overwrite=self.overwrite.value, reuse=self.reuse.value)

    def _guarded(self, action):
        if self._running:
            self.message.value = "<span style='color:#c00'>a run is going; wait for its end</span>"
            return None
        if not self.validate():
            return None
        try:
            return action()
        except Exception as exc:  # shown inline: the form is the user's whole interface
            self.message.value = f"<span style='color:#c00'>{html.escape(f'{type(exc).__name__}: {exc}')}</span>"
            return None

    def preview(self):
        """Show the task counts, the first tasks of each kind and the graph in the Preview tab.

        Examples
        --------
        >>> builder = ExperimentBuilder(X=X, y=y)
        >>> import contextlib, io
        >>> with contextlib.redirect_stdout(io.StringIO()):   # outside Jupyter, clearing the tab prints ANSI codes
        ...     wf = builder.preview()
        >>> builder.tabs.selected_index
        1
        """
        def action():
            workflow = self.build()
            self.preview_output.clear_output()
            self.preview_output.append_display_data(preview_static(workflow))
            self.tabs.selected_index = 1
            return workflow
        return self._guarded(action)

    def estimate(self):
        """Preview, then run a sample of the tasks and add the :class:`mempamal.Estimate` to the Preview tab.

        The sample runs on the chosen backend and workers, and is kept: the
        run does not repeat it.

        Examples
        --------
        >>> est = builder.estimate(); est.n_workers  # needs an IPython shell  # doctest: +SKIP
        2
        """
        def action():
            workflow = self.build()
            estimate = workflow.estimate(backend=self.backend.value, n_jobs=self.n_jobs.value)
            self.preview_output.clear_output()
            self.preview_output.append_display_data(preview_static(workflow))
            lines = [estimate.line()] + [f"warning: {warning}" for warning in estimate.warnings]
            self.preview_output.append_stdout("estimate: " + "\n".join(lines) + "\n")
            self.tabs.selected_index = 1
            return estimate
        return self._guarded(action)

    def start(self):
        """Submit the run (what the Run button does) and return the :class:`mempamal.Run` at once.

        The Results tab follows it live; buttons stay disabled until it ends;
        then the summary and plots are shown as static output below the form.

        Examples
        --------
        >>> builder = ExperimentBuilder(X=X, y=y)
        >>> builder.n_jobs.value = 1   # in this process: no worker to start
        >>> run = builder.start(); res = run.wait()
        >>> run.state
        'finished'
        """
        from .panel import RunPanel

        def action():
            run = self.build().submit(backend=self.backend.value, n_jobs=self.n_jobs.value)
            self.last_run, self.results = run, None
            self._set_running(True)
            panel = RunPanel(run)
            self.live_box.children = (panel,)
            self.tabs.selected_index = 2
            context = contextvars.copy_context()
            self._follower = threading.Thread(target=context.run, args=(self._follow, run, panel),
                                              name="mempamal-builder", daemon=True)
            self._follower.start()
            return run
        return self._guarded(action)

    def _follow(self, run, panel):
        message = "<span style='color:#c00'>the run's follower stopped unexpectedly</span>"
        try:
            while not run.join(1.0):
                panel.refresh()
            panel.refresh()
            try:
                self.results = run.wait()
            except Exception as exc:
                message = f"<span style='color:#c00'>{html.escape(f'{type(exc).__name__}: {exc}')}</span>"
            else:
                message = "<span style='color:#080'>finished: summary and plots below the form</span>"
                if self._static is not None:
                    self._static.update(results_static(self.results))
        finally:
            self._set_running(False)
            self.message.value = message  # after the form's own "ready"

    def run(self):
        """Run with the chosen backend, wait, show the summary and plots here; return the Results.

        Called from code, the static results go to the calling cell.

        Examples
        --------
        >>> builder = ExperimentBuilder(X=X, y=y)
        >>> builder.n_jobs.value = 1   # in this process: no worker to start
        >>> res = builder.run()
        <Results ...mempamal-runs/builder: 5 outer folds, score=0.9600>
          experiment: ...
          final model: best_estimator_ fitted on all the data
        <Figure size 640x480 with 1 Axes>
        >>> res.summary()
               mean       std    median
        score  0.96  0.013333  0.966667
        """
        run = self.start()
        if run is None:
            return None
        self._follower.join()
        if self.results is not None:
            show_results(self.results)
        return self.results

    def export(self):
        """Write the soma-workflow file of the workflow to ``export to``.

        Examples
        --------
        >>> builder = ExperimentBuilder(X=X, y=y)
        >>> builder.export_path.value = "wf-soma.json"
        >>> builder.export()
        PosixPath('wf-soma.json')
        """
        def action():
            path = self.build().export(self.export_path.value, format="soma-workflow")
            self.message.value = f"exported {html.escape(str(path))}"
            return path
        return self._guarded(action)

    def cancel(self):
        """Stop the run going (the Cancel button); finished tasks are kept for the next run.

        Examples
        --------
        >>> builder = ExperimentBuilder(X=X, y=y)
        >>> builder.n_jobs.value = 1   # in this process: no worker to start
        >>> run = builder.start()
        >>> builder.cancel()
        >>> run.join(timeout=60); run.state in ("cancelled", "finished")   # finished if it was that quick
        True
        True
        """
        if self.last_run is not None and not self.last_run.done():
            self.last_run.cancel(wait=False)  # the follower re-enables the form when the run has stopped

    def _set_running(self, running):
        self._running = running
        self.cancel_button.disabled = not running
        if running:
            self.run_button.disabled = self.preview_button.disabled = self.estimate_button.disabled = \
                self.export_button.disabled = True
            self.run_button.description = "Running..."
        else:
            self.run_button.description = "Run"
            self.validate()

    # -------------------------------------------------------------- display
    def _ipython_display_(self):
        # The form, then a static area that receives the results: plain
        # HTML/PNG outputs a saved notebook keeps (widgets need a kernel).
        display(self._repr_mimebundle_(), raw=True)
        self._static = display(Static("", ""), display_id=True)

    def __repr__(self):
        return (f"ExperimentBuilder(estimator={self.estimator.value!r}, workdir={self.workdir.value!r}): "
                "a form, shown in Jupyter")


def results_static(results):
    """The summary, best parameters and plots of ``results`` as one static HTML block.

    Examples
    --------
    >>> display(results_static(res))
    <Results ...runs/iris: 3 outer folds, accuracy=0.9733>
      experiment: Pipeline(steps=[('scale', StandardScaler()), ('clf', LogisticRegression())]), param_grid={'clf__C': [0.1, 1.0, 10.0]} (3 candidates)
      best_params (one per outer fold): [{'clf__C': 10.0}, {'clf__C': 10.0}, {'clf__C': 10.0}]
      final model: best_params_={'clf__C': 10.0} (the search on all the data), refit on all the data
    """
    from mempamal.display import figure_png_html

    images = "".join(figure_png_html(shown.figure_) for shown in result_plots(results))
    return Static(results._repr_html_() + f"<div>{images}</div>", repr(results))


def show_results(results):
    """Display ``results`` (summary, best parameters) and its plots as static outputs.

    Examples
    --------
    >>> show_results(res)
    <Results ...runs/iris: 3 outer folds, accuracy=0.9733>
      experiment: Pipeline(steps=[('scale', StandardScaler()), ('clf', LogisticRegression())]), param_grid={'clf__C': [0.1, 1.0, 10.0]} (3 candidates)
      best_params (one per outer fold): [{'clf__C': 10.0}, {'clf__C': 10.0}, {'clf__C': 10.0}]
      final model: best_params_={'clf__C': 10.0} (the search on all the data), refit on all the data
    <Figure size 640x480 with 1 Axes>
    <Figure size 640x480 with 1 Axes>
    """
    display(results)
    for shown in result_plots(results):
        show_figure(shown.figure_)


def result_plots(results):
    """The plots that describe a finished run: scores, grid (when it varies), permutations.

    Examples
    --------
    >>> [type(shown).__name__ for shown in result_plots(res)]
    ['ScoresDisplay', 'GridDisplay']
    """
    plots = [results.plot_scores()]
    if results.nested and _has_varying(results):
        plots.append(results.plot_grid())
    if results.pvalue is not None:
        plots.append(results.plot_permutation())
    return plots


def _has_varying(results):
    table = results.cv_results(0)
    return any(k.startswith("param_") and len({repr(v) for v in table[k]}) > 1 for k in table)
