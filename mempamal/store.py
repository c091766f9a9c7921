"""Workdir layout, atomic writes and data memory-mapping.

A workdir is the single source of truth of a run::

    WORKDIR/
      .mempamal          marker written first: "this folder belongs to mempamal"
      manifest.json      written LAST by a build: fingerprint, build id, counts
      experiment.pkl     the Experiment (cloudpickle: notebook classes included)
      data/              X.npy | X.npz (sparse) | X.pkl (pandas); y.*; groups.*
      splits/            main.npz, perm-0.npz, ...: indices computed once
      tasks.json         the task list: id, kind, deps and what each task does
      outputs/<id>.json  one file per finished task (its existence = done)
      logs/<id>.err      traceback of a task that failed
      results.json       written by the ``final`` task

Every write goes through :func:`atomic_write_bytes`, so a kill or a full disk
never leaves a truncated file that a later run would trust.
"""

import json
import os
import stat
import tempfile
from pathlib import Path

MARKER = ".mempamal"
MANIFEST = "manifest.json"
EXPERIMENT = "experiment.pkl"
TASKS = "tasks.json"
RESULTS = "results.json"
DATA_DIR = "data"
SPLITS_DIR = "splits"
OUTPUTS_DIR = "outputs"
LOGS_DIR = "logs"


class WorkdirError(RuntimeError):
    """A workdir is missing, incomplete, corrupt or unsafe to run."""


def atomic_write_bytes(path, payload):
    """Write ``payload`` to ``path`` so that readers see all of it or nothing.

    The bytes go to a temporary file in the same folder, are flushed to disk,
    and the temporary file is renamed over ``path`` (``os.replace`` is atomic
    on POSIX and Windows within one filesystem).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
    >>> atomic_write_bytes(target, b"hi")
    >>> target.read_bytes()
    b'hi'
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        # Never leave the temporary file behind (a full disk raises here).
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


def write_json(path, obj):
    """Atomically write ``obj`` as JSON (NaN allowed, floats round-trip exactly)."""
    atomic_write_bytes(path, json.dumps(obj, allow_nan=True).encode("utf-8"))


def read_json(path):
    """Read a JSON file, naming the file when it is missing or corrupt."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read())
    except FileNotFoundError:
        raise WorkdirError(f"Missing file {path}.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise WorkdirError(f"Corrupt file {path}: {exc}") from None


def output_path(workdir, task_id):
    """Path of the output file of ``task_id``; the task is done when it exists."""
    return Path(workdir) / OUTPUTS_DIR / f"{task_id}.json"


def log_path(workdir, task_id):
    """Path of the error log of ``task_id``."""
    return Path(workdir) / LOGS_DIR / f"{task_id}.err"


def finished_task_ids(workdir):
    """Set of ids whose output file exists (one ``listdir``, not one stat per task)."""
    folder = Path(workdir) / OUTPUTS_DIR
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return set()
    return {name[:-5] for name in names if name.endswith(".json") and not name.startswith(".")}


def make_private_dir(path):
    """Create ``path`` (and parents) readable and writable by the user only."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def check_workdir_is_safe(workdir):
    """Refuse a workdir that another user could have written code into.

    A workdir holds pickled estimators, and unpickling runs code: a folder
    that other users can write to would let them run code as us.
    """
    workdir = Path(workdir)
    for path in (workdir, workdir / EXPERIMENT, workdir / DATA_DIR):
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise WorkdirError(
                f"Refusing to run tasks from {path}: it belongs to another user "
                f"(uid {info.st_uid}). A workdir holds pickled code that mempamal "
                "executes; copy it to a folder of your own if you trust it."
            )
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise WorkdirError(
                f"Refusing to run tasks from {path}: it is writable by other users "
                f"(mode {stat.filemode(info.st_mode)}). A workdir holds pickled code "
                f"that mempamal executes; run `chmod go-w {path}` if you trust its content."
            )


def is_workdir(path):
    """True when ``path`` is a folder created by mempamal (complete or not)."""
    path = Path(path)
    return (path / MARKER).exists() or (path / MANIFEST).exists()


# --------------------------------------------------------------------- data
def save_array_like(folder, name, value):
    """Save X, y or groups once, in the format that reads back fastest.

    numpy arrays become ``.npy`` (memory-mapped by readers), scipy sparse
    matrices ``.npz`` (CSR, as scikit-learn's ``indexable`` makes them), and
    pandas objects a pickle that keeps dtypes, columns and index.
    """
    import numpy as np
    import scipy.sparse as sp

    folder = Path(folder)
    if value is None:
        return None
    if sp.issparse(value):
        target = folder / f"{name}.npz"
        tmp = folder / f".{name}.tmp.npz"
        sp.save_npz(tmp, value.tocsr(), compressed=False)
        os.replace(tmp, target)
        return "sparse"
    if hasattr(value, "iloc"):
        import pickle

        atomic_write_bytes(folder / f"{name}.pkl", pickle.dumps(value, protocol=5))
        return "pandas"
    array = np.asarray(value)
    target = folder / f"{name}.npy"
    tmp = folder / f".{name}.tmp.npy"
    if array.dtype == object:
        np.save(tmp, array, allow_pickle=True)
    else:
        np.save(tmp, array)
    os.replace(tmp, target)
    return "numpy"


def load_array_like(folder, name, kind):
    """Load what :func:`save_array_like` wrote; numpy arrays are memory-mapped."""
    import numpy as np

    folder = Path(folder)
    if kind is None:
        return None
    if kind == "sparse":
        import scipy.sparse as sp

        return sp.load_npz(folder / f"{name}.npz").tocsr()
    if kind == "pandas":
        import pickle

        with open(folder / f"{name}.pkl", "rb") as handle:
            return pickle.load(handle)
    path = folder / f"{name}.npy"
    try:
        return np.load(path, mmap_mode="r")
    except ValueError:
        # Object arrays cannot be memory-mapped.
        return np.load(path, allow_pickle=True)
