"""Every exception mempamal raises, under one base: :class:`MempamalError`.

Each one also derives from the builtin a caller expects, so existing
``except ValueError`` / ``except RuntimeError`` code keeps working:

==============================  =============================  =======================================================
exception                       builtin                        raised when
==============================  =============================  =======================================================
:class:`InvalidParameterError`  ``ValueError``, ``TypeError``  an argument is wrong (before any file is written)
:class:`WorkdirError`           ``RuntimeError``               a workdir is missing, corrupt or unsafe
:class:`DiskFullError`          ``RuntimeError``               a workdir file could not be written: disk full
:class:`WorkdirLocked`          ``RuntimeError``               another live runner holds the workdir
:class:`TaskError`              ``RuntimeError``               a task could not run (names the task)
:class:`VersionMismatchError`   ``RuntimeError``               a task's libraries are not the build's (a TaskError)
:class:`WorkflowError`          ``RuntimeError``               tasks of a run failed (``failed`` maps ids to messages)
:class:`RunCancelled`           ``RuntimeError``               a run was cancelled; finished outputs are kept
:class:`WorkersLost`            ``RuntimeError``               every worker of a run is gone (its tasks did not fail)
:class:`SetupError`             ``RuntimeError``               how mempamal is called cannot work (e.g. no main guard)
:class:`BackendError`           ``RuntimeError``               a backend could not run tasks (a job refused, no worker)
:class:`ClusterUnreachable`     ``RuntimeError``, ``OSError``  a backend's cluster or scheduler cannot be reached
:class:`MissingDependency`      ``ImportError``                a backend's optional package is not installed
:class:`RunTimeout`             ``TimeoutError``               ``Run.wait(timeout=)`` ran out before the run ended
==============================  =============================  =======================================================

This module imports nothing of mempamal: every layer may raise these.

Examples
--------
>>> import mempamal as mp
>>> issubclass(mp.WorkflowError, mp.MempamalError), issubclass(mp.WorkflowError, RuntimeError)
(True, True)
>>> try:
...     mp.Experiment("not an estimator")
... except mp.MempamalError as exc:
...     print(type(exc).__name__, isinstance(exc, ValueError))
InvalidParameterError True
"""

import errno as _errno
import os as _os
from pathlib import Path as _Path

#: The prefix of the message of a task that was not run because a task it
#: depends on failed: such a task is *blocked*, not failed.
BLOCKED_MESSAGE = "not run: depends on failed task"
#: How a task that the full disk stopped is reported (no output, no error log:
#: it stays pending). :class:`WorkflowError` counts these tasks as not run,
#: not failed, as ``status`` does.
DISK_FULL_NOT_RUN = "not run to the end (disk full)"
#: How a task is reported whose worker (a process, a Dask worker, an
#: ipyparallel engine) died while running it on every attempt the backend
#: allows (killed at its walltime, preempted, out of memory, lost): the task
#: did not raise; it wrote no output and no error log and stays pending.
#: :class:`WorkflowError` counts these tasks as not run, not failed.
WORKER_LOST_NOT_RUN = "not run to the end (worker lost)"


class MempamalError(Exception):
    """Base class of every exception mempamal raises.

    Examples
    --------
    >>> issubclass(WorkdirError, MempamalError)
    True
    """


class InvalidParameterError(MempamalError, ValueError, TypeError):
    """An argument of a public function is not what it must be.

    Like scikit-learn's ``InvalidParameterError`` it is both a ``ValueError``
    and a ``TypeError``; the message names the argument, the owner and what
    was expected (one validator raises it: ``mempamal._constraints``, used by
    :mod:`mempamal.validation`).

    Examples
    --------
    >>> error = InvalidParameterError("The 'cv' parameter of Experiment must be an int; got 'abc' instead.")
    >>> isinstance(error, ValueError) and isinstance(error, TypeError)
    True
    """


class WorkdirError(MempamalError, RuntimeError):
    """A workdir is missing, incomplete, corrupt or unsafe to run.

    Examples
    --------
    >>> import mempamal as mp
    >>> try:
    ...     mp.Workflow.open("not-a-workdir")
    ... except WorkdirError as exc:
    ...     print(exc)
    not-a-workdir is not a mempamal workdir (no manifest.json).
    """


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
        self.path = _Path(path)
        self.errno = code
        super().__init__(
            f"Could not write {self.path}: the disk is full ({_os.strerror(code)}, "
            f"{_errno.errorcode.get(code, code)}). Nothing of that file was kept; "
            "free some space and try again."
        )

    def __reduce__(self):
        # Exceptions pickle as type(*args) by default; this one is made of (path, code).
        return type(self), (self.path, self.errno), self.__dict__


class WorkdirLocked(MempamalError, RuntimeError):
    """The workdir is locked by another live runner; the message names it.

    ``holder`` is what the lock file says (see
    :func:`mempamal.store.lock.read_holder`).

    Examples
    --------
    >>> error = WorkdirLocked("runs/iris is being run by pid 12 on host-a", {"pid": 12, "host": "host-a"})
    >>> error.holder["host"]
    'host-a'
    """

    def __init__(self, message, holder=None):
        super().__init__(message)
        self.holder = holder

    def __reduce__(self):
        return type(self), (str(self), self.holder), self.__dict__


class TaskError(MempamalError, RuntimeError):
    """A task could not run; the message names the task and the cause.

    A worker sends it back to the process that started the run (it pickles).
    With ``error_score="raise"`` it carries the estimator's own exception
    as ``estimator_exception`` (also its ``__cause__`` where it was raised,
    which does not travel), so that the run raises that very exception in
    the caller, as scikit-learn would (``engine/failures.raise_estimator_error``).

    Attributes
    ----------
    estimator_exception : BaseException or None
        The estimator's exception (``error_score="raise"``), None for any other failure.

    Examples
    --------
    >>> import mempamal as mp
    >>> wf = mp.Experiment(estimator, cv=2).build(X, y, workdir=tmp / "task-error")
    >>> try:
    ...     mp.run_task(wf.workdir, "fit-o9-i0-c0")
    ... except TaskError as exc:
    ...     print(exc)
    Task 'fit-o9-i0-c0' of ...task-error could not run: No task 'fit-o9-i0-c0' in ...tasks.json (it has 4 tasks, ...).
    """

    estimator_exception = None


class VersionMismatchError(TaskError):
    """A task refused to run: the process's Python or library versions are not the build's.

    ``mismatches`` lists ``(name, version here, version at build)``; the
    message names each ("scikit-learn 1.6.1 here, 1.9.1 at build") and the
    way out: rebuild, or pass ``allow_version_mismatch=True``
    (``mempamal task --allow-version-mismatch``), which the outputs record.

    Examples
    --------
    >>> error = VersionMismatchError("scikit-learn 1.6.1 here, 1.9.1 at build: ...", [("scikit-learn", "1.6.1", "1.9.1")])
    >>> isinstance(error, TaskError), error.mismatches[0][0]
    (True, 'scikit-learn')
    """

    def __init__(self, message, mismatches=()):
        super().__init__(message)
        self.mismatches = list(mismatches)


class TaskDiskFullError(TaskError, DiskFullError):
    """A task the full disk stopped: a :class:`TaskError` that is also the :class:`DiskFullError`
    of the file it could not write.

    Its message carries ``DISK_FULL_NOT_RUN``: a
    worker reports the message, and the run counts the task as not run, not
    failed (``status`` shows it pending).

    Examples
    --------
    >>> import errno
    >>> error = TaskDiskFullError("Task 'final' of wd not run to the end (disk full): ...", "wd/results.json",
    ...                           errno.ENOSPC)
    >>> isinstance(error, DiskFullError), isinstance(error, TaskError), error.path.name
    (True, True, 'results.json')
    """

    def __init__(self, message, path, code):
        self.path, self.errno = _Path(path), code
        RuntimeError.__init__(self, message)

    def __reduce__(self):
        return type(self), (str(self), self.path, self.errno), self.__dict__


class WorkflowError(MempamalError, RuntimeError):
    """Some tasks failed; ``failed`` maps their ids to the error messages.

    ``failed`` may be given messages or the :class:`TaskError` a worker
    reported for a task: the attribute keeps its message.

    The tasks are counted as ``mempamal status`` counts them afterwards:
    failed (an error log), ``blocked`` by a failure, or ``not_run``: stopped
    by a full disk (``DISK_FULL_NOT_RUN``: neither their output nor an
    error log could be written), by the death of their worker on every
    attempt (``WORKER_LOST_NOT_RUN``: the task did not raise), or waiting
    on such a task; those stay pending.

    Examples
    --------
    >>> error = WorkflowError({"fit-o0-i0-c0": "ValueError: bad"}, "runs/iris")
    >>> error.failed
    {'fit-o0-i0-c0': 'ValueError: bad'}
    >>> str(error)
    "1 task(s) failed in runs/iris; first 'fit-o0-i0-c0': ValueError: bad"
    >>> str(WorkflowError({"fit-o0-i0-c0": "Task 'fit-o0-i0-c0' not run to the end (disk full): ...",
    ...                    "select-o0": "not run: depends on failed task 'fit-o0-i0-c0'"}, "wd"))[:60]
    '0 task(s) failed, 2 not run because the disk is full in wd; '
    >>> str(WorkflowError({"fit-o0-i0-c0": "Task 'fit-o0-i0-c0' not run to the end (worker lost): ..."},
    ...                   "wd"))[:61]
    '0 task(s) failed, 1 not run because their worker died in wd; '
    """

    def __init__(self, failed, workdir=None):
        self.failed = {task_id: str(failure) for task_id, failure in failed.items()}
        self.workdir = workdir
        causes = {DISK_FULL_NOT_RUN: "the disk is full", WORKER_LOST_NOT_RUN: "their worker died"}
        stopped = {i: cause for i, message in self.failed.items() for cause in causes if cause in message}
        # A dependent of a task stopped this way is pending, as that task is.
        waiting = {f"{BLOCKED_MESSAGE} {task_id!r}" for task_id in stopped}
        self.not_run = sorted(i for i, message in self.failed.items() if i in stopped or message in waiting)
        # The backends report the dependents of a failed task as "not run:
        # depends on failed task ...": counted apart, as `mempamal status` does.
        self.blocked = sorted(i for i, message in self.failed.items()
                              if message.startswith(BLOCKED_MESSAGE) and message not in waiting)
        errors = [(i, message) for i, message in self.failed.items()
                  if not message.startswith(BLOCKED_MESSAGE) and i not in stopped]
        first_id, first_message = (errors or [(i, self.failed[i]) for i in sorted(stopped)]
                                   or list(self.failed.items()))[0]
        blocked = f", {len(self.blocked)} blocked by a failure" if self.blocked else ""
        because = " or ".join(causes[cause] for cause in causes if cause in stopped.values())
        not_run = f", {len(self.not_run)} not run because {because}" if self.not_run else ""
        advice = "".join(_NOT_RUN_ADVICE[cause] for cause in causes if cause in stopped.values())
        super().__init__(
            f"{len(errors)} task(s) failed{blocked}{not_run} in {workdir}; first {first_id!r}: {first_message}"
            f"{advice}"
        )

    def __reduce__(self):
        return type(self), (self.failed, self.workdir)


_NOT_RUN_ADVICE = {
    DISK_FULL_NOT_RUN: (" The tasks not run could not write their output or error log; they stay pending "
                        "(as `mempamal status` counts them): free some space and run again."),
    WORKER_LOST_NOT_RUN: (" The tasks not run did not raise: their worker died (killed at its time limit, "
                          "preempted, out of memory, lost) on every attempt; they stay pending (as "
                          "`mempamal status` counts them): run again to resume."),
}


class RunCancelled(MempamalError, RuntimeError):
    """A run was stopped (``Run.cancel()``, its ``stop`` event); finished outputs are kept.

    Examples
    --------
    >>> import threading
    >>> from mempamal.backends.base import check_stop
    >>> stop = threading.Event(); stop.set()
    >>> try:
    ...     check_stop(stop)
    ... except RunCancelled as exc:
    ...     print(exc)
    the run was cancelled
    """


class SetupError(MempamalError, RuntimeError):
    """The way mempamal is called cannot work, whatever the data: the message says what to change.

    For example a script that starts a ``dask`` run at top level, without
    ``if __name__ == "__main__":`` (its workers would import it and start
    the run again).

    Examples
    --------
    >>> isinstance(SetupError("put the run under a main guard"), RuntimeError)
    True
    """


class BackendError(MempamalError, RuntimeError):
    """A backend could not run the tasks: the scheduler refused a job, a cluster has no worker, ...

    The tasks themselves did not fail (that is a :class:`WorkflowError`):
    finished outputs are kept, and running again resumes.

    Examples
    --------
    >>> isinstance(BackendError("The Dask cluster has no worker after 60 s"), RuntimeError)
    True
    """


class ClusterUnreachable(BackendError, OSError):
    """A backend's cluster or scheduler cannot be reached (no running cluster, a closed address).

    Also an ``OSError``, as a refused connection is.

    Examples
    --------
    >>> error = ClusterUnreachable("The dask backend could not reach a scheduler at 'tcp://127.0.0.1:9'")
    >>> isinstance(error, OSError), isinstance(error, BackendError)
    (True, True)
    """

    def __reduce__(self):
        # OSError and RuntimeError both define how they pickle; rebuilt by
        # calling the class, it unpickles under every protocol.
        return type(self), self.args


class MissingDependency(MempamalError, ImportError):
    """An optional package a backend needs is not installed; the message says what to install.

    Examples
    --------
    >>> isinstance(MissingDependency("The dask backend needs distributed: pip install 'mempamal[dask]'"),
    ...            ImportError)
    True
    """


class RunTimeout(MempamalError, TimeoutError):
    """:meth:`mempamal.Run.wait` ran out of time before the run ended (the run goes on).

    Examples
    --------
    >>> isinstance(RunTimeout("the run of runs/iris is still going after 5 s"), TimeoutError)
    True
    """


class WorkersLost(BackendError):
    """Every worker of a run is gone (Dask workers, ipyparallel engines): the run ends, its tasks did not fail.

    Raised by the batch backends when no worker is left to run the tasks
    still to do (all killed at their time limit, preempted, or lost) and
    none came back in time.  Finished outputs are kept: start workers and
    run again to resume.  ``failed`` maps the tasks that did fail (raised)
    before to their messages; ``not_run`` is how many tasks were left.

    Examples
    --------
    >>> error = WorkersLost("Every ipyparallel engine of the run is gone ...", failed={}, not_run=12)
    >>> isinstance(error, RuntimeError), error.not_run
    (True, 12)
    """

    def __init__(self, message, failed=None, not_run=0):
        super().__init__(message)
        self.failed = dict(failed or {})
        self.not_run = not_run

    def __reduce__(self):
        return type(self), (str(self), self.failed, self.not_run)
