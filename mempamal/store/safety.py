"""Refuse workdir files that someone else could have written, before unpickling anything.

A workdir holds pickled code that mempamal executes; :func:`load_pickle` checks the
folder chain and the open file first.
"""

import os
import stat
from pathlib import Path

from ..exceptions import WorkdirError
from .workdir import DATA_DIR, EXPERIMENT, LOGS_DIR, MANIFEST, MARKER, MODELS_DIR, OUTPUTS_DIR, RESULTS, SPLITS_DIR, TASKS

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
    >>> check_workdir_is_safe("runs/iris")
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
    >>> experiment = load_pickle("runs/iris", "runs/iris/experiment.pkl")
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
