"""Grow without redoing: what a new build keeps of the build it replaces (``build(..., reuse=True)``).

A finished result of the old build is kept only when its *content key* is
one of the new build's: a digest of what the task computes, made from the
builds' own files (the experiment, the splits, the data digest), never from
a task's name or position.  The key of one inner fit of one grid point is
the digest of

- the estimator (its description and the digest of its code), the scoring
  (the same), ``error_score``, ``return_train_score``, the scikit-learn
  config of the build, the data digest and the metadata digest;
- the split: the outer training indices, the inner split's train and test
  indices and, for a permutation, the permuted order of ``y``;
- the point's parameters (description and code digest).

A ``select``/``score``/``select-all`` task's key adds ``refit``, every point
of the grid in order, every inner split of its outer fold, and (on the real
data) ``return_estimator`` and ``predict``; ``final`` is never kept (it only
gathers).  So more grid points, more permutations (drawn in sequence from
one ``RandomState``: the first *n* of *n + m* are the same) and more repeats
of a repeated splitter keep every inner fit they share with the old build;
a ``select`` is kept only when its whole search is unchanged.

:func:`harvest` reads the old build's trusted outputs (checked as every
reader checks them: complete, their own digest, stamped for their task,
build and definition) before the old build is cleared; :func:`graft` writes,
while the new build is written and before its manifest, an output stamped
for the new build for every task entirely covered, and ``reused.json`` (a
build file, its digest in the manifest) with the kept points of the fit
tasks only partly covered: such a task runs only its missing points
(``engine/tasks.py``).

Examples
--------
>>> sorted(ContentKeys.PARTS)[:3]
['data', 'error_score', 'estimator']
"""

import hashlib
import os
import time
import warnings
from pathlib import Path

import numpy as np

from . import store
from .engine.config import fingerprinted_config
from .engine.splits import MAIN, SplitSet
from .store import integrity
from .store.fingerprint import code_digest, data_hash, describe, fingerprint
from .store.taskfile import read_table
from .store.tasktable import TaskTable

#: The build file listing the kept points of partly covered fit tasks.
REUSED_FILE = "reused.json"
_STAMP = {"task", "build", "definition", integrity.VERSION_FIELD, integrity.DIGEST_FIELD}
_GATHERS = ("select", "score", "select-all")


class ContentKeys:
    """The content keys of one build's tasks (see the module docstring).

    Examples
    --------
    >>> keys = ContentKeys(exp, wf.workdir, wf.table, wf.manifest["data_digest"], None)
    >>> len(keys.fit_key(wf.table.task("fit-o0-i0-c0"), 0))
    32
    """

    #: What every key depends on, named in the warning when it differs.
    PARTS = ("data", "metadata", "estimator", "scoring", "error_score", "scikit-learn config",
             "return_train_score")

    def __init__(self, experiment, workdir, table, data_digest, metadata_digest):
        self.workdir, self.table = Path(workdir), table
        candidates = experiment.search_space()[0] if experiment.nested else []
        self.parts = {
            "data": data_digest, "metadata": metadata_digest,
            "estimator": _code(experiment.estimator), "scoring": _code(experiment.scoring),
            "error_score": describe(experiment.error_score),
            "scikit-learn config": describe(fingerprinted_config(experiment._config())),
            "return_train_score": bool(getattr(experiment, "return_train_score", False)),
        }
        # A missing data digest (a workdir built before it was recorded) matches nothing.
        self._common = fingerprint(self.parts) if data_digest is not None else os.urandom(16).hex()
        self.refit = _code(experiment.refit)
        self.points = [_code(candidate) for candidate in candidates]
        self.options = {"return_estimator": bool(getattr(experiment, "return_estimator", False)),
                        "predict": getattr(experiment, "predict", None)}
        self._split_sets, self._folds = {}, {}

    def _split_set(self, name):
        if name not in self._split_sets:
            split_set = SplitSet(self.workdir, name)
            self._split_sets[name] = (split_set, data_hash(_indices(split_set.target_order)))
        return self._split_sets[name]

    def fold(self, split_set, outer, inner):
        """Digest of one inner split: its rows (through the outer training rows) and the target order."""
        key = (split_set, outer, inner)
        if key not in self._folds:
            splits, target = self._split_set(split_set)
            outer_train = None if outer is None else _indices(splits.outer(outer)[0])
            train, test = splits.inner(outer, inner)
            self._folds[key] = data_hash(target, outer_train, _indices(train), _indices(test))
        return self._folds[key]

    def fit_key(self, task, point):
        """Key of point ``point`` fitted and scored by fit task ``task`` (its inner split)."""
        return self.point_key(task.split_set, task.outer, task.inner, point)

    def point_key(self, split_set, outer, inner, point):
        """Key of point ``point`` fitted and scored on one inner split (``outer`` None: the final search's)."""
        return fingerprint(["fit", self._common, self.fold(split_set, outer, inner), self.points[point]])

    def gather_key(self, task):
        """Key of a ``select``, ``score`` or ``select-all`` task: its whole search and outer fold."""
        splits, target = self._split_set(task.split_set)
        outer = None if task.outer is None else [data_hash(*map(_indices, splits.outer(task.outer)))]
        info = self.table.split_sets[task.split_set]
        n_inner = 0 if not task.deps else info["n_inner_all"] if task.outer is None else info["n_inner"][task.outer]
        inner = [self.fold(task.split_set, task.outer, j) for j in range(n_inner)]  # in split order
        options = self.options if task.split_set == MAIN and task.kind != "select-all" else None
        return fingerprint([task.kind, self._common, self.refit, target, outer, inner, self.points, options])

    def changed(self, other):
        """Names of what differs from ``other``'s keys (the parts, ``refit``, the options)."""
        names = [name for name in self.PARTS if self.parts[name] != other.parts[name]]
        if other.parts["data"] is None:
            names[names.index("data")] = "data (the old build recorded no data digest)"
        names += [name for name in ("refit",) if self.refit != other.refit]
        names += [name for name in self.options if self.options[name] != other.options[name]]
        return names


def _code(value):
    return fingerprint([describe(value), code_digest(value)])


def _indices(array):
    return None if array is None else np.asarray(array, dtype=np.int64)


class Harvest:
    """The trusted results of an old build, by content key (:func:`harvest`).

    ``fits``: ``{point key: row}`` (a row as ``evaluate_points`` returns
    it); ``whole``: ``{tuple of point keys: payload}`` of the old fit
    outputs; ``gathers``: ``{key: (task id, payload, {relative path: bytes})}``.

    Examples
    --------
    >>> Harvest(None, "b1").build_id
    'b1'
    """

    def __init__(self, keys, build_id):
        self.keys, self.build_id = keys, build_id
        self.fits, self.whole, self.gathers = {}, {}, {}


def harvest(workdir, metadata_digest_of):
    """The :class:`Harvest` of the build in ``workdir``, or None (with a warning) when it cannot be read.

    ``metadata_digest_of(manifest)`` gives the old build's metadata digest.

    Examples
    --------
    >>> found = harvest(wf.workdir, lambda manifest: None)
    >>> len(found.fits), len(found.gathers)   # 3 points x (3 x 2 + 2) inner splits; 3 selects, select-all
    (24, 4)
    """
    import cloudpickle

    workdir = Path(workdir)
    try:
        manifest = store.read_json(workdir / store.MANIFEST)
        integrity.verify_build_files(workdir, manifest)
        table = TaskTable(read_table(workdir, manifest), workdir)
        experiment = store.load_pickle(workdir, workdir / store.EXPERIMENT, cloudpickle.load)
        keys = ContentKeys(experiment, workdir, table, manifest.get("data_digest"), metadata_digest_of(manifest))
    except Exception as exc:  # any build that cannot be read (files, pickle, classes) keeps nothing
        warnings.warn(f"reuse=True keeps nothing of {workdir}: its build cannot be read "
                      f"({type(exc).__name__}: {exc}).", stacklevel=3)
        return None
    found = Harvest(keys, manifest["build_id"])
    for task in table:
        path = store.output_path(workdir, task.id)
        if task.kind == "final" or not path.exists():
            continue
        try:
            output = integrity.read_output(path, task.id, found.build_id, task.definition)
        except store.WorkdirError:
            continue  # not trusted: not kept
        payload = {key: value for key, value in output.items() if key not in _STAMP}
        try:
            if task.kind in ("fit", "fit-all"):
                _harvest_fit(found, keys, task, payload)
            else:
                files = _files_of(workdir, task.id, payload)
                if files is not None:
                    found.gathers[keys.gather_key(task)] = (task.id, payload, files)
        except (KeyError, IndexError, TypeError, AttributeError):
            continue  # an output of another layout (an older mempamal): not kept
    _harvest_kept_rows(found, keys, workdir, manifest)
    return found


def _harvest_kept_rows(found, keys, workdir, manifest):
    """The rows the old build itself kept and had not used yet (grown twice before running: nothing lost).

    ``reused.json`` is one of the old build's files, verified with the others.
    """
    name = (manifest.get("reuse") or {}).get("file")
    if not name:
        return
    for fold, rows in store.read_json(workdir / name).items():
        split_set, outer, inner = fold.rsplit("/", 2)
        outer = None if outer == "all" else int(outer)
        for point, row in rows.items():
            found.fits.setdefault(keys.point_key(split_set, outer, int(inner), int(point)), row)


def _harvest_fit(found, keys, task, payload):
    names = list(payload["scores"])
    point_keys = []
    for row, point in enumerate(payload["points"]):
        kept = {"scores": {m: payload["scores"][m][row] for m in names}, "fit_time": payload["fit_time"][row],
                "score_time": payload["score_time"][row], "fit_failed": payload["fit_failed"][row],
                "error": payload["errors"][row]}
        if "train_scores" in payload:
            kept["train_scores"] = {m: payload["train_scores"][m][row] for m in payload["train_scores"]}
        key = keys.fit_key(task, point)
        found.fits[key] = kept
        point_keys.append(key)
    found.whole[tuple(point_keys)] = payload


def _files_of(workdir, task_id, payload):
    """``{relative path: bytes}`` of the model and prediction files ``payload`` vouches for (None: one is bad)."""
    files = {}
    model = payload.get("model")
    if model:
        files[f"{store.MODELS_DIR}/{model['name']}.pkl"] = model["sha256"]
    predictions = payload.get("predictions")
    if predictions:
        shard = store.output_path(workdir, task_id).parent.relative_to(workdir)
        files.update({f"{shard}/{name}": digest for name, digest in zip(predictions["files"], predictions["sha256"])})
    contents = {}
    for name, digest in files.items():
        try:
            data = (Path(workdir) / name).read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != digest:
            return None
        contents[name] = data
    return contents


def graft(experiment, workdir, table, build_id, found, data_digest, metadata_digest):
    """Write what the new build keeps of ``found``; returns the summary the manifest records.

    Called while the new build is written, before its manifest (a build
    failing half-way leaves nothing trusted).  Outputs are stamped for the
    new build and the new task definitions; ``reused_from`` names the old
    build and task.

    Examples
    --------
    Through ``build(..., reuse=True)``: a fourth grid point keeps the
    24 inner fits of the other three.

    >>> bigger = mp.Experiment(estimator, param_grid={"clf__C": [0.1, 1.0, 10.0, 100.0]}, cv=3, inner_cv=2,
    ...                        scoring=["accuracy"], refit="accuracy", return_estimator=True, predict="predict_proba")
    >>> grown = bigger.build(X, y, workdir=wf.workdir, reuse=True)
    >>> grown.status().reused["kept_points"], grown.status().reused["changed"]
    (24, [])
    """
    records = TaskTable(table, workdir)
    keys = ContentKeys(experiment, workdir, records, data_digest, metadata_digest)
    kept_tasks, kept_points, partial = [], 0, {}
    for task in records:
        if task.kind in ("fit", "fit-all"):
            point_keys = [keys.fit_key(task, point) for point in task.points]
            rows = {point: found.fits[key] for point, key in zip(task.points, point_keys) if key in found.fits}
            kept_points += len(rows)
            if len(rows) == len(task.points):
                payload = found.whole.get(tuple(point_keys)) or _assembled(rows, task.points)
                _write_output(workdir, task, build_id, dict(payload, points=list(task.points)), found.build_id)
                kept_tasks.append(task.id)
            elif rows:
                partial.setdefault(fold_name(task.split_set, task.outer, task.inner), {}).update(
                    {str(point): row for point, row in rows.items()})
        elif task.kind in _GATHERS:
            entry = found.gathers.get(keys.gather_key(task))
            # Model and prediction files are named after their task: kept under the same id only.
            if entry is not None and (not entry[2] or entry[0] == task.id):
                for name, data in entry[2].items():
                    store.make_private_dir((Path(workdir) / name).parent)
                    store.atomic_write_bytes(Path(workdir) / name, data)
                _write_output(workdir, task, build_id, entry[1], found.build_id, entry[0])
                kept_tasks.append(task.id)
    if partial:
        store.write_json(Path(workdir) / REUSED_FILE, partial)
    summary = {"from_build": found.build_id, "kept_tasks": len(kept_tasks), "kept_points": kept_points,
               "file": REUSED_FILE if partial else None, "changed": keys.changed(found.keys)}
    _warn(workdir, summary, len(records))
    return summary


def fold_name(split_set, outer, inner):
    """The key of one inner split in ``reused.json`` (``outer`` None: the final search).

    Examples
    --------
    >>> fold_name("main", 0, 2), fold_name("perm-1", None, 0)
    ('main/0/2', 'perm-1/all/0')
    """
    return f"{split_set}/{'all' if outer is None else outer}/{inner}"


def _assembled(rows, points):
    """A fit output made of kept rows taken from several old fit tasks (no timing of its own)."""
    ordered = [rows[point] for point in points]
    names = list(dict.fromkeys(name for row in ordered for name in row["scores"]))
    nan = float("nan")
    payload = {"scores": {m: [row["scores"].get(m, nan) for row in ordered] for m in names},
               "fit_time": [row["fit_time"] for row in ordered],
               "score_time": [row["score_time"] for row in ordered],
               "fit_failed": [row["fit_failed"] for row in ordered],
               "errors": [row["error"] for row in ordered]}
    if all("train_scores" in row for row in ordered):
        payload["train_scores"] = {m: [row["train_scores"].get(m, nan) for row in ordered] for m in names}
    payload.update(_assembled_run(sum(payload["fit_time"]) + sum(payload["score_time"])))
    return payload


def _assembled_run(seconds):
    """The run fields (``records.TaskRun``) of an assembled output: no process ran it here, so the
    work its rows measured (fit and score times) stands for its cost, ending now, in this process."""
    import socket

    end = time.time()
    return {"start": end - seconds, "ready": end - seconds, "end": end, "host": socket.gethostname(),
            "pid": os.getpid(), "cpu_seconds": seconds, "peak_rss_bytes": 0, "rss_growth_bytes": 0}


def _write_output(workdir, task, build_id, payload, old_build, old_task=None):
    output = integrity.output_stamp(task.id, build_id, task.definition)
    output.update(payload)
    output.update(kind=task.kind, reused_from={"build": old_build, "task": old_task or task.id})
    path = store.output_path(workdir, task.id)
    store.make_private_dir(path.parent)
    store.atomic_write_bytes(path, integrity.output_bytes(output), durable=False)


def _warn(workdir, summary, n_tasks):
    """Say what was not kept and why (nothing at all when the estimator, data, scoring... changed)."""
    changed = summary["changed"]
    if summary["kept_tasks"] == 0 and summary["kept_points"] == 0:
        why = ", ".join(changed) if changed else "no split or grid point of the old build is one of this build's"
        warnings.warn(f"reuse=True kept nothing of the previous build in {workdir} (what differs: {why}); "
                      f"all {n_tasks} tasks run again.", stacklevel=4)
    elif changed:
        warnings.warn(f"reuse=True kept {summary['kept_tasks']} tasks and {summary['kept_points']} inner fits of "
                      f"the previous build in {workdir}; {', '.join(changed)} changed, so the tasks "
                      f"they touch run again.", stacklevel=4)
