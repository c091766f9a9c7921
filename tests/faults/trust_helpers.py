"""Helpers shared by the trust tests (security, bad input, disk full, hostile paths)."""

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

OTHER_USER = "mempamal-h2-other"


class TouchOnUnpickle:
    """A pickle payload whose *unpickling* creates ``marker`` (stands for any code).

    ``builtins.open(marker, "w")`` runs inside ``pickle.load``: if the marker
    file exists afterwards, the file was unpickled.
    """

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant_pickle(path, marker):
    """Replace ``path`` with a pickle that creates ``marker`` when loaded."""
    Path(path).write_bytes(pickle.dumps(TouchOnUnpickle(marker)))
    os.chmod(path, 0o600)


def tree_snapshot(root):
    """Every entry under ``root`` (relative path -> mode, size, mtime): detects any write.

    Folders are compared by mode only: the workdir lock (a file created and
    removed while a build checks an existing workdir) changes a folder's
    mtime without writing anything that stays.
    """
    import stat

    root = Path(root)
    snapshot = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            snapshot[str(path.relative_to(root))] = (
                (info.st_mode,) if stat.S_ISDIR(info.st_mode) else (info.st_mode, info.st_size, info.st_mtime_ns))
    return snapshot


def is_root():
    return hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="session")
def other_user():
    """uid of a real second user (created with useradd when running as root)."""
    if not is_root() or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd to create a second user to own the planted files")
    created = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER],
                             capture_output=True, text=True)
    if created.returncode not in (0, 9):  # 9: the user already exists
        pytest.skip(f"useradd failed: {created.stderr.strip()}")
    import pwd

    uid = pwd.getpwnam(OTHER_USER).pw_uid
    yield uid
    if created.returncode == 0:
        subprocess.run(["userdel", OTHER_USER], capture_output=True)


def python_with_limits(script, file_size_limit, cwd=None):
    """Run ``script`` in a fresh interpreter whose files may not exceed ``file_size_limit`` bytes.

    SIGXFSZ is ignored in the child (an ignored signal stays ignored across
    exec), so a write past the limit fails with EFBIG instead of killing it.
    """
    import resource
    import signal

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          preexec_fn=limit, cwd=cwd, timeout=300)
