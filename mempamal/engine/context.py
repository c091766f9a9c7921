"""What a worker process knows about a workdir, loaded once and reused.

Loading the experiment pickle, memory-mapping the data and parsing the task
list cost far more than a small task; a worker keeps them for as long as the
workdir's build id (in ``manifest.json``) stays the same, so a rebuilt
workdir is never served from a stale cache.
"""

import os
import threading
from collections import OrderedDict
from pathlib import Path

from ..store import integrity, taskfile, tasktable
from ..store.records import read_record
from .. import store
from . import environment
from .grid import expand_grid, prefix_keys
from .scoring import build_scorer
from .splits import SplitSet

#: The workdirs this process has loaded, most recent last.  Module-level on
#: purpose: it is a worker process's cache of read-only files (a worker
#: belongs to one run at a time), keyed by workdir and checked against its
#: build id on every use, so it holds no run's state.  With ``n_jobs=1``
#: several runs may execute tasks in this process's threads at once: the
#: lock keeps the cache consistent between them.
_CONTEXTS = OrderedDict()
_CONTEXTS_LOCK = threading.Lock()
_MAX_CONTEXTS = 2
_MAX_OUTER_SUBSETS = 2


def load_context(workdir, allow_version_mismatch=False):
    """The cached :class:`WorkdirContext` of ``workdir`` (reloaded after a rebuild).

    A build or rebuild replaces ``manifest.json`` atomically (a new file), so
    an unchanged ``stat`` of it means an unchanged workdir; it is re-read
    only when that changes -- one ``stat`` per task instead of a JSON parse.
    A process whose library versions differ from the build's
    (:mod:`mempamal.engine.environment`) is refused with
    :class:`~mempamal.exceptions.VersionMismatchError`, before anything is
    unpickled, unless ``allow_version_mismatch``.
    """
    key = str(workdir)
    manifest_path = os.path.join(key, store.MANIFEST)
    try:
        info = os.stat(manifest_path)
    except FileNotFoundError:
        raise store.WorkdirError(f"Missing file {manifest_path}.") from None
    signature = (info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns)
    with _CONTEXTS_LOCK:
        context = _CONTEXTS.get(key)
        if context is None or context.manifest_signature != signature:
            manifest = store.read_json(manifest_path)
            context = _CONTEXTS.get(key)
            if context is None or context.identity != (manifest["build_id"], manifest["tasks_digest"]):
                context = WorkdirContext(Path(workdir), manifest, allow_version_mismatch)
            context.manifest_signature = signature
            _CONTEXTS[key] = context
            while len(_CONTEXTS) > _MAX_CONTEXTS:
                _CONTEXTS.popitem(last=False)
        _CONTEXTS.move_to_end(key)
    if context.version_mismatches and not allow_version_mismatch:  # a context loaded with the override
        environment.refuse(context.version_mismatches)
    return context


def load_task_table(workdir, manifest=None):
    """``(TaskTable, split_set_info)`` of ``tasks.json`` (checked against ``manifest`` if given).

    The table computes a record when asked (``records.task(id)``): a worker
    of a million-task graph does not build a million records.

    Examples
    --------
    >>> records, info = load_task_table("runs/iris")
    >>> records.task("final").kind, sorted(info)
    ('final', ['main'])
    """
    table = taskfile.read_table(workdir, manifest)
    # Workers never run commands: no interpreter path in their records.
    return tasktable.TaskTable(table, workdir, python=""), table["split_sets"]


#: Inner splits up to this size are kept for the worker's next task on the
#: same split (consecutive fit tasks mostly share it); larger ones are handed
#: over to the task instead (``inner_split_data``).
KEEP_SPLIT_BYTES = 64 * 2**20


def _is_large(arrays):
    """True when the NumPy arrays among ``arrays`` hold more than :data:`KEEP_SPLIT_BYTES`.

    Other containers (DataFrames, sparse matrices) are kept as before: their
    slices are copied per grid point anyway.
    """
    import numpy as np

    return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray)) > KEEP_SPLIT_BYTES

class WorkdirContext:
    """Experiment, data, splits and task records of one workdir."""

    def __init__(self, workdir, manifest, allow_version_mismatch=False):
        import cloudpickle

        self.workdir = Path(workdir)
        self.manifest = manifest
        self.identity = (manifest["build_id"], manifest["tasks_digest"])
        store.check_workdir_is_safe(self.workdir)  # before importing the modules the manifest names
        # Before the digests of the build files and before unpickling: another
        # scikit-learn may not even load the estimator, and a refusal (per
        # task, nothing cached) must stay cheap.  This process's versions are
        # computed once (environment.version_here).
        built = manifest.get("environment")  # absent in workdirs built before it
        self.versions = environment.versions_for(built) if built else None
        self.version_mismatches = environment.mismatches(built, self.versions) if built else []
        if self.version_mismatches and not allow_version_mismatch:
            environment.refuse(self.version_mismatches)
        # Before anything is unpickled or memory-mapped: the files must be
        # the ones this build wrote (not truncated, edited or swapped).
        self._verified = {}
        self.check_build_files(None)
        self.build_id = manifest["build_id"]
        self._outputs_dir = os.path.join(str(self.workdir), store.OUTPUTS_DIR)
        self._definitions = {}
        self.records, self.split_set_info = load_task_table(self.workdir, manifest)
        try:
            self.experiment = store.load_pickle(self.workdir, self.workdir / store.EXPERIMENT, cloudpickle.load)
        except store.WorkdirError:
            raise
        except Exception as exc:
            raise store.WorkdirError(
                f"Could not load {self.workdir / store.EXPERIMENT} ({type(exc).__name__}: {exc}); "
                "the classes it uses must be importable here."
            ) from None
        experiment = self.experiment
        self.estimator = experiment.estimator
        self.refit = experiment.refit
        self.error_score = experiment.error_score
        self.scorer, self.metrics, _ = build_scorer(self.estimator, experiment.scoring, self.error_score)
        # The candidates stored in the pickle (a randomized search was sampled
        # once, at build): every task of the workdir sees the same list.
        if hasattr(experiment, "search_space"):
            self.candidates, descriptions = experiment.search_space()
        elif experiment.param_grid is None:
            self.candidates, descriptions = [], []
        else:
            self.candidates, descriptions = expand_grid(experiment.param_grid)
        self.prefix_keys = prefix_keys(self.estimator, descriptions) if self.candidates else None
        self.sklearn_config = getattr(experiment, "sklearn_config", None)
        self._data = None
        self._targets = {}
        self._split_sets = {}
        self._outer_subsets = OrderedDict()
        self._inner_split = (None, None)
        self.manifest_signature = None

    # ------------------------------------------------------------ lookup
    def task(self, task_id):
        """The :class:`~mempamal.Task` record of ``task_id``; a clear error names an unknown id."""
        try:
            return self.records.task(task_id)
        except KeyError:
            raise store.WorkdirError(
                f"No task {task_id!r} in {self.workdir / store.TASKS} "
                f"(it has {len(self.records)} tasks, e.g. {self.records.id_at(0)!r})."
            ) from None

    def definition(self, task_id):
        """Digest of what ``task_id`` computes (stamped on its output); computed once per task."""
        definition = self._definitions.get(task_id)
        if definition is None:
            definition = self._definitions[task_id] = self.task(task_id).definition
        return definition

    def stamp(self, task_id):
        """The fields the output of ``task_id`` must start with."""
        return integrity.output_stamp(task_id, self.build_id, self.definition(task_id))

    def environment_fields(self, allow_version_mismatch=False):
        """What every output records of the process that ran it: its versions, and an allowed mismatch.

        ``versions`` are this process's versions of what the build recorded
        (absent for a workdir built before versions were recorded);
        ``version_mismatch_allowed`` (only when the override was used)
        maps each differing name to ``{"here", "build"}``.
        """
        fields = {} if self.versions is None else {"versions": self.versions}
        if self.version_mismatches and allow_version_mismatch:
            fields["version_mismatch_allowed"] = {name: {"here": here, "build": built}
                                                  for name, here, built in self.version_mismatches}
        return fields

    def output_file(self, task_id):
        """Path (a string: no ``pathlib`` per task) of the output of ``task_id``."""
        return os.path.join(self._outputs_dir, store.output_shard(task_id), f"{task_id}.json")

    def log_file(self, task_id):
        """Path (a string) of the error log of ``task_id``."""
        return os.path.join(str(self.workdir), store.LOGS_DIR, f"{task_id}.err")

    def output_problem(self, task_id):
        """Why the existing output of ``task_id`` cannot be trusted (None if it can)."""
        return integrity.output_problem(self.output_file(task_id), task_id, self.build_id, self.definition(task_id))

    def read_output(self, task_id):
        """The output of dependency ``task_id``, refused unless complete, matching its digest and
        stamped for this task and build (outputs are not fsynced: after an OS crash one may be
        torn).  A refused output is removed (the workdir was checked safe: it is ours), so that
        the next run runs ``task_id`` again instead of failing on it for good."""
        path = self.output_file(task_id)
        if not os.path.exists(path):
            raise store.WorkdirError(f"the output of dependency {task_id!r} ({path}) is missing; run it first")
        return integrity.read_output(path, task_id, self.build_id, self.definition(task_id), remove_untrusted=True)

    def read_record(self, task_id):
        """The record (:mod:`mempamal.store.records`) of dependency ``task_id``'s output, read as
        :meth:`read_output` reads it."""
        return read_record(self.read_output(task_id))

    def check_build_files(self, split_set):
        """Refuse the build files a task of ``split_set`` uses if they changed since the build.

        The experiment, every data file and the split file of ``split_set``
        (None: every build file) must have the digest the manifest records.
        A digest is computed only for a file whose ``os.stat`` (inode, size,
        mtime) changed since it was last verified in this process, so a
        worker pays one ``stat`` per file and task, and a file truncated,
        overwritten or swapped while a run goes on is refused before the
        next task uses it.
        """
        files = self.manifest.get("files", {})
        for name, path in (self._build_files_of(split_set, files)):
            try:
                info = os.stat(path)
                key = (info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns)
            except FileNotFoundError:
                key = None
            if key is None or self._verified.get(name) != key:
                self._verified.pop(name, None)
                info = integrity.verify_build_file(self.workdir, name, files[name])
                self._verified[name] = (info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns)

    def _build_files_of(self, split_set, files):
        """``[(name, path)]`` of the build files a task of ``split_set`` uses (None: all), computed once."""
        cache = self.__dict__.setdefault("_files_of_split_set", {})
        if split_set not in cache:
            split_file = f"{store.SPLITS_DIR}/{split_set}.npz"
            cache[split_set] = [(name, os.path.join(str(self.workdir), name)) for name in files
                                if split_set is None or not name.startswith(store.SPLITS_DIR + "/")
                                or name == split_file]
        return cache[split_set]

    def reused_rows(self, split_set, outer, inner):
        """``{str(point): row}`` kept from a previous build for one inner split (``build(..., reuse=True)``).

        ``reused.json`` is a build file (its digest in the manifest, checked
        with the others before every task); a fit task evaluates only the
        points it does not hold (``engine/tasks.py``).
        """
        if getattr(self, "_reused", None) is None:
            name = (self.manifest.get("reuse") or {}).get("file")
            self._reused = store.read_json(self.workdir / name) if name else {}
        return self._reused.get(f"{split_set}/{'all' if outer is None else outer}/{inner}", {})

    def n_inner_splits(self, split_set, outer):
        """Inner splits of outer fold ``outer``; ``outer=None``: of the final search on all data."""
        if outer is None:
            return self.split_set_info[split_set]["n_inner_all"]
        return self.split_set_info[split_set]["n_inner"][outer]

    def estimator_with(self, candidate_index):
        """A fresh clone of the estimator, with candidate ``candidate_index``'s parameters (None: as given)."""
        from sklearn.base import clone

        estimator = clone(self.estimator)
        if candidate_index is not None:
            estimator.set_params(**clone(self.candidates[candidate_index], safe=False))
        return estimator

    # -------------------------------------------------------------- data
    @property
    def data(self):
        """``(X, y, groups)`` of the workdir, memory-mapped where stored as ``.npy``; loaded once."""
        if self._data is None:
            folder = self.workdir / store.DATA_DIR
            kinds = self.manifest["data"]
            self._data = tuple(store.load_array_like(folder, name, kinds[name]) for name in ("X", "y", "groups"))
        return self._data

    def target(self, split_set):
        """y, or y in the permuted order of a permutation split set."""
        if split_set not in self._targets:
            from .._sklearn_compat import _safe_indexing

            y = self.data[1]
            order = self.split_set(split_set).target_order
            self._targets = {split_set: y if order is None else _safe_indexing(y, order)}
        return self._targets[split_set]

    def split_set(self, name):
        """The :class:`~mempamal.engine.splits.SplitSet` named ``name`` (a few kept open)."""
        if name not in self._split_sets:
            self._split_sets[name] = SplitSet(self.workdir, name)
            if len(self._split_sets) > 4:
                self._split_sets.pop(next(iter(self._split_sets)))
        return self._split_sets[name]

    def outer_train_subset(self, split_set, outer):
        """``(X_train, y_train)`` of one outer fold, as cross_validate slices it."""
        from .._sklearn_compat import _safe_split

        if outer is None:
            # The final search: GridSearchCV.fit slices its inner splits from X itself.
            return self.data[0], self.target(split_set)
        key = (split_set, outer)
        if key not in self._outer_subsets:
            train, _ = self.split_set(split_set).outer(outer)
            X = self.data[0]
            self._outer_subsets[key] = _safe_split(self.estimator, X, self.target(split_set), train)
            while len(self._outer_subsets) > _MAX_OUTER_SUBSETS:
                self._outer_subsets.popitem(last=False)
        return self._outer_subsets[key]

    def outer_split_data(self, split_set, outer):
        """``(X_train, y_train, X_test, y_test)`` of one outer fold."""
        from .._sklearn_compat import _safe_split

        # Fresh slices, not the cached subset: the refit estimator may
        # modify its input in place (e.g. StandardScaler(copy=False)).
        train, test = self.split_set(split_set).outer(outer)
        X_train, y_train = _safe_split(self.estimator, self.data[0], self.target(split_set), train)
        X_test, y_test = _safe_split(self.estimator, self.data[0], self.target(split_set), test, train)
        return X_train, y_train, X_test, y_test

    def all_data(self):
        """Private copies of the whole ``(X, y)``: what ``GridSearchCV`` refits its best point on.

        Not the read-only memory maps: the estimator may modify its input
        in place, and the fitted model is pickled.  A ``.npy`` X is mapped
        again copy-on-write (a plain ndarray view of it): the same values, and
        a page is copied only if the estimator writes to it, instead of a
        copy of all of X in the worker (1 GB for a 1 GB X).
        """
        import numpy as np

        from .fitting import _private_copy

        X, y = self.data[0], self.data[1]
        if self.manifest["data"].get("X") == "numpy":
            path = os.path.join(str(self.workdir), store.DATA_DIR, "X.npy")  # verified before this task
            X = np.asarray(np.load(path, mmap_mode="c", allow_pickle=False))
        else:
            X = np.array(X) if isinstance(X, np.ndarray) else _private_copy(X)
        return X, np.array(y) if isinstance(y, np.ndarray) else _private_copy(y)

    def inner_split_data(self, split_set, outer, inner):
        """``((X_train, y_train, X_test, y_test), owned)`` of one inner split:
        the rows GridSearchCV slices from the outer training subset, sliced
        from the memory-mapped X directly (no copy of the outer subset).

        ``owned`` is True when the context keeps no reference to these
        arrays (they are large, see :data:`KEEP_SPLIT_BYTES`): the caller may
        let an estimator write into them."""
        from .._sklearn_compat import _safe_split

        # ``outer=None`` is the final search on all the data.
        # Consecutive fit tasks of a worker mostly share their split; the
        # slices are kept for the next one (never handed to an estimator:
        # every grid point fits and scores private copies of them).
        key, data = self._inner_split
        if key == (split_set, outer, inner):
            return data, False
        self._inner_split = (None, None)
        train, test = self.split_set(split_set).inner(outer, inner)
        if outer is not None:
            # Rows of X itself, not of a copy of the outer training subset:
            # X_outer[train] is X[outer_train[train]] (the same rows, in the
            # same order; for a pairwise estimator the same submatrix), and
            # slicing the memory map directly saves a copy of the outer
            # training rows per worker (0.8 GB of a 1 GB X with 5 outer folds).
            outer_train, _ = self.split_set(split_set).outer(outer)
            train, test = outer_train[train], outer_train[test]
        X, y = self.data[0], self.target(split_set)
        X_train, y_train = _safe_split(self.estimator, X, y, train)
        X_test, y_test = _safe_split(self.estimator, X, y, test, train)
        data = (X_train, y_train, X_test, y_test)
        if not _is_large(data):
            self._inner_split = ((split_set, outer, inner), data)
            return data, False
        # Large slices are not kept: the task owns them and its last grid
        # point fits on them in place instead of on a copy (two copies of
        # the training rows per worker otherwise: 1.2 GB of a 1 GB X).  The
        # next task slices the memory map again, which costs what the copy
        # saved.
        return data, True

    # ---------------------------------------------------------- metadata
    # Sample-aligned metadata of ``build(params=)`` (engine/metadata.py):
    # stored in data/ like X and y, listed with the routing flag of the
    # build in manifest["metadata"] (absent in workdirs built before it).
    @property
    def metadata_routing(self):
        """True when the build ran with scikit-learn's metadata routing enabled."""
        return bool(self.manifest.get("metadata", {}).get("routing", False))

    @property
    def params(self):
        """``{name: full-length value}`` given to ``build(params=)``."""
        if getattr(self, "_params", None) is None:
            folder = self.workdir / store.DATA_DIR
            entries = self.manifest.get("metadata", {}).get("params", [])
            self._params = {name: store.load_array_like(folder, file_name, kind)
                            for name, file_name, kind in entries}
        return self._params

    @property
    def routes(self):
        """Where each metadata goes (:func:`mempamal.engine.metadata.route`), computed once."""
        if getattr(self, "_routes", None) is None:
            from .metadata import route

            self._routes = route(self.experiment, self.scorer, self.params, self.metadata_routing)
        return self._routes

    def outer_params(self, split_set, outer):
        """``(fit_params, (test_score_params, train_score_params))`` of one outer fold,
        sliced as ``cross_validate`` slices them; with a search, the fit
        params are those ``GridSearchCV`` gives its refit."""
        from .metadata import slice_params

        if not self.params:
            return {}, ({}, {})
        train, test = self.split_set(split_set).outer(outer)
        X = self.data[0]
        routes = self.routes
        fit = slice_params(X, routes["inner_fit"] if self.candidates else routes["fit"], train)
        return fit, (slice_params(X, routes["score"], test), slice_params(X, routes["score"], train))

    def all_fit_params(self):
        """The fit params of the final refit on all the data (``GridSearchCV.fit(X, y, **params)``'s refit)."""
        import numpy as np

        from .metadata import slice_params

        if not self.params:
            return {}
        X = self.data[0]
        everything = np.arange(X.shape[0] if hasattr(X, "shape") else len(X))
        return slice_params(X, self.routes["inner_fit"] if self.candidates else self.routes["fit"], everything)

    def inner_params(self, split_set, outer, inner):
        """The same for one inner split: sliced by the outer train indices
        (what ``GridSearchCV.fit`` receives), then by the inner ones;
        ``outer=None`` is the final search on all the data."""
        import numpy as np

        from .metadata import slice_params

        if not self.params:
            return {}, ({}, {})
        if outer is None:
            X = self.data[0]
            outer_train = np.arange(X.shape[0] if hasattr(X, "shape") else len(X))
        else:
            outer_train, _ = self.split_set(split_set).outer(outer)
        train, test = self.split_set(split_set).inner(outer, inner)
        X = self.data[0]
        X_outer, _ = self.outer_train_subset(split_set, outer)
        routes = self.routes
        fit = slice_params(X_outer, slice_params(X, routes["inner_fit"], outer_train), train)
        score = slice_params(X, routes["inner_score"], outer_train)
        return fit, (slice_params(X_outer, score, test), slice_params(X_outer, score, train))

    def routing_context(self):
        """The build's ``enable_metadata_routing`` around a task's work."""
        from contextlib import nullcontext

        from .metadata import routing_config

        return routing_config(True) if self.metadata_routing else nullcontext()

    @property
    def return_train_score(self):
        """True when fit/select/score tasks also score the training part."""
        return bool(getattr(self.experiment, "return_train_score", False))

    @property
    def predict_method(self):
        """The ``predict=`` method select/score tasks apply to their test fold, or None."""
        return getattr(self.experiment, "predict", None)

    def outer_test_X(self, split_set, outer):
        """A fresh ``X_test`` of one outer fold (scoring may have changed the other in place)."""
        from .._sklearn_compat import _safe_split

        train, test = self.split_set(split_set).outer(outer)
        return _safe_split(self.estimator, self.data[0], self.target(split_set), test, train)[0]
