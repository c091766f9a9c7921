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
    best_params_, best_index_, final_cv_results_, best_estimator_ :
        The search on all the data and its refit model (``final_fit=True``),
        as ``GridSearchCV.fit(X, y)``; properties, AttributeError when undefined.
    estimators_ :
        Each outer fold's fitted estimator (``return_estimator=True``).

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
        self._final = raw.get("final_fit")
        self._models = {}

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

    # ------------------------------------------------------------ models
    def _final_search(self, attribute, search_only=True):
        """The final search's record, or the error GridSearchCV would give for ``attribute``."""
        if self._final is None:
            raise AttributeError(
                f"{attribute} is not available: the experiment was built with final_fit=False "
                "(build it with final_fit=True to also search and refit on all the data).")
        if search_only and not self.nested:
            raise AttributeError(f"{attribute} is only defined with a search (a param_grid was given); "
                                 "plain cross-validation has res.best_estimator_ only.")
        if self._final.get("error"):
            # GridSearchCV.fit raises this error and sets no attribute.
            raise ValueError(f"The final search on all the data failed: {self._final['error']}")
        return self._final

    @property
    def best_index_(self):
        """Index of the best candidate of the search on all the data (``GridSearchCV.best_index_``).

        Examples
        --------
        >>> res.best_index_                              # doctest: +SKIP
        2
        """
        return self._final_search("best_index_")["best_index"]

    @property
    def best_params_(self):
        """Parameters of the best candidate on all the data (``GridSearchCV.best_params_``).

        Examples
        --------
        >>> res.best_params_                             # doctest: +SKIP
        {'C': 1.0}
        """
        index = self.best_index_
        return dict(self.experiment.candidates[index])

    @property
    def final_cv_results_(self):
        """The search on all the data as ``GridSearchCV.fit(X, y).cv_results_``.

        Examples
        --------
        >>> res.final_cv_results_["mean_test_score"]     # doctest: +SKIP
        """
        final = self._final_search("final_cv_results_")
        return cv_results(self.experiment.candidates, final["inner_scores"], final["inner_fit_time"],
                          final["inner_score_time"])

    @property
    def best_estimator_(self):
        """The final model: the best point refit on all the data (plain CV: the estimator fitted on it).

        Equal to ``GridSearchCV(estimator, param_grid, cv=inner_cv, scoring=scoring,
        refit=refit).fit(X, y, groups=groups).best_estimator_``. Loaded on first use
        from ``models/final.pkl``, refused if that file is not the one the run wrote.
        Undefined (AttributeError) with ``refit=False``, as GridSearchCV.

        Examples
        --------
        >>> import joblib
        >>> joblib.dump(res.best_estimator_, "model.joblib")     # doctest: +SKIP
        """
        final = self._final_search("best_estimator_", search_only=False)
        if final.get("model") is None:
            raise AttributeError("best_estimator_ is not available with refit=False (as GridSearchCV): "
                                 "no candidate was refit on all the data.")
        return self._load_model(final["model"])

    @property
    def estimators_(self):
        """Each outer fold's fitted estimator (the refit best one in nested CV), with ``return_estimator=True``.

        ``res.estimators_[k]`` predicts as ``cross_validate(..., return_estimator=True)["estimator"][k]``;
        a fold whose fit failed has None.

        Examples
        --------
        >>> [est.score(X_new, y_new) for est in res.estimators_]   # doctest: +SKIP
        """
        records = self.raw.get("estimators")
        if records is None:
            raise AttributeError("estimators_ is not available: build the experiment with return_estimator=True.")
        return [None if record is None else self._load_model(record) for record in records]

    def _load_model(self, record):
        from .engine.models import load_model

        if record["name"] not in self._models:
            self._models[record["name"]] = load_model(self.workdir, record)
        return self._models[record["name"]]

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
                frame[f"param_{key}"] = [None if p is None else p.get(key) for p in self.best_params]
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
        text = f"<Results {self.workdir}: {self.n_outer} outer folds, {means}>"
        return text + self._final_line()

    def _final_line(self):
        """The repr's line about the final model (none with final_fit=False)."""
        final = self._final
        if final is None:
            return ""
        if final.get("error"):
            return "\n  final model: none (the search on all the data failed)"
        if not self.nested:
            return "\n  final model: best_estimator_ fitted on all the data"
        params = f"best_params_={_plain(self.best_params_)}"
        refit = "refit on all the data" if final.get("model") else "not refit (refit=False)"
        return f"\n  final model: {params}, {refit}"


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
            frame[f"param_{key}"] = [None if params is None else params.get(key) for params in best]
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


def _plain(params):
    """``{'C': 1.0}``, not ``{'C': np.float64(1.0)}``."""
    return "{" + ", ".join(f"{k!r}: {v.item() if isinstance(v, np.generic) else v!r}" for k, v in params.items()) + "}"
