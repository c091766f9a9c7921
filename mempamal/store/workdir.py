"""Workdir layout, atomic writes and data memory-mapping.

A workdir is the single source of truth of a run::

    WORKDIR/
      .mempamal          marker written first: "this folder belongs to mempamal"
      manifest.json      written LAST by a build: fingerprint, build id, counts
      experiment.pkl     the Experiment (cloudpickle: notebook classes included)
      experiment.json    the same for people (estimator, grid, CV, scoring, data shapes and
                         digests, library versions, creation time): never read back to run
                         anything (mempamal.description; `mempamal show WORKDIR` prints it)
      data/              X.npy | X.npz (sparse) | X.pkl (pandas, object array, list); y.*; groups.*
      splits/            main.npz, perm-0.npz, ...: indices computed once
      tasks.json         the task list: id, kind, deps and what each task does
      outputs/<shard>/<id>.json  one file per finished task (see output_shard)
      outputs/.done-index.json   cache of the last scan of outputs/ (mempamal.store.doneindex)
      logs/<id>.err      traceback of a task that failed
      results.json       written by the ``final`` task

Every file of the workdir is written through :func:`~mempamal.store.files.atomic_write` -- JSON,
pickles, logs, the data (``.npy`` through numpy's stream writer, ``.npz``,
``.pkl``: :func:`~mempamal.store.arrays.save_array_like`) and the splits (``engine/splits.py``) --
except the lock, which :mod:`mempamal.store.lock` creates by hard-linking a
complete temporary file (all or nothing too).  Files are user-only (0600,
folders 0700 through :func:`~mempamal.store.files.make_private_dir`, whatever the umask); a kill or
a full disk never leaves a truncated file that a later run would trust.

Durability comes in two kinds (``atomic_write(..., durable=)``).  Files
written once by a build (marker, manifest, experiment, task table, data,
splits) and the files a task's output vouches for by digest (``results.json``,
models, predictions) are fsynced before their rename: nothing re-creates
them, and they must be complete before the output that points to them can
exist.  Task outputs and logs are *not* fsynced (``durable=False``): a
process kill still leaves all or nothing, but after an OS crash an output
may be empty, torn or NUL-filled.  That is safe because no output is ever
trusted unread: every reader validates it (complete JSON object whose
content matches the digest it carries, stamped with its task id, this
build's id and the task's definition,
:func:`mempamal.store.integrity.output_problem`), so such an output counts as not
done and its task runs again.  The folder is never fsynced: after a power
cut a file just written may be missing (its task runs again).
Nothing is unpickled before :func:`~mempamal.store.safety.load_pickle` has checked that no one else
could have written it.
"""


import os
from pathlib import Path

from .taskids import chunk_of

MARKER = ".mempamal"
MANIFEST = "manifest.json"
EXPERIMENT = "experiment.pkl"
DESCRIPTION = "experiment.json"
TASKS = "tasks.json"
RESULTS = "results.json"
DATA_DIR = "data"
SPLITS_DIR = "splits"
OUTPUTS_DIR = "outputs"
LOGS_DIR = "logs"
MODELS_DIR = "models"



#: Fit tasks per shard of ``outputs/``: few enough that revalidating a shard
#: that changed is quick, many enough that a million tasks make ~1,000 folders.
SHARD_CHUNKS = 1000


def output_shard(task_id):
    """Name of the subfolder of ``outputs/`` that holds the output of ``task_id``.

    A function of the id alone (ids are stable, so is the layout): a fit
    task's id without its chunk number, plus the chunk's thousand
    (``fit-o3-i2-c1234`` -> ``fit-o3-i2-c1k``), so that the fits of one
    inner fold, which a run finishes one after the other, share a few
    folders; every other task (select, score, final, ...) is in ``other``.
    A folder that no new output touched since the last scan need not be
    scanned again (:mod:`mempamal.store.doneindex`).

    Examples
    --------
    >>> output_shard("fit-o3-i2-c1234"), output_shard("perm-1-fit-o0-i0-c7"), output_shard("select-o3")
    ('fit-o3-i2-c1k', 'perm-1-fit-o0-i0-c0k', 'other')
    """
    found = chunk_of(task_id)
    if found is not None:
        head, chunk = found
        return f"{head}-c{chunk // SHARD_CHUNKS}k"
    return "other"


def output_path(workdir, task_id):
    """Path of the output file of ``task_id`` (``outputs/<shard>/<id>.json``).

    The one place that knows where an output lives: every reader, writer,
    export and test goes through it.  The task is done when this file
    exists and :func:`mempamal.store.integrity.output_problem` trusts it.

    Examples
    --------
    >>> output_path("runs/iris", "fit-o0-i0-c3").as_posix()
    'runs/iris/outputs/fit-o0-i0-c0k/fit-o0-i0-c3.json'
    """
    return Path(workdir) / OUTPUTS_DIR / output_shard(task_id) / f"{task_id}.json"


def log_path(workdir, task_id):
    """Path of the error log of ``task_id``."""
    return Path(workdir) / LOGS_DIR / f"{task_id}.err"


def finished_task_ids(workdir):
    """Set of ids whose output file exists where :func:`output_path` puts it (not checked).

    One ``scandir`` per shard, not one stat per task.

    Examples
    --------
    >>> import tempfile
    >>> finished_task_ids(tempfile.mkdtemp())
    set()
    """
    folder = Path(workdir) / OUTPUTS_DIR
    try:
        shards = [entry for entry in os.scandir(folder)
                  if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return set()
    found = set()
    for shard in shards:
        try:
            names = os.listdir(shard.path)
        except FileNotFoundError:
            continue
        found.update(name[:-5] for name in names if name.endswith(".json") and not name.startswith(".")
                     and output_shard(name[:-5]) == shard.name)
    return found


def is_workdir(path):
    """True when ``path`` is a folder created by mempamal (complete or not)."""
    path = Path(path)
    return (path / MARKER).exists() or (path / MANIFEST).exists()


# --------------------------------------------------------------------- data
