"""One runner at a time per workdir: a lock file that works across hosts.

``WORKDIR/run.lock`` holds who runs the workdir: host, pid (and which pid
namespace), start time and a random token.  It is created with ``link(2)`` from a complete temporary file,
which fails when the lock exists: the NFS-safe form of ``O_EXCL`` (open(2)
recommends it), so readers never see a half-written lock and two hosts
sharing the workdir over NFS cannot both win.  ``flock`` alone would not do:
it is not shared between NFS clients everywhere.

While held, a daemon thread touches the file every :data:`HEARTBEAT_SECONDS`;
its modification time is the heartbeat.  A lock is *stale* when its holder
is on this host and its pid is gone, or when its heartbeat is older than
:data:`STALE_SECONDS` (the only test possible for another host; it also
covers a reused pid).  A stale lock is taken over under a second lock file,
``run.lock.takeover``, so two processes that both find it stale cannot both
replace it.

What takes the lock: ``Workflow.run`` / ``mempamal run`` for the whole run,
and ``Experiment.build`` while it rewrites an existing workdir.  Single tasks
(``mempamal task``, what exported Makefiles and cluster jobs call) do not:
they must run in parallel; they are protected by the build id stamped on
every output instead.
"""

import json
import numbers
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from .._constraints import Interval, validate_params
from ..exceptions import WorkdirError, WorkdirLocked

LOCK_NAME = "run.lock"
#: Seconds between two refreshes of the lock's modification time.
HEARTBEAT_SECONDS = 5.0
#: A lock whose heartbeat is older than this is stale (the holder died or
#: lost the shared filesystem).  Generous: NFS caches attributes up to 60 s.
STALE_SECONDS = 120.0
#: Seconds between two attempts while waiting for a lock.
POLL_SECONDS = 0.5


def lock_path(workdir):
    """Path of the lock file of ``workdir``.

    Examples
    --------
    >>> lock_path("runs/iris").name
    'run.lock'
    """
    return Path(workdir) / LOCK_NAME


def read_holder(workdir):
    """What the lock file says (``host``, ``pid``, ``started``, ``token``,
    ``purpose``, plus ``heartbeat`` = its modification time), or None when
    the workdir is not locked.

    Examples
    --------
    >>> import tempfile
    >>> read_holder(tempfile.mkdtemp()) is None
    True
    """
    return _read_record(lock_path(workdir))


def _read_record(path):
    try:
        with open(path, "rb") as handle:
            text = handle.read()
        heartbeat = os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
        if not isinstance(holder, dict):
            raise ValueError("not an object")
    except ValueError:
        # Written by something else than this module (links are complete):
        # judged by its age only.
        holder = {"host": None, "pid": None, "started": heartbeat, "token": None, "purpose": None}
    holder["heartbeat"] = heartbeat
    return holder


def describe_holder(holder):
    """Who holds a lock, for messages.

    Examples
    --------
    >>> holder = {"host": "node1", "pid": 123, "started": 0, "token": "t", "heartbeat": time.time()}
    >>> describe_holder(holder)
    'pid 123 on host node1 (run since 1970-01-01 00:00:00 UTC, last heartbeat 0 s ago)'
    """
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder.get("started") or 0))
    age = max(0.0, time.time() - holder["heartbeat"])
    if holder.get("token") is None:
        return (f"an unreadable lock file (last modified {age:.0f} s ago; it is ignored after "
                f"{STALE_SECONDS:.0f} s, or remove it if no mempamal process runs this workdir)")
    return (f"pid {holder.get('pid')} on host {holder.get('host')} "
            f"({holder.get('purpose', 'run')} since {since}, last heartbeat {age:.0f} s ago)")


def is_stale(holder, stale_seconds=None):
    """True when the holder of a lock is certainly gone.

    Examples
    --------
    >>> me = {"host": socket.gethostname(), "pid": os.getpid(), "pids": _pid_space(), "heartbeat": time.time()}
    >>> is_stale(me), is_stale(dict(me, heartbeat=0))
    (False, True)
    """
    stale_seconds = STALE_SECONDS if stale_seconds is None else stale_seconds
    if time.time() - holder["heartbeat"] > stale_seconds:
        return True
    same_processes = holder.get("host") == socket.gethostname() and holder.get("pids") == _pid_space()
    if same_processes and isinstance(holder.get("pid"), int):
        return not _pid_alive(holder["pid"])
    return False


def boot_id():
    """The kernel's id of this boot (Linux), or None where there is none.

    Changes at every reboot: what was known of the files before a crash of
    the machine (a pid, a validated output) is not known after it.

    Examples
    --------
    >>> boot_id() is None or len(boot_id()) == 36
    True
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _pid_space():
    """Which processes a pid refers to: boot id and pid namespace (Linux).

    Two containers may share a host name and a workdir but not their pids;
    only a holder in our own pid space can be judged dead by its pid.
    """
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = None
    return "/".join(str(part) for part in (boot_id(), namespace))


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    # A zombie (killed, not yet reaped by its parent) holds nothing.
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _create_exclusively(path, record):
    """Create ``path`` holding ``record`` unless it exists; True on success.

    The content is written to a private temporary name first and then
    hard-linked: the link appears complete or not at all.
    """
    temporary = path.with_name(f".{path.name}.{record['token']}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(json.dumps(record).encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(temporary)


class WorkdirLock:
    """Exclusive right to run (or rewrite) a workdir; a context manager.

    Parameters
    ----------
    workdir : path
        The workdir to lock (must exist).
    purpose : str
        Shown to whoever is refused: ``"run"`` or ``"build"``.
    wait : bool or float
        ``False`` (default): refuse at once when another live process holds
        the lock.  ``True``: wait until it is released.  A number: wait at
        most that many seconds.
    stale_seconds : float, optional
        Heartbeat age after which a lock is stale (default
        :data:`STALE_SECONDS`).

    Examples
    --------
    >>> import tempfile
    >>> workdir = tempfile.mkdtemp()
    >>> with WorkdirLock(workdir) as lock:
    ...     read_holder(workdir)["pid"] == os.getpid()
    True
    >>> read_holder(workdir) is None
    True
    """

    def __init__(self, workdir, purpose="run", wait=False, stale_seconds=None):
        validate_params({"wait": wait}, {"wait": ["boolean", Interval(numbers.Real, 0, None, closed="left")]},
                        "WorkdirLock")
        self.workdir = Path(workdir)
        self.path = lock_path(workdir)
        self.purpose = purpose
        self.wait = wait
        self.stale_seconds = STALE_SECONDS if stale_seconds is None else stale_seconds
        self.token = None
        self.took_over = None
        self._stop = threading.Event()
        self._thread = None

    # ------------------------------------------------------------ acquire
    def acquire(self, stop=None):
        """Take the lock, take over a stale one, wait, or raise :class:`WorkdirLocked`.

        ``stop`` (a :class:`threading.Event`) ends a wait early: the run
        waiting for the lock was cancelled.
        """
        deadline = None if self.wait is True else time.monotonic() + float(self.wait or 0)
        token = uuid.uuid4().hex
        while True:
            try:
                created = self._try_create(token)
            except OSError as exc:  # read-only folder, full disk, missing workdir
                raise WorkdirError(f"Cannot create the lock file {self.path}: {exc.strerror or exc}.") from None
            if created:
                self.token = token
                self._start_heartbeat()
                return self
            holder = read_holder(self.workdir)
            if holder is None:
                continue  # released between our two looks
            if is_stale(holder, self.stale_seconds):
                try:
                    if self._take_over(holder):
                        self.took_over = holder
                except OSError as exc:
                    raise WorkdirError(f"Cannot replace the stale lock file {self.path}: {exc.strerror or exc}.") from None
                continue
            cancelled = stop is not None and stop.is_set()
            if cancelled or (deadline is not None and time.monotonic() >= deadline):
                what = "Stopped waiting: " if cancelled else ""
                raise WorkdirLocked(
                    f"{what}{self.workdir} is locked by another mempamal process: {describe_holder(holder)}. "
                    f"Wait for it to finish (or pass wait=True / --wait), or stop it; a lock whose "
                    f"holder died is taken over automatically ({self.path}).", holder)
            if stop is not None:
                stop.wait(POLL_SECONDS)
            else:
                time.sleep(POLL_SECONDS)

    def _try_create(self, token):
        record = {"host": socket.gethostname(), "pid": os.getpid(), "pids": _pid_space(),
                  "started": time.time(), "token": token, "purpose": self.purpose}
        return _create_exclusively(self.path, record)

    def _take_over(self, stale_holder):
        """Remove a stale lock; only one of several contenders does it."""
        guard = self.path.with_name(LOCK_NAME + ".takeover")
        token = uuid.uuid4().hex
        record = {"host": socket.gethostname(), "pid": os.getpid(), "pids": _pid_space(), "token": token}
        if not _create_exclusively(guard, record):
            # Another contender is taking over; its guard is stale only if it
            # died in these few lines (judged like a lock).
            guard_holder = _read_record(guard)
            if guard_holder is not None and is_stale(guard_holder, self.stale_seconds):
                guard.unlink(missing_ok=True)
            time.sleep(POLL_SECONDS / 5)
            return False
        try:
            current = read_holder(self.workdir)
            if current is None or current.get("token") != stale_holder.get("token"):
                return False  # already replaced: look again
            graveyard = self.path.with_name(f".{LOCK_NAME}.stale.{token}")
            os.rename(self.path, graveyard)
            os.unlink(graveyard)
            return True
        except FileNotFoundError:
            return False
        finally:
            os.unlink(guard)

    # ---------------------------------------------------------- heartbeat
    def _start_heartbeat(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"mempamal-lock-{self.workdir.name}", daemon=True)
        self._thread.start()

    def _beat(self):
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if not self.holds():
                return  # taken over (we looked dead): never touch another's lock
            try:
                os.utime(self.path)
            except OSError:
                return

    def holds(self):
        """True while the lock file is still ours."""
        holder = read_holder(self.workdir)
        return holder is not None and self.token is not None and holder.get("token") == self.token

    # ------------------------------------------------------------ release
    def release(self):
        """Stop the heartbeat and remove the lock file if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=HEARTBEAT_SECONDS)
            self._thread = None
        if self.holds():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        self.token = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()
