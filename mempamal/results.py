"""Results: what a finished workdir says, in scikit-learn's shapes."""

from pathlib import Path

import numpy as np

from . import integrity, store
from .graph import TaskGraph, find_results_problem
from .engine.search import cv_results


class Results:
    """Scores, best parameters and inner searches of a finished workdir.

    Attributes
    ----------
    test_scores : dict
        ``{metric: ndarray(n_outer)}`` — ``cross_validate``'s ``test_<metric>``.
    best_params : list of dict or None
        The ``best_params_`` of each outer fold's grid search.
    permutation_scores, pvalue, score :
        As ``permutation_test_score`` (None without permutations).

    Examples
    --------
    >>> res = mp.Results.load("runs/iris")      # doctest: +SKIP
    >>> res.summary()                           # doctest: +SKIP
                mean       std    median
    score   0.966667  0.021082  0.966667
    """

    def __init__(self, workdir, raw, experiment):
        self.workdir = Path(workdir)
        self.raw = raw
        self.experiment = experiment
        self.metrics = list(raw["metrics"])
        self.test_scores = {m: np.array(v, dtype=np.float64) for m, v in raw["test_scores"].items()}
        self.fit_time = np.array(raw["fit_time"], dtype=np.float64)
        self.score_time = np.array(raw["score_time"], dtype=np.float64)
        self.errors = list(raw["errors"])
        self.nested = raw["nested"]
        self.n_outer = raw["n_outer"]
        candidates = experiment.candidates
        self.best_index = list(raw["best_index"]) if self.nested else None
        self.best_params = (
            [None if i is None else dict(candidates[i]) for i in self.best_index] if self.nested else None
        )
        permutation = raw.get("permutation")
        self.permutation_metric = permutation["metric"] if permutation else None
        self.score = permutation["score"] if permutation else None
        self.permutation_scores = np.array(permutation["permutation_scores"]) if permutation else None
        self.pvalue = permutation["pvalue"] if permutation else None

    @classmethod
    def load(cls, workdir):
        """Read ``results.json`` (and the experiment, for parameter objects).

        Like ``cross_validate``, raises ``ValueError("All the N fits
        failed ...")`` when every outer fit failed, and warns with
        ``FitFailedWarning`` when some did.

        Examples
        --------
        >>> res = mp.Results.load("runs/iris")      # doctest: +SKIP
        """
        import cloudpickle

        workdir = Path(workdir)
        workflow = TaskGraph.open(workdir)  # names a folder that is no (complete) workdir
        manifest = workflow.manifest
        problem = find_results_problem(workdir, manifest.get("build_id"))
        if problem is not None:
            status = workflow.status()
            if status["pending"]:
                raise store.WorkdirError(
                    f"{workdir} has no results yet: {status['pending']} of {status['total']} tasks "
                    "are unfinished. Run it with Workflow.open(workdir).run() or `mempamal run`.")
            raise store.WorkdirError(f"{problem}; run the workdir again (`mempamal run {workdir}`) to rewrite it.")
        raw = store.read_json(workdir / store.RESULTS)
        store.check_workdir_is_safe(workdir)
        integrity.verify_build_files(workdir, manifest)  # before unpickling experiment.pkl
        raise_or_warn_about_fit_failures(raw)
        experiment = store.load_pickle(workdir, workdir / store.EXPERIMENT, cloudpickle.load)
        return cls(workdir, raw, experiment)

    # ------------------------------------------------------------ tables
    def cv_results(self, outer_fold):
        """The inner search of ``outer_fold`` as ``GridSearchCV.cv_results_``.

        Examples
        --------
        >>> res.cv_results(0)["mean_test_score"]          # doctest: +SKIP
        """
        if not self.nested:
            raise ValueError("cv_results is only defined for nested cross-validation (a param_grid was given).")
        if not 0 <= outer_fold < self.n_outer:
            raise IndexError(f"outer_fold must be in [0, {self.n_outer}); got {outer_fold}.")
        inner = self.raw["inner"][outer_fold]
        return cv_results(self.experiment.candidates, inner["scores"], inner["fit_time"], inner["score_time"])

    def summary(self):
        """DataFrame with mean, std and median of the outer test score per metric."""
        import pandas as pd

        rows = {m: {"mean": np.mean(s), "std": np.std(s), "median": np.median(s)} for m, s in self.test_scores.items()}
        return pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "std", "median"])

    def to_frame(self):
        """One row per outer fold: test scores, best parameters, times, error."""
        import pandas as pd

        frame = pd.DataFrame({f"test_{m}": s for m, s in self.test_scores.items()})
        frame.index.name = "outer_fold"
        if self.nested:
            keys = sorted({k for params in self.best_params if params for k in params})
            for key in keys:
                frame[f"param_{key}"] = [None if p is None else plain_value(p.get(key)) for p in self.best_params]
        frame["fit_time"] = self.fit_time
        frame["score_time"] = self.score_time
        frame["error"] = self.errors
        return frame

    def timeline(self):
        """DataFrame of every finished task: kind, start, end, host, pid."""
        import pandas as pd

        rows = []
        for task_id in sorted(store.finished_task_ids(self.workdir)):
            output = store.read_json(store.output_path(self.workdir, task_id))
            rows.append({key: output.get(key) for key in ("task", "kind", "start", "end", "host", "pid")})
        return pd.DataFrame(rows, columns=["task", "kind", "start", "end", "host", "pid"])

    # ------------------------------------------------------------ plots
    def plot_scores(self, ax=None, metric=None):
        """Outer-fold scores per metric with mean ± std (a ScoresDisplay)."""
        from .display import ScoresDisplay

        return ScoresDisplay.from_results(self, metric=metric).plot(ax=ax)

    def plot_grid(self, ax=None, **kwargs):
        """Mean inner score over one or two grid parameters (a GridDisplay)."""
        from .display import GridDisplay

        return GridDisplay.from_results(self, **kwargs).plot(ax=ax)

    def plot_permutation(self, ax=None):
        """Null distribution, observed score and p-value (a PermutationDisplay)."""
        from .display import PermutationDisplay

        return PermutationDisplay.from_results(self).plot(ax=ax)

    def plot_timeline(self, ax=None):
        """Tasks as bars per worker over time (a TimelineDisplay)."""
        from .display import TimelineDisplay

        return TimelineDisplay.from_results(self).plot(ax=ax)

    def _repr_html_(self):
        from .display import results_html

        return results_html(self)

    def __repr__(self):
        means = ", ".join(f"{m}={s.mean():.4f}" for m, s in self.test_scores.items())
        return f"<Results {self.workdir}: {self.n_outer} outer folds, {means}>"


def finished_folds(workflow):
    """Outer folds finished so far, from their ``select``/``score`` outputs.

    The partial results of a run in progress, with the columns of
    :meth:`Results.to_frame` (index ``outer_fold``; permutations left out).
    Once the run is complete it equals ``Results.load(workdir).to_frame()``.

    Examples
    --------
    >>> finished_folds(mp.Workflow.open("runs/iris"))     # doctest: +SKIP
                test_accuracy  param_C  fit_time  score_time  error
    outer_fold
    0                0.966667      1.0    0.0021      0.0003   None
    """
    import cloudpickle
    import pandas as pd

    done = workflow.done_ids()
    outputs = {task.outer: store.read_json(store.output_path(workflow.workdir, task.id))
               for task in workflow.tasks
               if task.kind in ("select", "score") and task.permutation is None and task.id in done}
    if not outputs:
        return pd.DataFrame(index=pd.Index([], name="outer_fold"))
    folds = sorted(outputs)
    metrics = list(outputs[folds[0]]["test_scores"])
    frame = pd.DataFrame({f"test_{m}": [outputs[k]["test_scores"][m] for k in folds] for m in metrics},
                         index=pd.Index(folds, name="outer_fold"))
    if "best_index" in outputs[folds[0]]:
        store.check_workdir_is_safe(workflow.workdir)  # unpickling runs code
        candidates = store.load_pickle(workflow.workdir, workflow.workdir / store.EXPERIMENT,
                                       cloudpickle.load).candidates
        best = [None if outputs[k]["best_index"] is None else candidates[outputs[k]["best_index"]] for k in folds]
        for key in sorted({key for params in best if params for key in params}):
            frame[f"param_{key}"] = [None if params is None else plain_value(params.get(key)) for params in best]
    for column in ("fit_time", "score_time", "error"):
        frame[column] = [outputs[k][column] for k in folds]
    return frame


def raise_or_warn_about_fit_failures(raw):
    """scikit-learn's verdict on the outer fits: raise when all failed, warn when some did.

    ``cross_validate`` ends with the same call on the same error texts, so
    the message (counts, grouping of identical errors) is scikit-learn's.
    """
    from sklearn.model_selection._validation import _warn_or_raise_about_fit_failures

    error_score = raw.get("error_score", float("nan"))
    _warn_or_raise_about_fit_failures([{"fit_error": error} for error in raw["errors"]], error_score)


def plain_value(value):
    """``value`` with numpy scalars as Python numbers, so it prints ``1.0``, not ``np.float64(1.0)``.

    Dicts, lists and tuples are converted item by item; anything else (an
    estimator, a string) is returned as is.

    Examples
    --------
    >>> plain_value({"C": np.float64(1.0), "degree": [np.int64(2)]})
    {'C': 1.0, 'degree': [2]}
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: plain_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_value(item) for item in value)
    return value


def _jsonable(value):
    value = plain_value(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return repr(value)  # an estimator or an array as a grid value: its repr


def results_document(results):
    """Everything ``mempamal results --json`` prints: ``results.json`` plus the
    best parameters of each outer fold, the final model's best parameters
    (when the workdir has them) and the summary table, all JSON-able.

    Examples
    --------
    >>> document = results_document(mp.Results.load("runs/iris"))     # doctest: +SKIP
    >>> document["best_params"][0], sorted(document["summary"]["score"])  # doctest: +SKIP
    ({'C': 1.0}, ['mean', 'median', 'std'])
    """
    document = dict(results.raw)
    document["best_params"] = _jsonable(results.best_params)
    final = getattr(results, "best_params_", None)  # the final model's search, when it was run
    document["best_params_"] = _jsonable(final)
    document["summary"] = {metric: {column: float(value) for column, value in row.items()}
                           for metric, row in results.summary().to_dict(orient="index").items()}
    return document
