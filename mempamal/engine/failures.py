"""How a task's failure is reported: its log, the TaskError that carries the estimator's own exception, a full disk.

A worker reports a failed task by the :class:`~mempamal.TaskError` it
raised (:func:`reported`): it pickles back to the process that started the
run, carrying, when the estimator raised under ``error_score="raise"``, that
exception (``estimator_exception``), which the caller raises
(:func:`raise_estimator_error`).  A task the full disk stopped leaves no
output and no log, and counts as not run
(:data:`mempamal.exceptions.DISK_FULL_NOT_RUN`).

Examples
--------
>>> import pickle
>>> error = TaskError("Task 'score-o0' of wd failed: ValueError: bad")
>>> error.estimator_exception = ValueError("bad")
>>> travelled = pickle.loads(pickle.dumps(reported(error)))
>>> str(travelled), repr(travelled.estimator_exception)
("Task 'score-o0' of wd failed: ValueError: bad", "ValueError('bad')")
"""

import os
import traceback

from .. import store
from ..exceptions import TaskDiskFullError, TaskError


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


def reported(error):
    """What a worker sends back for the :class:`~mempamal.TaskError` ``error``: that error,
    its estimator's exception kept only if it can travel (pickle) to the caller.

    An exception that cannot be pickled (e.g. one holding a lock) is
    dropped: the caller then gets the run's :class:`~mempamal.WorkflowError`,
    whose message is the task's.

    Examples
    --------
    >>> import threading
    >>> error = TaskError("Task 'final' of wd failed: ValueError: ...")
    >>> error.estimator_exception = ValueError(threading.Lock())   # a lock does not pickle
    >>> reported(error).estimator_exception is None
    True
    """
    original = error.estimator_exception
    if original is None:
        return error
    import cloudpickle

    try:
        cloudpickle.dumps(original)
    except Exception:
        error.estimator_exception = None
    return error


def raise_estimator_error(failed, cause=None):
    """Raise the first estimator exception carried by the failures of ``failed`` (if any).

    ``failed`` maps task ids to failures: messages, or the
    :class:`~mempamal.TaskError` a worker reported (its
    ``estimator_exception`` set for a task whose estimator raised under
    ``error_score="raise"``); ``cause`` becomes the exception's ``__cause__``
    (the run's WorkflowError, which lists every failed and blocked task).

    Examples
    --------
    >>> failure = TaskError("Task 'score-o0' failed: ValueError: bad")
    >>> failure.estimator_exception = ValueError("bad")
    >>> raise_estimator_error({"score-o0": failure, "final": "not run: depends on failed task 'score-o0'"})
    Traceback (most recent call last):
    ...
    ValueError: bad
    """
    for failure in failed.values():
        exception = getattr(failure, "estimator_exception", None)
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
