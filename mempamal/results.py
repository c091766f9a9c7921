"""Results: what a finished workdir says, in scikit-learn's shapes."""

from pathlib import Path

import numpy as np

from .store import integrity
from . import store
from .graph.state import TaskGraph, find_results_problem
from ._constraints import invalid
from .engine.search import cv_results
from .store.records import SelectAllRecord
from .fold_table import (TIMELINE_COLUMNS, fitted_model_record, raise_or_warn_about_fit_failures,  # noqa: F401
                         read_done_output, timeline_frame)
# What the CLI prints comes from here too (the skins import the api modules only).
from .result_values import FoldParams, Params, final_best_params, plain_value, results_document  # noqa: F401



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
        Each outer fold's fitted estimator or search (``return_estimator=True``).

    Examples
    --------
    >>> res = mp.Results.load("runs/iris")
    >>> res.summary()
                  mean       std  median
    accuracy  0.973333  0.018856    0.96
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
            FoldParams(None if i is None else Params(candidates[i]) for i in self.best_index) if self.nested else None
        )
        permutation = raw.get("permutation")
        self.permutation_metric = permutation["metric"] if permutation else None
        self.score = permutation["score"] if permutation else None
        self.permutation_scores = np.array(permutation["permutation_scores"]) if permutation else None
        self.pvalue = permutation["pvalue"] if permutation else None
        # The final search's record (store/records.py: SelectAllRecord, its model's value digest only).
        final = raw.get("final_fit")
        self._final = None if final is None else SelectAllRecord.from_json(final)
        self._models = {}

    @classmethod
    def load(cls, workdir):
        """Read ``results.json`` (and the experiment, for parameter objects).

        Like ``cross_validate``, raises ``ValueError("All the N fits
        failed ...")`` when every outer fit failed, and warns with
        ``FitFailedWarning`` when some did.

        Examples
        --------
        >>> res = mp.Results.load("runs/iris")
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
        if self._final.error:
            # GridSearchCV.fit raises this error and sets no attribute.
            raise ValueError(f"The final search on all the data failed: {self._final.error}")
        return self._final

    @property
    def best_index_(self):
        """Index of the best candidate of the search on all the data (``GridSearchCV.best_index_``).

        Examples
        --------
        >>> res.best_index_
        2
        """
        return self._final_search("best_index_").best_index

    @property
    def best_params_(self):
        """Parameters of the best candidate on all the data (``GridSearchCV.best_params_``).

        Examples
        --------
        >>> res.best_params_
        {'clf__C': 10.0}
        """
        index = self.best_index_
        return Params(self.experiment.candidates[index])

    @property
    def final_cv_results_(self):
        """The search on all the data as ``GridSearchCV.fit(X, y).cv_results_``.

        Examples
        --------
        >>> res.final_cv_results_["mean_test_accuracy"]
        array([0.89333333, 0.96      , 0.98      ])
        """
        final = self._final_search("final_cv_results_")
        return cv_results(self.experiment.candidates, final.inner_scores, final.inner_fit_time,
                          final.inner_score_time, train_scores=final.inner_train_scores or None)

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
        >>> joblib.dump(res.best_estimator_, "model.joblib")
        ['model.joblib']
        """
        final = self._final_search("best_estimator_", search_only=False)
        if final.model is None:
            raise AttributeError("best_estimator_ is not available with refit=False (as GridSearchCV): "
                                 "no candidate was refit on all the data.")
        return self._load_model(final.model)

    @property
    def estimators_(self):
        """Each outer fold's fitted estimator (nested CV: its fitted search), with ``return_estimator=True``.

        ``res.estimators_[k]`` is ``cross_validate(..., return_estimator=True)["estimator"][k]``: in
        nested CV the fitted ``GridSearchCV``/``RandomizedSearchCV`` (``best_params_``,
        ``best_estimator_``, ``cv_results_``...); a fold whose fit failed has None.

        Examples
        --------
        >>> [type(est).__name__ for est in res.estimators_]
        ['GridSearchCV', 'GridSearchCV', 'GridSearchCV']
        >>> res.estimators_[0].predict(X[:3])
        array([0, 0, 0])
        """
        records = self.raw.get("estimators")
        if records is None:
            raise AttributeError("estimators_ is not available: build the experiment with return_estimator=True.")
        return [None if record is None else self._load_model(record) for record in records]

    def _load_model(self, record):
        from .engine.models import load_model

        if record["name"] not in self._models:
            self._models[record["name"]] = load_model(self.workdir, fitted_model_record(self.workdir, record), expected=record)
        return self._models[record["name"]]

    # ------------------------------------------------------------ tables
    def cv_results(self, outer_fold):
        """The inner search of ``outer_fold`` as ``GridSearchCV.cv_results_``.

        Examples
        --------
        >>> res.cv_results(0)["mean_test_accuracy"]
        array([0.9 , 0.94, 0.95])
        """
        if not self.nested:
            raise invalid("cv_results is only defined for nested cross-validation (a param_grid was given).")
        if not 0 <= outer_fold < self.n_outer:
            raise IndexError(f"outer_fold must be in [0, {self.n_outer}); got {outer_fold}.")
        inner = self.raw["inner"][outer_fold]
        return cv_results(self.experiment.candidates, inner["scores"], inner["fit_time"], inner["score_time"],
                          train_scores=inner.get("train_scores"))

    @property
    def indices(self):
        """The outer splits, as ``cross_validate(..., return_indices=True)["indices"]``.

        ``{"train": (array, ...), "test": (array, ...)}``, one array per
        outer fold, as the outer ``cv`` gave them (boolean masks if it gave
        masks). With permutations, the splits of the real data.

        Examples
        --------
        >>> train, test = res.indices["train"][0], res.indices["test"][0]
        >>> len(train) + len(test) == len(X)
        True
        """
        from .engine.splits import given_indices

        return given_indices(self.workdir)

    def inner_indices(self, outer_fold):
        """The inner splits of ``outer_fold``, in the form of :attr:`indices`.

        They index the outer fold's training subset, as ``GridSearchCV.fit``
        split it: the rows of ``X`` are ``res.indices["train"][k][inner]``.
        ``outer_fold=None``: the splits of the final search on all the data
        (``final_fit=True``).

        Examples
        --------
        >>> inner = res.inner_indices(0)
        >>> rows = res.indices["train"][0][inner["test"][0]]   # rows of X tested by inner fold 0
        >>> len(inner["test"]), len(rows) < len(res.indices["train"][0])
        (2, True)
        """
        from .engine.splits import given_indices

        if not self.nested:
            raise invalid("inner_indices is only defined for nested cross-validation (a param_grid was given).")
        if outer_fold is None:
            self._final_search("inner_indices(None)")
        elif not 0 <= outer_fold < self.n_outer:
            raise IndexError(f"outer_fold must be in [0, {self.n_outer}) or None; got {outer_fold}.")
        return given_indices(self.workdir, outer_fold)

    # ------------------------------------------------------- predictions
    @property
    def fold_predictions(self):
        """``[(test_indices, predictions), ...]``, one pair per outer fold (``predict=``).

        Defined for any outer cv; ``predictions`` is None for a fold whose
        fit failed.

        Examples
        --------
        >>> test, proba = res.fold_predictions[0]
        """
        from .engine.predictions import load_fold_predictions
        from .engine.splits import MAIN, SplitSet

        stored = self.raw.get("predictions")
        if stored is None:
            raise invalid("No predictions were made: build the Experiment with "
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
        >>> res.predictions.shape
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
        >>> res.summary()
                      mean       std  median
        accuracy  0.973333  0.018856    0.96
        """
        import pandas as pd

        rows = {m: {"mean": np.mean(s), "std": np.std(s), "median": np.median(s)} for m, s in self.test_scores.items()}
        return pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "std", "median"])

    def to_frame(self):
        """One row per outer fold: test scores, best parameters, times, error.

        Examples
        --------
        >>> res.to_frame()[["test_accuracy", "param_clf__C"]]
                    test_accuracy  param_clf__C
        outer_fold
        0                    1.00          10.0
        1                    0.96          10.0
        2                    0.96          10.0
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
        """DataFrame of every finished task: kind, start, ready, end, host, pid.

        ``start`` is when the task began, ``ready`` when its worker had the
        workdir loaded (later than ``start`` only for a worker's first task:
        its start-up, imports and unpickling), ``end`` when its output was
        written; times are seconds since the epoch.

        Examples
        --------
        >>> res.timeline().groupby("kind").size()
        kind
        final          1
        fit           18
        fit-all        6
        select         3
        select-all     1
        dtype: int64
        """
        return timeline_frame(self.workdir)

    # ------------------------------------------------------------ plots
    def plot_scores(self, ax=None, metric=None):
        """Outer-fold scores per metric with mean ± std (a ScoresDisplay).

        Examples
        --------
        ``ScoresDisplay.from_results(res, metric=metric, ax=ax)``:

        >>> res.plot_scores(metric="accuracy").lines_["accuracy"].get_ydata()
        array([1.  , 0.96, 0.96])
        """
        from .display import ScoresDisplay

        return ScoresDisplay.from_results(self, metric=metric, ax=ax)

    def plot_grid(self, ax=None, **kwargs):
        """Mean inner score over one or two grid parameters (a GridDisplay).

        Examples
        --------
        ``GridDisplay.from_results(res, ax=ax, **kwargs)`` (``params``,
        ``metric``, ``outer_fold``):

        >>> len(res.plot_grid(params=["clf__C"]).best_markers_)
        3
        >>> res.plot_grid(params=["clf__C"], outer_fold=1).lines_[0].get_ydata()
        array([0.87, 0.93, 0.97])
        """
        from .display import GridDisplay

        return GridDisplay.from_results(self, ax=ax, **kwargs)

    def plot_search(self, ax=None, metric=None):
        """Mean inner score per candidate and outer fold, the chosen one starred (a SearchDisplay).

        Examples
        --------
        >>> res.plot_search().best == list(res.best_index)
        True
        """
        from .display import SearchDisplay

        return SearchDisplay.from_workflow(TaskGraph.open(self.workdir), metric=metric, ax=ax)

    def plot_permutation(self, ax=None):
        """Null distribution, observed score and p-value (a PermutationDisplay).

        Examples
        --------
        ``PermutationDisplay.from_results(res, ax=ax)``:

        >>> perm_res.plot_permutation().line_.get_label()
        'observed 0.967 (p = 0.167)'
        """
        from .display import PermutationDisplay

        return PermutationDisplay.from_results(self, ax=ax)

    def plot_timeline(self, ax=None):
        """Tasks as bars per worker over time (a TimelineDisplay).

        Examples
        --------
        ``TimelineDisplay.from_results(res, ax=ax)``:

        >>> sorted(res.plot_timeline().bars_)
        ['final', 'fit', 'fit-all', 'select', 'select-all']
        """
        from .display import TimelineDisplay

        return TimelineDisplay.from_results(self, ax=ax)

    def _repr_html_(self):
        from .display import results_html

        return results_html(self)

    def __repr__(self):
        means = ", ".join(f"{m}={s.mean():.4f}" for m, s in self.test_scores.items())
        text = f"<Results {self.workdir}: {self.n_outer} outer folds, {means}>"
        from .description import short_line

        text += f"\n  experiment: {short_line(self.experiment)}"
        if self.nested:
            # The two easily confused names, each said for what it is.
            text += f"\n  best_params (one per outer fold): {self.best_params!r}"
        return text + self._final_line()

    def _final_line(self):
        """The repr's line about the final model (none with final_fit=False)."""
        final = self._final
        if final is None:
            return ""
        if final.error:
            return "\n  final model: none (the search on all the data failed)"
        if not self.nested:
            return "\n  final model: best_estimator_ fitted on all the data"
        params = f"best_params_={self.best_params_!r} (the search on all the data)"
        refit = "refit on all the data" if final.model else "not refit (refit=False)"
        return f"\n  final model: {params}, {refit}"
