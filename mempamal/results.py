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
    train_scores : dict or None
        ``{metric: ndarray(n_outer)}`` — ``cross_validate``'s ``train_<metric>``
        (``return_train_score=True``; None otherwise).
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
        train = raw.get("train_scores")
        self.train_scores = None if train is None else {m: np.array(v, dtype=np.float64) for m, v in train.items()}
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
            if status["done"] < status["total"]:
                raise store.WorkdirError(
                    f"{workdir} has no results yet: {status['total'] - status['done']} of {status['total']} "
                    f"tasks are unfinished ({status['failed']} failed, {status['blocked']} blocked by a "
                    f"failure, {status['pending']} pending). Run it with `mempamal run {workdir}` "
                    "(in Python: mp.Workflow.open(workdir).run()).")
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
                          final["inner_score_time"], train_scores=final.get("inner_train_scores"))

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
            self._models[record["name"]] = load_model(self.workdir, self._fitted_record(record), expected=record)
        return self._models[record["name"]]

    def _fitted_record(self, record):
        """The record of the model ``record`` (of results.json) in the output of the task that fitted it.

        That output holds the sha256 of the pickle, checked before anything
        is unpickled; results.json keeps only the model's value digest.
        """
        if "sha256" in record:  # results.json of an older mempamal
            return record
        graph = TaskGraph.open(self.workdir)
        task = graph.task(record["task"])
        path = store.output_path(self.workdir, task.id)
        output = integrity.read_output(path, task.id, graph.manifest["build_id"], task.definition)
        fitted = output.get("model")
        if not fitted or fitted.get("name") != record["name"] or fitted.get("digest") != record.get("digest"):
            raise store.WorkdirError(f"{path} records no model {record['name']!r} as results.json does; run "
                                     "the workdir again (`mempamal run`).")
        return fitted

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
        return cv_results(self.experiment.candidates, inner["scores"], inner["fit_time"], inner["score_time"],
                          train_scores=inner.get("train_scores"))

    # ------------------------------------------------------- predictions
    @property
    def fold_predictions(self):
        """``[(test_indices, predictions), ...]``, one pair per outer fold (``predict=``).

        Defined for any outer cv; ``predictions`` is None for a fold whose
        fit failed.

        Examples
        --------
        >>> test, proba = res.fold_predictions[0]          # doctest: +SKIP
        """
        from .engine.predictions import load_fold_predictions
        from .engine.splits import MAIN, SplitSet

        stored = self.raw.get("predictions")
        if stored is None:
            raise ValueError("No predictions were made: build the Experiment with "
                             "predict='predict' (or 'predict_proba', ...).")
        if getattr(self, "_fold_predictions", None) is None:
            split_set = SplitSet(self.workdir, MAIN)
            y = self._target()
            self._fold_predictions = [
                (split_set.outer(k)[1], None if record is None else load_fold_predictions(self.workdir, record, y))
                for k, record in enumerate(stored["folds"])
            ]
        return self._fold_predictions

    @property
    def predictions(self):
        """Out-of-fold predictions, equal to ``cross_val_predict(..., method=predict)``.

        Defined when the outer cv is a partition (every sample in exactly one
        test fold) and every outer fit succeeded; otherwise raises
        ``ValueError`` (use :attr:`fold_predictions`).

        Examples
        --------
        >>> res.predictions.shape                          # doctest: +SKIP
        (150, 3)
        """
        from .engine.predictions import assemble

        folds = self.fold_predictions
        failed = [k for k, (_, predictions) in enumerate(folds) if predictions is None]
        if failed:
            raise ValueError(
                f"res.predictions is undefined: the fit of outer fold {failed[0]} failed "
                f"({(self.errors[failed[0]] or '').strip().splitlines()[-1:]}), where cross_val_predict "
                "would raise. The other folds are in res.fold_predictions.")
        return assemble([p for _, p in folds], [t for t, _ in folds], self._n_samples())

    def _target(self):
        manifest = store.read_json(self.workdir / store.MANIFEST)
        return store.load_array_like(self.workdir / store.DATA_DIR, "y", manifest["data"]["y"])

    def _n_samples(self):
        y = self._target()
        return y.shape[0] if hasattr(y, "shape") else len(y)

    def summary(self):
        """DataFrame with mean, std and median of the outer test score per metric.

        Examples
        --------
        >>> res.summary()                                                      # doctest: +SKIP
                      mean       std    median
        accuracy  0.953333  0.026667  0.966667
        """
        import pandas as pd

        rows = {m: {"mean": np.mean(s), "std": np.std(s), "median": np.median(s)} for m, s in self.test_scores.items()}
        return pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "std", "median"])

    def to_frame(self):
        """One row per outer fold: test scores, best parameters, times, error.

        Examples
        --------
        >>> res.to_frame()[["test_accuracy", "param_C"]]                       # doctest: +SKIP
                    test_accuracy  param_C
        outer_fold
        0                0.966667      1.0
        1                0.966667     10.0
        """
        import pandas as pd

        frame = pd.DataFrame({f"test_{m}": s for m, s in self.test_scores.items()})
        for metric, scores in (self.train_scores or {}).items():
            frame[f"train_{metric}"] = scores
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
        """DataFrame of every finished task: kind, start, end, host, pid.

        Examples
        --------
        >>> res.timeline().groupby("kind").size()                             # doctest: +SKIP
        kind
        final      1
        fit       18
        select     3
        dtype: int64
        """
        import pandas as pd

        rows = []
        # Trusted outputs only (complete, stamped): outputs are not fsynced, and
        # after an OS crash a listed file may be empty, torn or another task's.
        for task_id in sorted(TaskGraph.open(self.workdir).done_ids()):
            output = _read_done_output(self.workdir, task_id)
            rows.append({key: output.get(key) for key in ("task", "kind", "start", "end", "host", "pid")})
        return pd.DataFrame(rows, columns=["task", "kind", "start", "end", "host", "pid"])

    # ------------------------------------------------------------ plots
    def plot_scores(self, ax=None, metric=None):
        """Outer-fold scores per metric with mean ± std (a ScoresDisplay).

        Examples
        --------
        ``ScoresDisplay.from_results(res, metric=metric, ax=ax)``:

        >>> res.plot_scores(metric="accuracy").lines_["accuracy"].get_ydata()  # doctest: +SKIP
        array([0.96666667, 0.96666667, 0.93333333])
        """
        from .display import ScoresDisplay

        return ScoresDisplay.from_results(self, metric=metric, ax=ax)

    def plot_grid(self, ax=None, **kwargs):
        """Mean inner score over one or two grid parameters (a GridDisplay).

        Examples
        --------
        ``GridDisplay.from_results(res, ax=ax, **kwargs)`` (``params``,
        ``metric``, ``outer_fold``):

        >>> res.plot_grid(params=["C"]).best_markers_                           # doctest: +SKIP
        >>> res.plot_grid(params=["C", "gamma"], outer_fold=1).image_.get_array()  # doctest: +SKIP
        """
        from .display import GridDisplay

        return GridDisplay.from_results(self, ax=ax, **kwargs)

    def plot_permutation(self, ax=None):
        """Null distribution, observed score and p-value (a PermutationDisplay).

        Examples
        --------
        ``PermutationDisplay.from_results(res, ax=ax)``:

        >>> res.plot_permutation().line_.get_label()                           # doctest: +SKIP
        'observed 0.953 (p = 0.0099)'
        """
        from .display import PermutationDisplay

        return PermutationDisplay.from_results(self, ax=ax)

    def plot_timeline(self, ax=None):
        """Tasks as bars per worker over time (a TimelineDisplay).

        Examples
        --------
        ``TimelineDisplay.from_results(res, ax=ax)``:

        >>> sorted(res.plot_timeline().bars_)                                  # doctest: +SKIP
        ['final', 'fit', 'select']
        """
        from .display import TimelineDisplay

        return TimelineDisplay.from_results(self, ax=ax)

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


def _read_done_output(workdir, task_id):
    """The output of a task a scan found done, its digest checked again (it may have changed since)."""
    output, problem = integrity.load_output(store.output_path(workdir, task_id))
    if problem is not None:
        raise store.WorkdirError(f"{problem}; run the workdir again (mempamal run runs that task again).")
    return output


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
    outputs = {outer: _read_done_output(workflow.workdir, task_id)
               for outer, task_id in workflow.table.fold_task_ids() if task_id in done}
    if not outputs:
        return pd.DataFrame(index=pd.Index([], name="outer_fold"))
    folds = sorted(outputs)
    metrics = list(outputs[folds[0]]["test_scores"])
    frame = pd.DataFrame({f"test_{m}": [outputs[k]["test_scores"][m] for k in folds] for m in metrics},
                         index=pd.Index(folds, name="outer_fold"))
    if "train_scores" in outputs[folds[0]]:
        for metric in metrics:
            frame[f"train_{metric}"] = [outputs[k]["train_scores"][metric] for k in folds]
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

    Examples
    --------
    >>> raise_or_warn_about_fit_failures(res.raw)                          # doctest: +SKIP
    FitFailedWarning: 1 fits failed out of a total of 5. ...
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
    document["best_params_"] = _jsonable(final_best_params(results))
    document["summary"] = {metric: {column: float(value) for column, value in row.items()}
                           for metric, row in results.summary().to_dict(orient="index").items()}
    return document


def _plain(params):
    """``{'C': 1.0}``, not ``{'C': np.float64(1.0)}``."""
    return repr(plain_value(dict(params)))


def final_best_params(results):
    """``results.best_params_`` when the final search ran and succeeded, else None.

    Examples
    --------
    >>> final_best_params(mp.Results.load("runs/iris"))     # doctest: +SKIP
    {'C': 1.0}
    """
    try:
        return results.best_params_
    except (AttributeError, ValueError):  # final_fit=False / plain CV, or the final search failed
        return None
