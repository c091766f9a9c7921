"""How a task's failure is reported: its log, a message that carries the estimator's own exception, a full disk.

A worker reports a failed task by its message (a :class:`TaskFailure` when
the estimator raised under ``error_score="raise"``, so the caller can raise
that very exception); a task the full disk stopped leaves no output and no
log, and counts as not run (:data:`mempamal.exceptions.DISK_FULL_NOT_RUN`).

Examples
--------
>>> failure_message(TaskError("Task 'final' of wd could not run: missing file"))
"Task 'final' of wd could not run: missing file"
"""

import os
import traceback

from .. import store
from ..exceptions import TaskDiskFullError, TaskError


class TaskFailure(str):
    """A task's failure message that also carries the estimator's exception.

    With ``error_score="raise"`` a worker returns this instead of a plain
    message, so that the process that started the run can raise the
    estimator's own exception (:func:`raise_estimator_error`).

    Examples
    --------
    >>> failure = TaskFailure("Task 'score-o0' failed: ValueError: bad")
    >>> failure.exception = ValueError("bad")
    >>> raise_estimator_error({"score-o0": failure})
    Traceback (most recent call last):
    ...
    ValueError: bad
    """

    exception = None


def _estimator_error(workdir, task_id, original):
    """The TaskError of an estimator that raised with ``error_score="raise"``, naming the task."""
    _write_log(workdir, task_id)
    log = store.log_path(workdir, task_id)
    if hasattr(original, "add_note"):  # Python >= 3.11
        original.add_note(f"mempamal: raised in task {task_id!r} of {workdir} "
                          f"(error_score='raise'; traceback in {log})")
    error = TaskError(f"Task {task_id!r} of {workdir} failed: {type(original).__name__}: {original} "
                      f"(error_score='raise'; traceback in {log})")
    error.estimator_exception = original
    return error


def failure_message(exc):
    """What a worker reports for the :class:`TaskError` ``exc``: its message, carrying the
    estimator's exception when it can travel back (picklable) to the caller.

    Examples
    --------
    >>> failure_message(TaskError("Task 'final' of wd could not run: missing file"))
    "Task 'final' of wd could not run: missing file"
    """
    original = getattr(exc, "estimator_exception", None)
    message = str(exc)
    if original is None:
        return message
    import cloudpickle

    try:
        cloudpickle.dumps(original)
    except Exception:
        return message
    failure = TaskFailure(message)
    failure.exception = original
    return failure


def raise_estimator_error(failed, cause=None):
    """Raise the first estimator exception carried by the messages of ``failed`` (if any).

    ``failed`` maps task ids to failure messages (:class:`TaskFailure` for
    tasks whose estimator raised under ``error_score="raise"``); ``cause``
    becomes the exception's ``__cause__`` (the run's WorkflowError, which
    lists every failed and blocked task).
    """
    for message in failed.values():
        exception = getattr(message, "exception", None)
        if exception is not None:
            raise exception from cause


def _disk_full(workdir, task_id, exc, failure=""):
    """The TaskError of a task the full disk stopped: it leaves no output and no log (pending).

    An older log is removed too, so that ``status`` counts the task as
    pending, as the run's :class:`~mempamal.WorkflowError` reports it
    (:data:`mempamal.store.DISK_FULL_NOT_RUN`).
    """
    try:
        os.unlink(store.log_path(workdir, task_id))
    except OSError:
        pass
    return TaskDiskFullError(f"Task {task_id!r} of {workdir} {store.DISK_FULL_NOT_RUN}: {failure}{exc}",
                             exc.path, exc.errno)


def _write_log(workdir, task_id):
    """Write the traceback being handled as the task's log; a full disk raises the TaskError of
    :func:`_disk_full` (a failure without its log would look pending to ``status``)."""
    import sys

    error = sys.exc_info()[1]  # the task's failure, being handled by the caller
    try:
        # A log only explains a failure (never trusted as done): no fsync.
        store.atomic_write_bytes(store.log_path(workdir, task_id), traceback.format_exc().encode(), durable=False)
    except store.DiskFullError as exc:
        raise _disk_full(workdir, task_id, exc, f"it failed ({type(error).__name__}: {error}), and ") from exc
    except OSError:
        pass  # The exception itself still reaches the caller.
