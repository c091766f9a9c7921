"""Experiment: what to evaluate, checked up front, turned into a workdir.

Everything is validated before the first file is written; the manifest is
written last, so an interrupted build is never trusted by a later run.
"""

import numbers
from pathlib import Path

import numpy as np

from . import build_files, store
from .validation import arguments as validation, build as validation_build
from .store.lock import WorkdirLock
from .store.fingerprint import code_digest, data_hash, describe, fingerprint
from .engine.config import capture_config, fingerprinted_config
from .engine.grid import chunk_points, expand_grid, prefix_keys, sample_candidates
from .engine.splits import MAIN, compute_split_set, copy_splitter, permutation_name, permuted_target_indices
from .store.tasktable import make_table
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
        Keep each outer fold's fitted estimator (``res.estimators_``; nested:
        the fitted search, as ``cross_validate(..., return_estimator=True)``).
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

    def __init__(self, estimator, param_grid=None, *, cv=5, inner_cv=None, scoring=None, refit=True,
                 n_permutations=0, random_state=0, error_score=np.nan, param_distributions=None,
                 n_iter=10, final_fit=True, return_estimator=False, return_train_score=False, predict=None):
        validation.check_estimator(estimator)
        validation.check_param_grid(estimator, param_grid)
        validation.check_param_distributions(estimator, param_distributions, param_grid, n_iter)
        validation.check_experiment_params({
            "cv": cv, "inner_cv": inner_cv, "error_score": error_score, "n_permutations": n_permutations,
            "random_state": random_state, "final_fit": final_fit, "return_estimator": return_estimator,
            "return_train_score": return_train_score, "predict": predict})
        self.metrics = validation.check_scoring_and_refit(estimator, scoring, refit, error_score)
        validation.check_refit_false(param_grid, self.metrics, refit)
        validation.warn_unused_inner_cv(param_grid if param_distributions is None else param_distributions,
                                        inner_cv)
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
    def build(self, X, y=None, *, groups=None, params=None, workdir="mempamal-run", overwrite=False,
              chunk_size="auto", splits_from=None, reuse=False):
        """Validate the data, compute the splits and write the workdir.

        ``X, y=None, *, groups=None, ...`` as ``cross_validate``; ``y`` is
        required (its default only keeps scikit-learn's signature).

        Rebuilding the same experiment on the same data into the same
        workdir keeps every finished task; a different experiment or data is
        refused unless ``overwrite=True`` or ``reuse=True``.

        ``reuse=True`` grows the experiment of another build in ``workdir``
        without redoing it: every finished task of that build whose
        definition, proved by content (estimator, scoring, data, the split's
        own indices, the grid point's parameters, the fit options), is
        unchanged is kept, and only the rest runs -- more grid points (the
        inner fits of the old points are kept, whatever the chunking), more
        permutations, more repeats of a repeated splitter, ``final_fit`` or
        ``return_estimator`` switched on.  Anything changing a task's
        meaning keeps nothing of what it touches, with a warning naming
        what differs; ``wf.status().kept`` counts the kept tasks
        (:mod:`mempamal.reuse`, docs/research-loop.md "Grow without
        redoing").

        ``params`` is sample-aligned metadata (``{"sample_weight": w}``),
        stored in ``data/`` and routed as ``cross_validate(..., params=params)``
        routes it: to ``fit`` without metadata routing, by the estimator's
        and scorer's requests with ``sklearn.set_config(enable_metadata_routing=True)``
        (the setting in force when ``build`` is called).

        ``splits_from`` names another workdir built on the same data
        (refused otherwise): its outer splits are used as they are, as
        ``cv=`` a list of ``(train, test)`` splits would be, so that two
        models can be compared fold by fold (:func:`mempamal.compare`).
        The inner splits are this experiment's own ``inner_cv`` on them.

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
        validation_build.check_build_arguments(workdir, overwrite, chunk_size, reuse)
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
        shared_splits = None
        if splits_from is not None:
            # The other workdir's outer splits, refused before anything is written if its data differ.
            shared_splits = build_files.outer_splits_of(splits_from, identity_parts["data"])
            identity_parts["outer_splits"] = data_hash(*(part for split in shared_splits for part in split))
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
            same = build_files.reusable(workdir, identity, overwrite, reuse) and not self._lacks_final_search(workdir)
            split_sets = None if same else self._compute_split_sets(X, y, groups, cv=shared_splits,
                                                                     routing=metadata["routing"])
            if split_sets is None:
                split_set_info = store.read_json(workdir / store.TASKS)["split_sets"]
            else:
                split_set_info = {name: build_files.split_set_info(s) for name, (s, _) in split_sets.items()}
            table = self._task_table(split_set_info, chunk_size)
            if same:
                build_files.update_task_table(workdir, table)
            else:
                # reuse=True: the old build's trusted results, read before it is cleared.
                harvested = _harvest(workdir) if reuse else None
                build_files.write_new_workdir(self, workdir, identity, X, y, groups, split_sets, table,
                                              metadata=metadata, data_digest=identity_parts["data"],
                                              metadata_digest=identity_parts.get("metadata"), harvested=harvested)
        finally:
            if lock is not None:
                lock.release()
        return Workflow.open(workdir)

    def run(self, X, y=None, *, groups=None, params=None, workdir="mempamal-run", backend="local", n_jobs=None,
            overwrite=False, progress=False, chunk_size="auto", splits_from=None, reuse=False, **options):
        """Build and run in one call; returns the :class:`mempamal.Results`.

        The arguments are those of :meth:`build` and :meth:`mempamal.Workflow.run`, keyword-only after ``y``.

        Examples
        --------
        >>> res = exp.run(X, y, workdir="runs/iris", n_jobs=2, progress=False)   # finished: nothing to run
        """
        from .backends.base import check_backend

        # A wrong backend, its options or n_jobs -- or a script whose workers
        # would run it again -- is refused before the build writes anything.
        check_backend(backend, n_jobs, options)
        workflow = self.build(X, y, groups=groups, params=params, workdir=workdir, overwrite=overwrite,
                              chunk_size=chunk_size, splits_from=splits_from, reuse=reuse)
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
                raise validation.invalid(f"The 'params' parameter of Experiment.build could not be routed "
                                         f"as cross_validate routes it: {exc}") from exc
        return {"params": params, "routing": routing}

    def _compute_split_sets(self, X, y, groups, cv=None, routing=False):
        """``{name: (split_set, target_order)}`` for the data and each permutation.

        ``cv``: given outer splits (``splits_from``), else the experiment's.
        ``y`` is shuffled within groups as ``permutation_test_score(groups=g)``;
        with metadata routing (``routing``) as ``permutation_test_score(params=
        {"groups": g})``: the splitters get the groups, the shuffle is over all samples.
        """
        from ._sklearn_compat import _safe_indexing

        # One private copy of each splitter, used in scikit-learn's call order.
        if cv is not None:
            pass  # splits_from: another workdir's outer splits, as a list
        elif hasattr(self.cv, "split"):
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
        shuffle_groups = None if groups is None or routing else np.asarray(groups)
        orders = permuted_target_indices(_n_samples(y), shuffle_groups,
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

def _harvest(workdir):
    """What a ``reuse=True`` build may keep of the build in ``workdir`` (None: there is none)."""
    from .reuse import harvest

    if not (workdir / store.MANIFEST).exists():
        return None
    return harvest(workdir, _metadata_digest)


def _metadata_digest(manifest):
    """The metadata digest of an old build (one built before it was recorded: None without metadata)."""
    if "metadata_digest" in manifest:
        return manifest["metadata_digest"]
    metadata = manifest.get("metadata", {})
    return None if not metadata.get("params") and not metadata.get("routing") else "unknown"


def _materialize_iterable(cv):
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        return int(cv)  # np.int64(3) means 3 folds, as in check_cv
    if cv is None or hasattr(cv, "split"):
        return cv
    return [(np.asarray(train), np.asarray(test)) for train, test in cv]


def _n_samples(value):
    return value.shape[0] if hasattr(value, "shape") else len(value)
