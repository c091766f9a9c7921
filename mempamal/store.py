"""Workdir layout, atomic writes and data memory-mapping.

A workdir is the single source of truth of a run::

    WORKDIR/
      .mempamal          marker written first: "this folder belongs to mempamal"
      manifest.json      written LAST by a build: fingerprint, build id, counts
      experiment.pkl     the Experiment (cloudpickle: notebook classes included)
      data/              X.npy | X.npz (sparse) | X.pkl (pandas or object array); y.*; groups.*
      splits/            main.npz, perm-0.npz, ...: indices computed once
      tasks.json         the task list: id, kind, deps and what each task does
      outputs/<shard>/<id>.json  one file per finished task (see output_shard)
      outputs/.done-index.json   cache of the last scan of outputs/ (mempamal.doneindex)
      logs/<id>.err      traceback of a task that failed
      results.json       written by the ``final`` task

Every file of the workdir is written through :func:`atomic_write` -- JSON,
pickles, logs, the data (``.npy`` through numpy's stream writer, ``.npz``,
``.pkl``: :func:`save_array_like`) and the splits (``engine/splits.py``) --
except the lock, which :mod:`mempamal.lock` creates by hard-linking a
complete temporary file (all or nothing too).  Files are user-only (0600,
folders 0700 through :func:`make_private_dir`, whatever the umask); a kill or
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
:func:`mempamal.integrity.output_problem`), so such an output counts as not
done and its task runs again.  The folder is never fsynced: after a power
cut a file just written may be missing (its task runs again).
Nothing is unpickled before :func:`load_pickle` has checked that no one else
could have written it.
"""

import errno
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
MODELS_DIR = "models"


class WorkdirError(RuntimeError):
    """A workdir is missing, incomplete, corrupt or unsafe to run.

    Examples
    --------
    >>> mp.Workflow.open("not-a-workdir")                                  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    mempamal.store.WorkdirError: not-a-workdir is not a mempamal workdir (no manifest.json).
    """


# Errors of a write that ran out of room: the filesystem is full (ENOSPC),
# the user's quota is exhausted (EDQUOT) or the file-size limit of the process
# (RLIMIT_FSIZE, ulimit -f) is reached (EFBIG).
DISK_FULL_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", None)) if code is not None
)


class DiskFullError(WorkdirError):
    """A workdir file could not be written because the disk (or quota) is full.

    ``path`` is the file that could not be written and ``errno`` the
    operating system's error code (ENOSPC, EDQUOT or EFBIG).

    Examples
    --------
    >>> import errno
    >>> error = DiskFullError("runs/iris/data/X.npy", errno.ENOSPC)
    >>> "disk is full" in str(error) and "X.npy" in str(error)
    True
    """

    def __init__(self, path, code):
        self.path = Path(path)
        self.errno = code
        super().__init__(
            f"Could not write {self.path}: the disk is full ({os.strerror(code)}, "
            f"{errno.errorcode.get(code, code)}). Nothing of that file was kept; "
            "free some space and try again."
        )


#: How a task that the full disk stopped is reported (no output, no error log:
#: it stays pending). ``WorkflowError`` counts these tasks as not run, not
#: failed, as ``status`` does.
DISK_FULL_NOT_RUN = "not run to the end (disk full)"


def _raise_if_disk_full(exc, path):
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        raise DiskFullError(path, exc.errno) from exc


class _StreamOnly:
    """Hide that a handle is a real file so numpy writes through ``write()``.

    ``np.save`` on a real file calls ``ndarray.tofile``, whose error on a full
    disk ("6000 requested and 1520 written") carries no errno; ``write()``
    raises an ``OSError`` with ENOSPC/EFBIG that can be recognized.
    """

    def __init__(self, handle):
        self.write = handle.write


def atomic_write(path, write_content, durable=True):
    """Create ``path`` user-only (0600) and atomically, whatever the umask.

    ``write_content(handle)`` writes into a temporary file of the same
    folder (``mkstemp`` creates it 0600), which is renamed over ``path``:
    readers see all of it or nothing, whatever kills the process. If
    anything fails, the temporary file is removed; a full disk raises
    :class:`DiskFullError` naming ``path``.

    ``durable=True`` fsyncs the file before the rename, so that after an OS
    crash ``path`` is the old file, missing or complete.  ``durable=False``
    skips that fsync (about a millisecond per file, the largest cost of a
    no-op task): after an OS crash ``path`` may then be empty, torn or
    NUL-filled, so use it only for files every reader validates -- task
    outputs and logs (see the module docstring).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
    >>> atomic_write(target, lambda handle: handle.write(b"hi"))
    >>> target.read_bytes(), oct(target.stat().st_mode & 0o777)
    (b'hi', '0o600')
    >>> atomic_write(target, lambda handle: handle.write(b"ho"), durable=False)
    >>> target.read_bytes()
    b'ho'
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=folder or ".", prefix=f".{name}.", suffix=".tmp")
    except OSError as exc:
        _raise_if_disk_full(exc, path)
        raise
    try:
        with os.fdopen(fd, "wb") as handle:
            write_content(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException as exc:
        # Never leave the temporary file behind (a full disk raises here).
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        _raise_if_disk_full(exc, path)
        raise


def atomic_write_bytes(path, payload, durable=True):
    """Write ``payload`` to ``path`` so that readers see all of it or nothing.

    The file is created user-only (0600); ``durable`` as in :func:`atomic_write`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
    >>> atomic_write_bytes(target, b"hi")
    >>> target.read_bytes()
    b'hi'
    """
    atomic_write(path, lambda handle: handle.write(payload), durable=durable)


def write_json(path, obj, durable=True):
    """Atomically write ``obj`` as JSON (NaN allowed, floats round-trip exactly); ``durable``
    as in :func:`atomic_write` (False only for files every reader validates: task outputs)."""
    atomic_write_bytes(path, json.dumps(obj, allow_nan=True).encode("utf-8"), durable=durable)


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
    scanned again (:mod:`mempamal.doneindex`).

    Examples
    --------
    >>> output_shard("fit-o3-i2-c1234"), output_shard("perm-1-fit-o0-i0-c7"), output_shard("select-o3")
    ('fit-o3-i2-c1k', 'perm-1-fit-o0-i0-c0k', 'other')
    """
    head, separator, chunk = task_id.rpartition("-c")
    if separator and chunk.isdigit():
        return f"{head}-c{int(chunk) // SHARD_CHUNKS}k"
    return "other"


def output_path(workdir, task_id):
    """Path of the output file of ``task_id`` (``outputs/<shard>/<id>.json``).

    The one place that knows where an output lives: every reader, writer,
    export and test goes through it.  The task is done when this file
    exists and :func:`mempamal.integrity.output_problem` trusts it.

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


def make_private_dir(path):
    """Create ``path`` (and parents) readable and writable by the user only.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = make_private_dir(pathlib.Path(tempfile.mkdtemp()) / "wd")
    >>> oct(folder.stat().st_mode & 0o777)
    '0o700'
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        _raise_if_disk_full(exc, path)
        raise
    # mkdir's mode is filtered by the umask; chmod is not.
    os.chmod(path, 0o700)
    return path


# ------------------------------------------------------------- trust checks
# Unpickling runs code, and outputs are trusted as finished work: whoever can
# write into a workdir can run code as its user or plant results. Each check
# below refuses an entry another user could have written.
_TRUSTED_ENTRIES = (MARKER, MANIFEST, EXPERIMENT, TASKS, RESULTS)
_TRUSTED_FOLDERS = (DATA_DIR, SPLITS_DIR, OUTPUTS_DIR, LOGS_DIR, MODELS_DIR)
_WHY = "a workdir holds pickled code that mempamal executes and outputs it trusts as finished work"


#: The uid an NFS server maps a squashed root (or an unknown user) to.
_NOBODY = 65534
_UID_MAPPING_HINT = (
    " On a shared filesystem this usually means uid mapping: NFS root-squash shows root's "
    "files as 'nobody' (65534) and a job running as root sees the user's files as someone "
    "else's. Build and run the workdir as the same ordinary user on every machine.")


def _refuse_untrusted(path, info, purpose):
    if stat.S_ISLNK(info.st_mode):
        raise WorkdirError(
            f"Refusing to {purpose} {path}: it is a symbolic link (to {os.readlink(path)}). "
            f"mempamal never creates links inside a workdir and {_WHY}, so what the link "
            "points to may have been planted by someone else. Replace it with a real folder "
            "or file (or build again)."
        )
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise WorkdirError(
            f"Refusing to {purpose} {path}: it belongs to another user (uid {info.st_uid}, "
            f"while this process runs as uid {os.getuid()}) and {_WHY}. Copy the workdir to a "
            "folder of your own if you trust its content."
            + (_UID_MAPPING_HINT if info.st_uid == _NOBODY or os.getuid() == 0 else "")
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise WorkdirError(
            f"Refusing to {purpose} {path}: it is writable by other users "
            f"(mode {stat.filemode(info.st_mode)}) and {_WHY}. Run `chmod go-w` on it "
            "if you trust its content."
        )


def _check_chain(workdir, path, purpose):
    """Check the workdir, then every entry from it down to ``path`` (not following links)."""
    workdir = Path(workdir)
    # The workdir itself may be reached through a link the user made
    # (e.g. /tmp -> /private/tmp); what is inside it may not.
    try:
        _refuse_untrusted(workdir, workdir.stat(), purpose)
    except FileNotFoundError:
        raise WorkdirError(f"Missing workdir {workdir}.") from None
    current = workdir
    for part in Path(path).relative_to(workdir).parts:
        current = current / part
        try:
            info = current.lstat()
        except FileNotFoundError:
            return
        _refuse_untrusted(current, info, purpose)


def check_workdir_is_safe(workdir):
    """Refuse a workdir that another user could have written code or results into.

    Checks the workdir, its fixed files, the folders ``data/``, ``splits/``,
    ``outputs/``, ``logs/`` and every file of ``data/`` and ``splits/``: each
    must belong to the current user, not be writable by group or others,
    and (inside the workdir) not be a symbolic link. Raises
    :class:`WorkdirError` naming the offending path and why.

    Examples
    --------
    >>> check_workdir_is_safe("runs/iris")       # doctest: +SKIP
    """
    workdir = Path(workdir)
    _check_chain(workdir, workdir, "run tasks from")
    for name in _TRUSTED_ENTRIES + _TRUSTED_FOLDERS:
        _check_chain(workdir, workdir / name, "run tasks from")
    for name in (DATA_DIR, SPLITS_DIR):
        folder = workdir / name
        try:
            entries = os.listdir(folder)
        except FileNotFoundError:
            continue
        for entry in entries:
            _refuse_untrusted(folder / entry, (folder / entry).lstat(), "run tasks from")


def load_pickle(workdir, path, load=None):
    """Unpickle ``path`` (inside ``workdir``) only after checking who could write it.

    The folders from ``workdir`` down to ``path`` are checked as in
    :func:`check_workdir_is_safe`, and the opened file itself (``fstat`` of
    the open handle, so it cannot be swapped in between) must belong to the
    user and not be writable by others. ``load`` defaults to
    ``pickle.load``; pass ``cloudpickle.load`` for the experiment.

    Examples
    --------
    >>> experiment = load_pickle("runs/iris", "runs/iris/experiment.pkl")   # doctest: +SKIP
    """
    import pickle

    path = Path(path)
    _check_chain(workdir, path.parent, "unpickle")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise WorkdirError(f"Missing file {path}.") from None
    except OSError as exc:
        if path.is_symlink():
            _refuse_untrusted(path, path.lstat(), "unpickle")
        raise WorkdirError(f"Could not open {path}: {exc}") from None
    with os.fdopen(fd, "rb") as handle:
        _refuse_untrusted(path, os.fstat(fd), "unpickle")
        return (load or pickle.load)(handle)


def is_workdir(path):
    """True when ``path`` is a folder created by mempamal (complete or not)."""
    path = Path(path)
    return (path / MARKER).exists() or (path / MANIFEST).exists()


# --------------------------------------------------------------------- data
def _needs_pickle(array):
    # Object arrays (e.g. string labels from pandas) and numpy's new
    # variable-width dtypes cannot be stored as plain .npy bytes.
    return array.dtype.hasobject or not getattr(type(array.dtype), "_legacy", True)


def save_array_like(folder, name, value):
    """Save X, y or groups once, user-only, in the format that reads back fastest.

    Returns the kind recorded in the manifest: ``"numpy"`` (``.npy``, read
    memory-mapped with ``allow_pickle=False``), ``"sparse"`` (CSR ``.npz``,
    as scikit-learn's ``indexable`` makes it), ``"pandas"`` (a pickle that
    keeps dtypes, columns and index) or ``"object"`` (an object array,
    pickled); pickles are only read back after :func:`load_pickle`'s checks.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> save_array_like(folder, "y", np.array([0, 1, 1]))
    'numpy'
    >>> save_array_like(folder, "labels", np.array(["a", None], dtype=object))
    'object'
    """
    import pickle

    import numpy as np
    import scipy.sparse as sp

    folder = Path(folder)
    if value is None:
        return None
    if sp.issparse(value):
        matrix = value.tocsr()
        atomic_write(folder / f"{name}.npz", lambda handle: sp.save_npz(handle, matrix, compressed=False))
        return "sparse"
    if hasattr(value, "iloc"):
        atomic_write_bytes(folder / f"{name}.pkl", pickle.dumps(value, protocol=5))
        return "pandas"
    array = np.asarray(value)
    if _needs_pickle(array):
        atomic_write_bytes(folder / f"{name}.pkl", pickle.dumps(array, protocol=5))
        return "object"
    atomic_write(folder / f"{name}.npy",
                 lambda handle: np.save(_StreamOnly(handle), array, allow_pickle=False))
    return "numpy"


def load_array_like(folder, name, kind):
    """Load what :func:`save_array_like` wrote; numpy arrays are memory-mapped.

    ``folder`` is the workdir's ``data/`` folder: pickles are checked with
    :func:`load_pickle` before they are read.

    Examples
    --------
    >>> X = load_array_like("runs/iris/data", "X", "numpy")   # doctest: +SKIP
    """
    import numpy as np

    folder = Path(folder)
    if kind is None:
        return None
    if kind == "sparse":
        import scipy.sparse as sp

        # load_npz reads with allow_pickle=False.
        return sp.load_npz(folder / f"{name}.npz").tocsr()
    if kind in ("pandas", "object"):
        return load_pickle(folder.parent, folder / f"{name}.pkl")
    path = folder / f"{name}.npy"
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise WorkdirError(f"Missing file {path}.") from None
    except ValueError as exc:
        raise WorkdirError(
            f"Refusing to load {path}: it is not a plain numeric array ({exc}); mempamal never "
            "unpickles .npy files. Build the workdir again."
        ) from None


def save_npy(path, array):
    """Write one plain numeric (or fixed-width text) array atomically, user-only, no pickle.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.npy"
    >>> save_npy(path, np.arange(3)); np.load(path, allow_pickle=False).tolist()
    [0, 1, 2]
    """
    import numpy as np

    array = np.asarray(array)
    atomic_write(path, lambda handle: np.save(_StreamOnly(handle), array, allow_pickle=False))
