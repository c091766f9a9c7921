"""Atomic, user-only file writes and JSON reads: the one way a workdir file is written.

See :mod:`mempamal.store.workdir` for which files are durable (fsynced) and why.
"""

import errno
import json
import os
import tempfile
from pathlib import Path

from ..exceptions import DISK_FULL_NOT_RUN, DiskFullError, WorkdirError  # noqa: F401 (re-exported)

# Errors of a write that ran out of room: the filesystem is full (ENOSPC),
# the user's quota is exhausted (EDQUOT) or the file-size limit of the process
# (RLIMIT_FSIZE, ulimit -f) is reached (EFBIG).
DISK_FULL_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", None)) if code is not None
)



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
