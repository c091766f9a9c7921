"""Experiment: what to evaluate, checked up front, turned into a workdir.

Everything is validated before the first file is written; the manifest is
written last, so an interrupted build is never trusted by a later run.
"""

import numbers
import shutil
import sys
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

from .store import integrity
from . import store
from .validation import arguments as validation, build as validation_build
from .store.lock import LOCK_NAME, WorkdirLock
from .store.fingerprint import code_digest, data_hash, describe, fingerprint
from .engine.context import capture_config, fingerprinted_config
from .engine.grid import chunk_points, expand_grid, prefix_keys, sample_candidates
from .engine.splits import MAIN, compute_split_set, copy_splitter, permutation_name, permuted_target_indices, save_split_set
from .store.taskfile import changed_task_ids, read_table, table_digest
from .store.tasktable import TaskTable, make_table
from .description import write_description
from .workflow import Workflow


class Experiment:
    """A scikit-learn evaluation to run as a task graph.

    Parameters
    ----------
    estimator : estimator or Pipeline
        Any scikit-learn compatible estimator, including classes defined in a
        notebook (stored with cloudpickle).
    param_grid : dict or list of dicts, optional
        As ``GridSearchCV``; ``None`` means plain cross-validation.
    cv, inner_cv : int, CV splitter or iterable
        Outer and inner splitting, as ``check_cv``. ``inner_cv=None`` is
        5-fold, like GridSearchCV; it is used only with ``param_grid``.
    scoring : str, callable, list or dict, optional
        As scikit-learn; several metrics need ``refit`` to name one.
    refit : bool, str or callable
        The metric (or callable) choosing the best grid point.
    n_permutations : int
        ``> 0`` adds a permutation test (``permutation_test_score``).
    random_state : int, RandomState or None, default=0
        Seed of the permutations (``permutation_test_score``'s default 0)
        and of the candidates sampled from ``param_distributions``.
    error_score : 'raise' or float
        Score of a failing fit (the error is kept), as scikit-learn.
    param_distributions : dict or list of dicts, optional
        Instead of ``param_grid``: ``RandomizedSearchCV`` semantics, ``n_iter``
        candidates sampled with ``random_state`` by scikit-learn's
        ``ParameterSampler`` (``scipy.stats`` distributions and lists), once,
        when first needed: every task sees the same list.
    n_iter : int
        Number of sampled candidates with ``param_distributions``.
    final_fit : bool
        Also run the search on all the data and refit its best point there
        (``res.best_estimator_``), as ``GridSearchCV.fit(X, y)``.
    return_estimator : bool
        Keep each outer fold's fitted estimator (``res.estimators_``).
    return_train_score : bool
        Train scores, outer and inner, as scikit-learn.
    predict : None or str
        ``"predict"``, ``"predict_proba"``, ``"predict_log_proba"`` or
        ``"decision_function"``: out-of-fold predictions (``res.predictions``).

    Examples
    --------
    >>> import numpy as np, mempamal as mp
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = load_iris(return_X_y=True)
    >>> exp = mp.Experiment(LogisticRegression(max_iter=500),
    ...                     param_grid={"C": np.logspace(-2, 2, 3)}, cv=2, inner_cv=2)
    >>> wf = exp.build(X, y, workdir="runs/logistic")
    >>> res = wf.run(n_jobs=1, progress=False)
    >>> res.summary()
               mean       std    median
    score  0.966667  0.006667  0.966667
    """

    def __init__(self, estimator, param_grid=None, cv=5, inner_cv=None, scoring=None, refit=True,
                 n_permutations=0, random_state=0, error_score=np.nan, *, param_distributions=None,
                 n_iter=10, final_fit=True, return_estimator=False, return_train_score=False, predict=None):
        validation.check_estimator(estimator)
        validation.check_param_grid(estimator, param_grid)
        validation.check_param_distributions(estimator, param_distributions, param_grid, n_iter)
        validation.check_cv_argument(cv, "cv")
        validation.check_cv_argument(inner_cv, "inner_cv")
        validation.check_error_score(error_score)
        self.metrics = validation.check_scoring_and_refit(estimator, scoring, refit, error_score)
        validation.check_refit_false(param_grid, self.metrics, refit)
        validation.check_n_permutations(n_permutations)
        validation.check_random_state(random_state)
        validation.warn_unused_inner_cv(param_grid if param_distributions is None else param_distributions,
                                        inner_cv)
        for flag, value in (("final_fit", final_fit), ("return_estimator", return_estimator),
                            ("return_train_score", return_train_score)):
            validation.check_flag(value, flag)
        validation.check_predict(predict)
        validation.check_predict_method(estimator, predict)
        self.estimator = estimator
        self.param_grid = param_grid
        # A generator of splits can be read only once (and not pickled).
        self.cv = _materialize_iterable(cv)
        self.inner_cv = _materialize_iterable(inner_cv)
        self.scoring = scoring
        self.refit = refit
        self.n_permutations = int(n_permutations)
        self.random_state = random_state
        self.error_score = error_score
        self.param_distributions = param_distributions
        self.n_iter = int(n_iter)
        self._sampled = None  # (candidates, descriptions), sampled once
        self.sklearn_config = None  # scikit-learn's global config, captured by build
        self.final_fit = bool(final_fit)
        self.return_estimator = bool(return_estimator)
        self.return_train_score = bool(return_train_score)
        self.predict = predict

    @property
    def nested(self):
        """True when a search (grid or randomized) runs inside each outer fold.

        Examples
        --------
        >>> from sklearn.svm import SVC
        >>> Experiment(SVC(), param_grid={"C": [1.0, 10.0]}).nested, Experiment(SVC()).nested
        (True, False)
        """
        return self.param_grid is not None or self.param_distributions is not None

    @property
    def candidates(self):
        """The candidates of the search (empty for plain CV).

        ``ParameterGrid`` order for ``param_grid``; for ``param_distributions``
        the ``n_iter`` candidates ``RandomizedSearchCV`` samples, drawn once
        for this experiment.

        Examples
        --------
        >>> from scipy.stats import loguniform
        >>> from sklearn.linear_model import LogisticRegression
        >>> exp = Experiment(LogisticRegression(), param_distributions={"C": loguniform(1e-2, 1e2)},
        ...                  n_iter=4, random_state=0)
        >>> len(exp.candidates)
        4
        """
        return self.search_space()[0]

    def search_space(self):
        """``(candidates, descriptions)``: the candidates and the value identities
        that prefix sharing and chunking use (see :mod:`mempamal.engine.grid`).

        Examples
        --------
        >>> from sklearn.linear_model import LogisticRegression
        >>> Experiment(LogisticRegression(), param_grid={"C": [1, 10]}).search_space()[0]
        [{'C': 1}, {'C': 10}]
        """
        if self.param_distributions is not None:
            if getattr(self, "_sampled", None) is None:
                self._sampled = sample_candidates(self.param_distributions, self.n_iter, self.random_state)
            return self._sampled
        if self.param_grid is not None:
            return expand_grid(self.param_grid)
        return [], []

    def describe(self):
        """A session-independent description (used to recognize a workdir).

        Examples
        --------
        >>> from sklearn.svm import SVC
        >>> Experiment(SVC(), cv=3).describe()["cv"]
        3
        """
        names = ("estimator", "param_grid", "cv", "inner_cv", "scoring", "refit",
                 "n_permutations", "random_state", "error_score", "param_distributions", "n_iter",
                 "final_fit", "return_estimator", "return_train_score", "predict")
        description = {name: describe(getattr(self, name)) for name in names}
        if self.param_distributions is not None:
            description["candidates"] = describe(self.candidates)
        description["sklearn_config"] = describe(fingerprinted_config(self._config()))
        return description

    def _config(self):
        """The captured scikit-learn config, or the current one before the first build."""
        import sklearn

        return getattr(self, "sklearn_config", None) or sklearn.get_config()

    def fingerprint(self):
        """Digest of what runs: the structure of :meth:`describe` plus the
        pickled code of the estimator, scorers, refit callable and splitters
        (:func:`mempamal.store.fingerprint.code_digest`), so a different lambda or
        an edited notebook class is a different experiment.

        Examples
        --------
        >>> from sklearn.linear_model import LogisticRegression
        >>> a = Experiment(LogisticRegression(), scoring=lambda est, X, y: 1.0)
        >>> b = Experiment(LogisticRegression(), scoring=lambda est, X, y: 0.0)
        >>> a.fingerprint() == b.fingerprint()
        False
        """
        # Sampled candidates, not the distributions: a frozen scipy.stats
        # distribution pickles the global RandomState along with it.
        searched = self.candidates if self.param_distributions is not None else None
        runs = (self.estimator, self.param_grid, self.cv, self.inner_cv, self.scoring, self.refit,
                self.random_state, self.error_score, searched)
        return fingerprint({"experiment": self.describe(), "code": code_digest(*runs)})

    def __repr__(self):
        kind = "sampled candidates" if self.param_distributions is not None else "grid points"
        grid = f", {len(self.candidates)} {kind}" if self.nested else ""
        perms = f", {self.n_permutations} permutations" if self.n_permutations else ""
        return f"Experiment({type(self.estimator).__name__}{grid}, cv={self.cv!r}{perms})"

    def _repr_html_(self):
        from .display import experiment_html

        return experiment_html(self)

    # ------------------------------------------------------------ build
    def build(self, X, y, groups=None, params=None, workdir="mempamal-run", overwrite=False, chunk_size="auto"):
        """Validate the data, compute the splits and write the workdir.

        Rebuilding the same experiment on the same data into the same
        workdir keeps every finished task; a different experiment or data is
        refused unless ``overwrite=True``.

        ``params`` is sample-aligned metadata (``{"sample_weight": w}``),
        stored in ``data/`` and routed as ``cross_validate(..., params=params)``
        routes it: to ``fit`` without metadata routing, by the estimator's
        and scorer's requests with ``sklearn.set_config(enable_metadata_routing=True)``
        (the setting in force when ``build`` is called).

        Returns the :class:`mempamal.Workflow`.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from sklearn.svm import SVC
        >>> X, y = load_iris(return_X_y=True)
        >>> wf = Experiment(SVC(), param_grid={"C": [1.0, 10.0]}, cv=3, inner_cv=3).build(
        ...     X, y, workdir="runs/svc")
        >>> wf.status()["total"], wf.status()["done"]
        (29, 0)
        >>> w = np.where(y == 0, 2.0, 1.0)   # sample weights, split with the samples
        >>> wf = Experiment(SVC(), cv=3).build(X, y, params={"sample_weight": w}, workdir="runs/w")
        """
        validation_build.check_build_arguments(workdir, overwrite, chunk_size)
        validation_build.check_data(X, y, groups)
        validation_build.check_permutation_groups(groups, self.n_permutations)
        validation_build.check_params(params, _n_samples(X))
        validation.warn_random_state_instances(self.estimator, self.param_grid, self.param_distributions,
                                               self.cv, self.inner_cv)
        # Tasks run under the scikit-learn config of the build (transform_output,
        # assume_finite, metadata routing, ...), whatever process runs them.
        self.sklearn_config = capture_config()
        chunk_size = chunk_size if chunk_size == "auto" else int(chunk_size)
        X, y, groups = (validation_build.as_indexable(v) for v in (X, y, groups))
        metadata = self._metadata(params)
        workdir = Path(workdir)
        identity_parts = {"experiment": self.fingerprint(), "data": data_hash(X, y, groups)}
        if metadata["params"] or metadata["routing"]:
            # Only then: workdirs built without metadata keep their identity.
            identity_parts["metadata"] = {"params": data_hash(metadata["params"]), "routing": metadata["routing"]}
        identity = fingerprint(identity_parts)
        # Rewriting a workdir that a run is using would mix two builds:
        # refused (naming the runner) while it holds the lock.
        lock = WorkdirLock(workdir, purpose="build") if store.is_workdir(workdir) else None
        if lock is not None:
            lock.acquire()
        try:
            # Everything that can be refused is checked before the first file is
            # written or an old build is cleared.
            reuse = self._reusable(workdir, identity, overwrite) and not self._lacks_final_search(workdir)
            split_sets = None if reuse else self._compute_split_sets(X, y, groups)
            if split_sets is None:
                split_set_info = store.read_json(workdir / store.TASKS)["split_sets"]
            else:
                split_set_info = {name: _split_set_info(s) for name, (s, _) in split_sets.items()}
            table = self._task_table(split_set_info, chunk_size)
            if reuse:
                _update_task_table(workdir, table)
            else:
                self._write_new_workdir(workdir, identity, X, y, groups, split_sets, table, metadata=metadata)
        finally:
            if lock is not None:
                lock.release()
        return Workflow.open(workdir)

    def run(self, X, y, groups=None, params=None, workdir="mempamal-run", backend="local", n_jobs=-1,
            overwrite=False, progress=True, chunk_size="auto", **options):
        """Build and run in one call; returns the :class:`mempamal.Results`.

        Examples
        --------
        >>> res = exp.run(X, y, workdir="runs/iris", n_jobs=2, progress=False)   # finished: nothing to run
        """
        from .backends.base import check_backend

        # A wrong backend, its options or n_jobs -- or a script whose workers
        # would run it again -- is refused before the build writes anything.
        check_backend(backend, n_jobs, options)
        workflow = self.build(X, y, groups=groups, params=params, workdir=workdir, overwrite=overwrite,
                              chunk_size=chunk_size)
        return workflow.run(backend=backend, n_jobs=n_jobs, progress=progress, **options)

    def _metadata(self, params):
        """``{"params": {name: indexable}, "routing": bool}``: the metadata of a build.

        The routing flag is scikit-learn's global ``enable_metadata_routing``
        at build time (``engine.metadata.routing_enabled``, the one place
        that reads it); tasks run with it.  Routing is checked here, so
        metadata nobody requests fails before anything is written.
        """
        from .engine.metadata import check_routing, routing_enabled
        from .engine.scoring import build_scorer

        routing = routing_enabled()
        params = {name: validation_build.as_indexable(value) for name, value in (params or {}).items()}
        if params:
            scorer = build_scorer(self.estimator, self.scoring, self.error_score)[0]
            try:
                check_routing(self, scorer, params, routing)
            except (ValueError, TypeError) as exc:
                raise (ValueError if isinstance(exc, ValueError) else TypeError)(f"The 'params' argument of Experiment.build could not be routed "
                                f"as cross_validate routes it: {exc}") from exc
        return {"params": params, "routing": routing}

    def _compute_split_sets(self, X, y, groups):
        """``{name: (split_set, target_order)}`` for the data and each permutation."""
        from ._sklearn_compat import _safe_indexing

        # One private copy of each splitter, used in scikit-learn's call order.
        if hasattr(self.cv, "split"):
            cv = copy_splitter(self.cv)
        elif self.cv is None or isinstance(self.cv, int):
            cv = self.cv
        else:
            cv = list(self.cv)  # an iterable of splits is consumed once, then reused
        def check_outer(outer):  # before the inner splits slice the outer training subsets
            validation_build.check_split_set({"outer": outer, "inner": []}, _n_samples(X))

        # Only the real data gets the final search (permutations measure, they build no model).
        split_sets = {MAIN: (compute_split_set(self.estimator, X, y, groups, cv, self.inner_cv, self.nested,
                                               final_fit=self.final_fit, check_outer=check_outer), None)}
        validation_build.check_split_set(split_sets[MAIN][0], _n_samples(X))
        orders = permuted_target_indices(_n_samples(y), None if groups is None else np.asarray(groups),
                                         self.n_permutations, self.random_state)
        for index, order in enumerate(orders):
            y_permuted = _safe_indexing(y, order)
            split_set = compute_split_set(self.estimator, X, y_permuted, groups, cv, self.inner_cv, self.nested,
                                          check_outer=check_outer)
            validation_build.check_split_set(split_set, _n_samples(X))
            split_sets[permutation_name(index)] = (split_set, order)
        return split_sets

    def _lacks_final_search(self, workdir):
        """A workdir built before the final search existed has no inner splits of all the data."""
        stored = store.read_json(workdir / store.TASKS)["split_sets"][MAIN]
        return self.final_fit and "n_inner_all" not in stored

    def _task_table(self, split_set_info, chunk_size):
        if self.nested:
            _, descriptions = self.search_space()
            keys = prefix_keys(self.estimator, descriptions)
            main = split_set_info[MAIN]
            chunks = chunk_points(len(descriptions), keys, sum(main["n_inner"]), chunk_size)
        else:
            chunks = []
        return make_table(split_set_info, chunks, self.nested)

    def _reusable(self, workdir, identity, overwrite):
        """True to reuse an existing build; refuses a workdir it may not replace.

        Nothing is changed on disk: an old build is cleared only by
        :meth:`_write_new_workdir`, once every argument has been checked.
        """
        if not workdir.exists() or not any(workdir.iterdir()):
            return False
        if not store.is_workdir(workdir):
            raise FileExistsError(
                f"The 'workdir' argument of build must be a new or empty folder, or a mempamal "
                f"workdir; {workdir} holds other files. Choose another workdir."
            )
        manifest_path = workdir / store.MANIFEST
        if manifest_path.exists() and not overwrite:
            try:
                manifest = store.read_json(manifest_path)
            except store.WorkdirError as exc:
                raise store.WorkdirError(f"{exc}. Pass overwrite=True to build it again.") from None
            if manifest.get("fingerprint") == identity:
                problem = _build_problem(workdir, manifest)
                if problem is None:
                    return True
                warnings.warn(f"{problem} Building {workdir} again from scratch.", stacklevel=3)
            else:
                raise FileExistsError(
                    f"{workdir} already holds a different experiment or data (built "
                    f"{manifest.get('created', '?')}). Pass overwrite=True to replace it, or "
                    f"choose another workdir."
                )
        return False

    def _write_new_workdir(self, workdir, identity, X, y, groups, split_sets, table, metadata=None):
        created = not workdir.exists()
        if not created:
            # Replaced with overwrite=True, or an incomplete build (marker
            # without manifest), which is never trusted; the lock stays.
            _clear_workdir(workdir)
        try:
            self._write_files(workdir, identity, X, y, groups, split_sets, table, metadata=metadata)
        except BaseException:
            # A full disk, a kill signal turned into an exception, Ctrl-C:
            # leave nothing half-written behind (no manifest means never
            # trusted anyway, but a half workdir still fills the disk).
            _discard_incomplete_build(workdir, created)
            raise

    def _write_files(self, workdir, identity, X, y, groups, split_sets, table, metadata=None):
        import cloudpickle

        store.make_private_dir(workdir)
        store.atomic_write_bytes(workdir / store.MARKER, b"mempamal workdir\n")
        store.atomic_write_bytes(workdir / store.EXPERIMENT, cloudpickle.dumps(self))
        data_dir = store.make_private_dir(workdir / store.DATA_DIR)
        kinds = {name: store.save_array_like(data_dir, name, value)
                 for name, value in (("X", X), ("y", y), ("groups", groups))}
        metadata = metadata or {"params": {}, "routing": False}
        # Files param-<k> (names like "logisticregression__sample_weight" stay out of file names).
        stored_params = [[name, f"param-{index}", store.save_array_like(data_dir, f"param-{index}", value)]
                         for index, (name, value) in enumerate(metadata["params"].items())]
        store.make_private_dir(workdir / store.SPLITS_DIR)
        for name, (split_set, order) in split_sets.items():
            save_split_set(workdir, name, split_set, order)
        for folder in (store.OUTPUTS_DIR, store.LOGS_DIR):
            store.make_private_dir(workdir / folder)
        store.write_json(workdir / store.TASKS, table)
        write_description(workdir, self, (X, y, groups), table, metadata)  # experiment.json, for people
        store.write_json(workdir / store.MANIFEST, {
            "fingerprint": identity, "build_id": uuid.uuid4().hex,
            "tasks_digest": table_digest(table), "files": integrity.build_file_digests(workdir),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "python": sys.executable, "mempamal_version": _version(), "data": kinds,
            "metrics": self.metrics, "n_tasks": len(TaskTable(table)),
            "metadata": {"routing": metadata["routing"], "params": stored_params},
        })


def _split_set_info(split_set):
    """The task table's summary of one split set: fold counts (and the final search's)."""
    info = {"n_outer": len(split_set["outer"]), "n_inner": [len(f) for f in split_set["inner"]]}
    if "all" in split_set:
        info["n_inner_all"] = len(split_set["all"])
    return info


def _update_task_table(workdir, table):
    """Rebuild of the same experiment: keep outputs of tasks that did not change."""
    old = read_table(workdir)
    if old == table:
        return
    for task_id in changed_task_ids(old, table):
        path = store.output_path(workdir, task_id)
        if path.exists():
            path.unlink()
    store.write_json(workdir / store.TASKS, table)
    manifest = store.read_json(workdir / store.MANIFEST)
    manifest["tasks_digest"] = table_digest(table)
    manifest["n_tasks"] = len(TaskTable(table))
    store.write_json(workdir / store.MANIFEST, manifest)


def _build_problem(workdir, manifest):
    """Why the files of an existing build cannot be reused (None if they can)."""
    try:
        integrity.verify_build_files(workdir, manifest)
        read_table(workdir, manifest)
    except store.WorkdirError as exc:
        return str(exc)
    return None


def _clear_workdir(workdir):
    """Empty ``workdir`` for a new build, keeping the lock this build holds.

    The manifest goes first: if this is interrupted, what is left is an
    incomplete build, which is never trusted.
    """
    (workdir / store.MANIFEST).unlink(missing_ok=True)
    for entry in workdir.iterdir():
        if entry.name.startswith((LOCK_NAME, f".{LOCK_NAME}")):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _discard_incomplete_build(workdir, created):
    if created:
        shutil.rmtree(workdir, ignore_errors=True)
    elif workdir.exists():
        # The folder was there before the build: keep it (and the lock), empty it.
        _clear_workdir(workdir)


def _materialize_iterable(cv):
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        return int(cv)  # np.int64(3) means 3 folds, as in check_cv
    if cv is None or hasattr(cv, "split"):
        return cv
    return [(np.asarray(train), np.asarray(test)) for train, test in cv]


def _n_samples(value):
    return value.shape[0] if hasattr(value, "shape") else len(value)


def _version():
    from ._version import __version__

    return __version__
