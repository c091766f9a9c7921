"""ExperimentBuilder: an ipywidgets form that writes an Experiment for you.

Every choice maps to an argument of :class:`mempamal.Experiment` or
``Workflow.run``; :meth:`ExperimentBuilder.experiment` returns exactly the
Experiment you would have written by hand, so whatever the form does is
also reachable from plain Python.
"""

import ipywidgets as widgets
from IPython.display import HTML, display

from .grid_text import parse_grid_text

SPLITTERS = ("StratifiedKFold", "KFold", "GroupKFold", "ShuffleSplit")


def estimator_catalogue():
    """Common estimators and pipelines, by display name (fresh objects each call)."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR

    return {
        "scaled LogisticRegression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "scaled SVC": make_pipeline(StandardScaler(), SVC()),
        "scaled KNeighborsClassifier": make_pipeline(StandardScaler(), KNeighborsClassifier()),
        "RandomForestClassifier": RandomForestClassifier(random_state=0),
        "scaled Ridge": make_pipeline(StandardScaler(), Ridge()),
        "scaled SVR": make_pipeline(StandardScaler(), SVR()),
        "RandomForestRegressor": RandomForestRegressor(random_state=0),
    }


def make_splitter(name, n_splits, shuffle, seed):
    """The scikit-learn splitter the builder's CV controls describe."""
    from sklearn import model_selection

    if name == "ShuffleSplit":
        return model_selection.ShuffleSplit(n_splits=n_splits, test_size=0.2, random_state=seed)
    if name == "GroupKFold":
        return model_selection.GroupKFold(n_splits=n_splits)
    splitter = getattr(model_selection, name)
    return splitter(n_splits=n_splits, shuffle=shuffle, random_state=seed if shuffle else None)


class _CVControls(widgets.HBox):
    def __init__(self, label, n_splits):
        self.splitter = widgets.Dropdown(options=SPLITTERS, description=label)
        self.n_splits = widgets.BoundedIntText(value=n_splits, min=2, max=100, description="folds",
                                               layout=widgets.Layout(width="140px"))
        self.shuffle = widgets.Checkbox(value=True, description="shuffle", indent=False)
        self.seed = widgets.IntText(value=0, description="seed", layout=widgets.Layout(width="140px"))
        super().__init__([self.splitter, self.n_splits, self.shuffle, self.seed])

    def value(self):
        return make_splitter(self.splitter.value, self.n_splits.value, self.shuffle.value, self.seed.value)


class ExperimentBuilder(widgets.VBox):
    """Pick estimator, grid, CV, scoring and backend; preview, run, export.

    Examples
    --------
    >>> builder = ExperimentBuilder(X=X, y=y)        # doctest: +SKIP
    >>> builder                                      # doctest: +SKIP
    >>> exp = builder.experiment()                   # doctest: +SKIP
    """

    def __init__(self, X=None, y=None, namespace=None):
        self.namespace = dict(namespace or {})
        self.data = {"X": X, "y": y}
        self._build_controls()
        self.tabs = widgets.Tab([self._form(), self.preview_output, self.results_output])
        for index, title in enumerate(("Experiment", "Preview", "Results")):
            self.tabs.set_title(index, title)
        super().__init__([self.tabs])
        self.results = None
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
        self.estimator = widgets.Dropdown(options=list(self.estimators), description="estimator")
        self.X = widgets.Dropdown(options=arrays, description="X")
        self.y = widgets.Dropdown(options=arrays, description="y")
        self.groups = widgets.Dropdown(options=["(none)"] + arrays[1:], description="groups")
        self.grid = widgets.Textarea(placeholder="logisticregression__C: log(-3, 3, 7)", description="grid",
                                     layout=widgets.Layout(width="520px", height="80px"))
        self.parameters = widgets.HTML()
        self.outer = _CVControls("outer cv", 5)
        self.inner = _CVControls("inner cv", 3)
        self.scoring = widgets.SelectMultiple(options=sorted(get_scorer_names()), description="scoring", rows=5)
        self.refit = widgets.Dropdown(options=["(first)"], description="refit")
        self.n_permutations = widgets.BoundedIntText(value=0, min=0, max=100000, description="permutations")
        self.backend = widgets.Dropdown(options=available_backends(), value="local", description="backend")
        self.n_jobs = widgets.IntText(value=-1, description="workers")
        self.workdir = widgets.Text(value="mempamal-runs/builder", description="workdir")
        self.overwrite = widgets.Checkbox(value=False, description="overwrite", indent=False)
        self.export_path = widgets.Text(value="workflow-soma.json", description="export to")
        self.message = widgets.HTML()
        self.preview_button = widgets.Button(description="Preview", icon="eye")
        self.run_button = widgets.Button(description="Run", button_style="success", icon="play")
        self.export_button = widgets.Button(description="Export soma-workflow", icon="download")
        self.preview_output, self.results_output = widgets.Output(), widgets.Output()
        for control in (self.estimator, self.X, self.y, self.groups, self.grid, self.scoring, self.refit,
                        self.n_permutations, self.outer.splitter, self.inner.splitter, self.n_jobs,
                        self.workdir):
            control.observe(lambda change: self.validate(), names="value")
        self.preview_button.on_click(lambda button: self.preview())
        self.run_button.on_click(lambda button: self.run())
        self.export_button.on_click(lambda button: self.export())

    def _form(self):
        return widgets.VBox([
            self.estimator, self.parameters, widgets.HBox([self.X, self.y, self.groups]), self.grid,
            self.outer, self.inner, widgets.HBox([self.scoring, widgets.VBox([self.refit, self.n_permutations])]),
            widgets.HBox([self.backend, self.n_jobs]), widgets.HBox([self.workdir, self.overwrite]),
            widgets.HBox([self.preview_button, self.run_button, self.export_button, self.export_path]),
            self.message,
        ])

    # --------------------------------------------------------------- values
    def _array(self, choice, given):
        return given if choice == "(given)" else self.namespace[choice]

    def inputs(self):
        """``(X, y, groups)`` chosen in the form."""
        groups = None if self.groups.value == "(none)" else self.namespace[self.groups.value]
        return self._array(self.X.value, self.data["X"]), self._array(self.y.value, self.data["y"]), groups

    def experiment(self):
        """The :class:`mempamal.Experiment` the form describes (raises on invalid choices)."""
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
            n_permutations=self.n_permutations.value, random_state=0 if self.n_permutations.value else None,
        )

    def validate(self):
        """Check the form; show an inline message and disable Run when invalid."""
        estimator = self.estimators[self.estimator.value]
        names = sorted(estimator.get_params(deep=True))
        self.parameters.value = f"<small>grid parameters: {', '.join(names[:40])}</small>"
        chosen = list(self.scoring.value)
        self.refit.options = ["(first)"] + chosen
        try:
            self.experiment()
            X, y, groups = self.inputs()
            if X is None or y is None:
                raise ValueError("choose X and y (variables of the notebook) or pass them to ExperimentBuilder.")
            self._check_run_choices(groups)
        except (ValueError, TypeError, KeyError) as exc:
            self.message.value = f"<span style='color:#c00'>{exc}</span>"
            self.run_button.disabled = self.preview_button.disabled = self.export_button.disabled = True
            return False
        self.message.value = "<span style='color:#080'>ready</span>"
        self.run_button.disabled = self.preview_button.disabled = self.export_button.disabled = False
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
        """Build the workflow into the chosen workdir."""
        X, y, groups = self.inputs()
        return self.experiment().build(X, y, groups=groups, workdir=self.workdir.value,
                                       overwrite=self.overwrite.value)

    def _guarded(self, action, output):
        if not self.validate():
            return None
        try:
            return action()
        except Exception as exc:  # shown inline: the form is the user's whole interface
            self.message.value = f"<span style='color:#c00'>{type(exc).__name__}: {exc}</span>"
            return None

    def preview(self):
        """Show the task count and the graph in the Preview tab."""
        def action():
            import matplotlib.pyplot as plt

            workflow = self.build()
            self.preview_output.clear_output()
            with self.preview_output:
                from mempamal.display import workflow_html

                display(HTML(workflow_html(workflow, graph=False)))  # the graph follows as a figure
                figure = workflow.plot().figure_
                display(figure)
                plt.close(figure)
            self.tabs.selected_index = 1
            return workflow
        return self._guarded(action, self.preview_output)

    def run(self):
        """Run with the chosen backend; the Results tab shows summary and plots."""
        def action():
            import matplotlib.pyplot as plt

            workflow = self.build()
            self.results_output.clear_output()
            self.tabs.selected_index = 2
            with self.results_output, _LiveFoldScores(workflow) as live:
                display(live.widget)
                self.results = workflow.run(backend=self.backend.value, n_jobs=self.n_jobs.value)
                display(HTML(self.results._repr_html_()))
                plots = [self.results.plot_scores()]
                if self.results.nested:
                    plots.append(self.results.plot_grid(params=None) if _has_varying(self.results) else None)
                if self.results.pvalue is not None:
                    plots.append(self.results.plot_permutation())
                for shown in filter(None, plots):
                    display(shown.figure_)
                    plt.close(shown.figure_)
            self.tabs.selected_index = 2
            return self.results
        return self._guarded(action, self.results_output)

    def export(self):
        """Write the soma-workflow file of the workflow to ``export to``."""
        def action():
            path = self.build().export(self.export_path.value, format="soma-workflow")
            self.message.value = f"exported {path}"
            return path
        return self._guarded(action, None)


class _LiveFoldScores:
    """Outer-fold scores shown as their select/score outputs appear, while the run blocks."""

    def __init__(self, workflow, interval=0.5):
        import threading

        self.workflow, self.interval = workflow, interval
        self.folds = [t.id for t in workflow.tasks if t.kind in ("select", "score") and t.split_set == "main"]
        self.widget = widgets.HTML("<i>waiting for the first outer fold...</i>")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.refresh()

    def _watch(self):
        while not self.stop.wait(self.interval):
            self.refresh()

    def refresh(self):
        """Read the finished fold outputs (files are the truth) into the table."""
        from mempamal import store

        rows = []
        for task_id in self.folds:
            path = store.output_path(self.workflow.workdir, task_id)
            if path.exists():
                scores = store.read_json(path)["test_scores"]
                cells = "".join(f"<td>{name}={value:.4f}</td>" for name, value in scores.items())
                rows.append(f"<tr><td>{task_id}</td>{cells}</tr>")
        if rows:
            self.widget.value = (f"<b>outer folds finished: {len(rows)}/{len(self.folds)}</b>"
                                 f"<table>{''.join(rows)}</table>")


def _has_varying(results):
    table = results.cv_results(0)
    return any(k.startswith("param_") and len({repr(v) for v in table[k]}) > 1 for k in table)
