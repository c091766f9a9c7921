"""One watcher per process for the Slurm jobs of every run: polite polling.

Administrators throttle tools that poll the scheduler every second; a run of
1,000 bundles must not cost slurmctld more than a few calls a minute.  So
the Slurm jobs of *every* run of a process are watched by one
:class:`SlurmWatcher` (:data:`WATCHER`; submitit's ``InfoWatcher`` is the
model), whose *tick* is one ``squeue -t all`` call for all arrays of all
runs.  ``-t all`` also lists the elements that ended within slurmctld's
``MinJobAge`` (5 minutes by default) with their final state (``COMPLETED``,
``TIMEOUT``...), so ``sacct`` is only asked about elements that left the
queue unseen, and what it says about a finished element is cached for good.

**The law** (:func:`next_interval`).  Ticks come at least ``min_seconds``
(the backend's ``poll_seconds``, 1 s by default) apart.  The *floor*
between ticks grows with the age of the newest watch, ``age / 10``, up to
:data:`CRUISE_SECONDS` (6 s) after the first minute; while the queue does
not change the interval doubles up to :data:`MAX_SECONDS` (60 s); when it
changes (or a run sees new outputs: :meth:`SlurmWatcher.nudge`) it falls
back to the floor.  A sacct call waits for a floor after the last call and
pushes the next tick one floor further: any two calls are a floor apart, so
after its first minute a process makes at most ``60 / CRUISE_SECONDS`` = 10
scheduler calls a minute, whatever the number of runs, arrays and bundles.

**Other processes.**  Each tick writes what it saw of a workdir's jobs to
``WORKDIR/submissions/slurm-queue.cache`` (host, pid, time, how long it stays
fresh).  A watcher finding there a fresh view written by *another* process
takes it instead of asking squeue about those jobs, and the last writer
keeps polling: a process attaching to (or showing the status of) a run that
a live driver follows adds no scheduler call.  When the driver dies its
view goes stale (its interval plus :data:`FRESH_GRACE`) and the next reader
polls and writes in its place.

``Workflow.status()``, ``Run`` reprs and panels read this cache
(:meth:`SlurmWatcher.view`) and never call the scheduler themselves: without
a fresh view (nobody watches the jobs), the view asks the watcher for one
call, itself spaced by the law.
"""

import math
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from ... import store

#: Longest interval between two ticks while nothing changes (seconds).
MAX_SECONDS = 60.0
#: Floor between ticks after the first minute of the newest watch: 60 / 6 = 10 calls a minute.
CRUISE_SECONDS = 6.0
#: The floor is ``age / RAMP`` until it reaches :data:`CRUISE_SECONDS`.
RAMP = 10.0
#: A view written by another process stays fresh for its writer's interval plus this (seconds).
FRESH_GRACE = 5.0
#: The cache file in ``WORKDIR/submissions/``.
CACHE_FILE = "slurm-queue.cache"  # not *.json: submissions/*.json are the records
#: Queue states of a job that has not finished yet (squeue's long names).
ACTIVE_STATES = frozenset({"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
                           "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"})


def run_command(command, timeout=60):
    """Run a Slurm client command, text in and out (the one place the slurm route starts them).

    Examples
    --------
    >>> run_command(["echo", "squeue"]).stdout
    'squeue\\n'
    """
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def next_interval(interval, changed, age, calls, min_seconds=1.0):
    """Seconds until the next tick, after a tick that made ``calls`` scheduler calls.

    ``interval`` is the one before this tick, ``changed`` whether the queue
    (or the outputs) changed since, ``age`` seconds since the newest watch.

    Examples
    --------
    >>> next_interval(1.0, changed=False, age=5.0, calls=1)     # backs off while nothing changes
    2.0
    >>> next_interval(48.0, changed=False, age=600.0, calls=1)  # up to a minute
    60.0
    >>> next_interval(60.0, changed=True, age=600.0, calls=1)   # a change: back to the floor
    6.0
    >>> next_interval(60.0, changed=True, age=20.0, calls=1)    # the floor grows with age
    2.0
    >>> next_interval(6.0, changed=True, age=600.0, calls=2)    # squeue + sacct: two floors
    12.0
    """
    floor = floor_seconds(age, min_seconds)
    interval = floor if changed else min(MAX_SECONDS, max(floor, 2 * interval))
    return max(interval, floor * max(1, calls))


def floor_seconds(age, min_seconds=1.0):
    """The shortest interval between ticks ``age`` seconds after the newest watch.

    Examples
    --------
    >>> floor_seconds(0.0), floor_seconds(30.0), floor_seconds(3600.0)
    (1.0, 3.0, 6.0)
    >>> floor_seconds(0.0, min_seconds=0.2), floor_seconds(0.0, min_seconds=10.0)
    (0.2, 10.0)
    """
    return max(min_seconds, min(CRUISE_SECONDS, age / RAMP))


def element_array(element):
    """The array job id of a squeue/sacct element id: ``'41_3'`` -> ``'41'``, ``'41_[0-5]'`` -> ``'41'``.

    Examples
    --------
    >>> element_array("41_3"), element_array("41")
    ('41', '41')
    """
    return element.split("_", 1)[0]


class SlurmWatcher:
    """The Slurm jobs of every run of this process, polled together (see the module docstring).

    Examples
    --------
    >>> watcher = SlurmWatcher()
    >>> token = watcher.watch("runs/iris", ["41", "42"], min_seconds=0.5)
    >>> watcher.states(["41"]) is None      # not polled yet: nothing known
    True
    >>> watcher.unwatch(token); watcher.calls
    0
    """

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.RLock()
        self._watches = {}       # token -> (workdir Path, tuple of array ids, min_seconds)
        self._next_token = 0
        self._states = {}        # element -> (state, reason), from the last answer covering its array
        self._seen = {}          # array id -> clock of the last answer covering it
        self._final = {}         # element -> sacct fields of an element that has ended (never change again)
        self._started = clock()  # the newest watch
        self._interval = 1.0
        self._due = -math.inf    # clock of the next tick
        self._last_call = -math.inf
        self._snapshot = None
        self.calls = 0           # scheduler calls made by this watcher (squeue and sacct)

    # --------------------------------------------------------- watches
    def watch(self, workdir, job_ids, min_seconds=1.0):
        """Follow the arrays ``job_ids`` of ``workdir`` from now on; returns a token for :meth:`unwatch`.

        A new watch starts the law again (ticks 1 s apart at first): its
        jobs were just submitted, and short runs should end promptly.

        Examples
        --------
        >>> watcher = SlurmWatcher(); token = watcher.watch("runs/iris", ["41"]); watcher.unwatch(token)
        """
        with self._lock:
            token = self._next_token
            self._next_token += 1
            self._watches[token] = (Path(workdir), tuple(str(j) for j in job_ids), float(min_seconds))
            self._started = self._clock()
            self._interval = self._min_seconds()
            self._due = -math.inf
            return token

    def unwatch(self, token):
        """Stop following the arrays of ``token``; what is cached about them is forgotten.

        Examples
        --------
        >>> watcher = SlurmWatcher(); watcher.unwatch(watcher.watch("runs/iris", ["41"]))
        """
        with self._lock:
            _, job_ids, _ = self._watches.pop(token, (None, (), None))
            still = {job for _, ids, _ in self._watches.values() for job in ids}
            gone = set(job_ids) - still
            for element in [e for e in self._states if element_array(e) in gone]:
                del self._states[element]
            for job in gone:
                self._seen.pop(job, None)

    def _min_seconds(self):
        return min((m for _, _, m in self._watches.values()), default=1.0)

    def _floor(self):
        return floor_seconds(self._clock() - self._started, self._min_seconds())

    def nudge(self):
        """Something changed outside the queue (new outputs): tick again after the floor, not the back-off.

        Examples
        --------
        >>> SlurmWatcher().nudge()
        """
        with self._lock:
            floor = self._floor()
            if self._interval > floor:
                self._due -= self._interval - floor
                self._interval = floor
                self._due = max(self._due, self._last_call + floor)  # never two calls within a floor

    def next_in(self):
        """Seconds until the next tick is due (0 when it is due now).

        Examples
        --------
        >>> SlurmWatcher().next_in()
        0.0
        """
        with self._lock:
            return max(0.0, self._due - self._clock())

    # ------------------------------------------------------------ ticks
    def poll(self):
        """Tick if one is due: one squeue for the arrays of every watch; True when it ticked.

        Examples
        --------
        >>> SlurmWatcher().poll()   # nothing watched: nothing asked
        False
        """
        with self._lock:
            if not self._watches or self._clock() < self._due:
                return False
            self._tick()
            return True

    def _tick(self):
        calls_before = self.calls
        borrowed = self._borrow_fresh_views()
        asked = sorted({job for _, ids, _ in self._watches.values() for job in ids} - borrowed)
        answer = self._squeue(asked) if asked else None
        if answer is not None:
            self._store(asked, answer)
        snapshot = frozenset((element, state) for element, (state, _) in self._states.items())
        changed, self._snapshot = snapshot != self._snapshot, snapshot
        self._interval = next_interval(self._interval, changed, self._clock() - self._started,
                                       self.calls - calls_before, self._min_seconds())
        self._due = self._clock() + self._interval
        if answer is not None:
            self._publish(asked)  # fresh for as long as this process waits before its next tick

    def _squeue(self, job_ids):
        """``{element: (state, reason)}`` of ``job_ids`` in any state squeue still knows; None: no answer."""
        self.calls += 1
        self._last_call = self._clock()
        try:
            answer = run_command(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r", "-j", ",".join(job_ids)])
        except (OSError, subprocess.TimeoutExpired):
            return None
        if answer.returncode != 0:
            # Jobs purged from slurmctld's memory are "invalid": they are long finished.
            return {} if "Invalid job id" in answer.stderr else None
        states = {}
        for line in answer.stdout.splitlines():
            element, state, reason = (line.split("|") + ["", ""])[:3]
            if element:
                states[element] = (state, reason)
        return states

    def _store(self, job_ids, answer):
        asked = set(job_ids)
        for element in [e for e in self._states if element_array(e) in asked]:
            del self._states[element]
        self._states.update(answer)
        now = self._clock()
        for job in asked:
            self._seen[job] = now

    def states(self, job_ids):
        """``{element: (state, reason)}`` of the arrays ``job_ids`` (active and recently ended), from the cache.

        None until a tick (or another process's fresh view) has covered all
        of them since they were watched; an element absent from the answer
        has left squeue altogether (ask :meth:`final_states`).

        Examples
        --------
        >>> SlurmWatcher().states(["41"]) is None
        True
        """
        with self._lock:
            if any(str(job) not in self._seen for job in job_ids):
                return None
            wanted = {str(job) for job in job_ids}
            return {e: s for e, s in self._states.items() if element_array(e) in wanted}

    # ------------------------------------------------------- the cache file
    def _borrow_fresh_views(self):
        """Arrays covered by a fresh view another process wrote; their states are taken from it."""
        borrowed = set()
        for workdir, job_ids, _ in list(self._watches.values()):
            view = read_view(workdir, foreign_only=True)
            if view is None or not set(job_ids) <= set(view["arrays"]):
                continue
            answer = {e: tuple(s) for e, s in view["states"].items() if element_array(e) in set(job_ids)}
            self._store(job_ids, answer)
            borrowed.update(job_ids)
        return borrowed

    def _publish(self, asked):
        """Write what this tick saw of each watched workdir's jobs to its cache file."""
        for workdir, job_ids, _ in list(self._watches.values()):
            if set(job_ids) <= set(asked):
                states = {e: list(s) for e, s in self._states.items() if element_array(e) in set(job_ids)}
                write_view(workdir, job_ids, states, fresh_for=self._interval)

    def view(self, workdir, job_ids):
        """``{element: (state, reason)}`` of a workdir's arrays for a status display, or None if squeue fails.

        From this process's cache when it watches them, else a fresh view in
        the workdir's cache file (any process's), else one squeue call
        (counted, written to the file: the next views read it).

        Examples
        --------
        >>> SlurmWatcher().view("runs/iris", [])
        {}
        """
        job_ids = [str(job) for job in job_ids]
        if not job_ids:
            return {}
        with self._lock:
            watched = {job for _, ids, _ in self._watches.values() for job in ids}
            if set(job_ids) <= watched and self.states(job_ids) is not None:
                return self.states(job_ids)
            view = read_view(workdir, foreign_only=False)
            if view is not None and set(job_ids) <= set(view["arrays"]):
                return {e: tuple(s) for e, s in view["states"].items() if element_array(e) in set(job_ids)}
            answer = self._squeue(job_ids)
            if answer is not None:
                write_view(workdir, job_ids, {e: list(s) for e, s in answer.items()},
                           fresh_for=CRUISE_SECONDS)
            return answer

    # ------------------------------------------------------------- sacct
    def final_states(self, elements, wait=True):
        """``{element: {"State", "ExitCode", "ReqMem", "Timelimit"}}`` of ended ``elements`` (``"41_3"``).

        From the cache when every one is there; else one sacct call for
        their arrays, whose ended elements are cached for good (a final
        state does not change).  Elements sacct does not know, or still
        running, are left out; {} when accounting is unavailable.  The call
        waits until a floor has passed since the last one (without
        ``wait``, only the cache answers until then).

        Examples
        --------
        >>> SlurmWatcher().final_states([])
        {}
        """
        elements = {str(element) for element in elements}
        ask = sorted({element_array(e) for e in elements if e not in self._final})
        if ask and shutil.which("sacct") is not None:
            with self._lock:
                pause = self._last_call + self._floor() - self._clock()
            if pause <= 0 or wait:
                time.sleep(max(0.0, pause))  # outside the lock: other runs keep polling
                with self._lock:
                    self.calls += 1
                    self._last_call = self._clock()
                    self._due = max(self._due, self._last_call + self._floor())
                    self._final.update(_sacct(ask))
        with self._lock:
            return {e: dict(self._final[e]) for e in elements if e in self._final}

    def forget_final(self, job_ids):
        """Drop the cached sacct fields of ``job_ids`` (an element was requeued: it may end again).

        Examples
        --------
        >>> SlurmWatcher().forget_final(["41"])
        """
        job_ids = {str(job) for job in job_ids}
        with self._lock:
            for element in [e for e in self._final if element_array(e) in job_ids]:
                del self._final[element]


SACCT_FIELDS = ("JobID", "State", "ExitCode", "ReqMem", "Timelimit")


def _sacct(job_ids):
    """The final sacct fields of the elements of ``job_ids`` (elements still running are left out)."""
    try:
        answer = run_command(["sacct", "-n", "-X", "-P", "-o", ",".join(SACCT_FIELDS), "-j", ",".join(job_ids)])
    except (OSError, subprocess.TimeoutExpired):
        return {}
    final = {}
    for line in answer.stdout.splitlines():
        values = line.split("|")
        if len(values) != len(SACCT_FIELDS):
            continue
        fields = dict(zip(SACCT_FIELDS, values))
        state = fields["State"].split()[0] if fields["State"] else ""
        if state and state not in ACTIVE_STATES:
            final[fields.pop("JobID")] = fields
    return final


def read_view(workdir, foreign_only=False):
    """The fresh view in ``WORKDIR/submissions/slurm-queue.cache``, or None (missing, stale, unreadable).

    With ``foreign_only``, a view this process wrote counts as None.

    Examples
    --------
    >>> import tempfile
    >>> read_view(tempfile.mkdtemp()) is None
    True
    """
    path = Path(workdir) / "submissions" / CACHE_FILE
    try:
        view = store.read_json(path)
        fresh = time.time() < float(view["written"]) + float(view["fresh_for"]) + FRESH_GRACE
        mine = view.get("host") == socket.gethostname() and view.get("pid") == os.getpid()
        if not fresh or (foreign_only and mine) or not isinstance(view.get("states"), dict):
            return None
        view["arrays"] = [str(job) for job in view.get("arrays", ())]
        return view
    except (OSError, ValueError, KeyError, TypeError, store.WorkdirError):
        return None


def write_view(workdir, job_ids, states, fresh_for):
    """Write what squeue said of ``job_ids`` to the workdir's cache file (best effort).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> workdir = pathlib.Path(tempfile.mkdtemp()); (workdir / "submissions").mkdir()
    >>> write_view(workdir, ["41"], {"41_0": ["RUNNING", "None"]}, fresh_for=6.0)
    >>> read_view(workdir)["states"], read_view(workdir, foreign_only=True)
    ({'41_0': ['RUNNING', 'None']}, None)
    """
    folder = Path(workdir) / "submissions"
    if not folder.is_dir():
        return
    view = {"host": socket.gethostname(), "pid": os.getpid(), "written": time.time(), "fresh_for": fresh_for,
            "arrays": list(job_ids), "states": states}
    try:
        store.write_json(folder / CACHE_FILE, view, durable=False)  # a cache: a torn one is ignored
    except (OSError, store.WorkdirError):
        pass  # a read-only workdir: other processes poll for themselves


#: The one watcher of this process.  Module-level on purpose: polite polling
#: means one squeue per tick for every run of the process, so the runs must
#: share it; it holds no worker of a run, only what squeue said.
WATCHER = SlurmWatcher()
