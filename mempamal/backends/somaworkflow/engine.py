"""soma-workflow's engine inside this process: quiet, interruptible, fast, and leaving the process as it was.

The soma-workflow run (:mod:`mempamal.backends.somaworkflow.backend`) starts a
``WorkflowController`` whose engine (and, in light mode, scheduler) are
threads of this process.  These are the settings around it: no chatter on
stdout (:func:`quiet`), Ctrl-C taken between polls only (:class:`Interrupts`),
a fast engine tick and the process-wide settings restored
(:func:`engine_settings`, :func:`temporary_directory`), and the threads
stopped at the end (:func:`shutdown`).
"""

import contextlib
import io
import os
import signal
import tempfile
import threading

from ..base import check_stop
from .jobs import import_soma

#: Engine loop period (seconds) while we run; soma-workflow's 1 s default
#: would add up to a second of latency at every level of the graph.
ENGINE_TICK = 0.05


@contextlib.contextmanager
def quiet():
    """Silence stdout in the block: soma-workflow prints start-up and shut-down chatter there.

    Examples
    --------
    >>> with quiet():
    ...     print("soma-workflow's chatter")
    """
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class Interrupts:
    """Ctrl-C only sets a flag while soma-workflow runs; ``check()`` raises it.

    A KeyboardInterrupt landing inside one of soma-workflow's sqlite calls
    leaves its database locked: the clean-up (``stop_workflow``) then fails
    and the running jobs are orphaned.  So interrupts are taken between polls,
    and a second Ctrl-C cannot cut the clean-up short.

    Examples
    --------
    >>> with Interrupts(stop=None) as interrupts:   # Ctrl-C in the block only sets a flag
    ...     interrupts.check()                      # nothing received: returns
    """

    def __init__(self, stop=None):
        self.received = False
        self.previous = None
        self.stop = stop  # Workflow.submit's event: a cancel from another thread

    def __enter__(self):
        # Signal handlers can only be set from the main thread (where Ctrl-C lands).
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not None:
            self.previous = signal.signal(signal.SIGINT, self._record)
        return self

    def _record(self, signum, frame):
        self.received = True

    def check(self):
        """Raise KeyboardInterrupt after a Ctrl-C, :class:`~mempamal.backends.base.RunCancelled` once ``stop`` is set.

        Examples
        --------
        >>> import threading
        >>> stop = threading.Event(); stop.set()
        >>> Interrupts(stop).check()                  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mempamal.exceptions.RunCancelled: the run was cancelled
        """
        if self.received:
            raise KeyboardInterrupt
        check_stop(self.stop)

    def __exit__(self, exc_type, exc, traceback):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if exc_type is None and self.received:
            raise KeyboardInterrupt
        return False


@contextlib.contextmanager
def engine_settings():
    """A fast engine tick while we run; process-wide settings restored afterwards.

    The tick is read when the controller starts; isolated light mode sets
    ``$SOMA_WORKFLOW_CONFIG`` for the whole process.

    Examples
    --------
    >>> with engine_settings():                                     # needs a soma-workflow resource  # doctest: +SKIP
    ...     controller = client.WorkflowController(isolated_light_mode=str(state))
    """
    _, _, engine = import_soma()
    saved = engine.refreshment_interval, os.environ.get("SOMA_WORKFLOW_CONFIG")
    engine.refreshment_interval = min(engine.refreshment_interval, ENGINE_TICK)
    try:
        yield
    finally:
        engine.refreshment_interval = saved[0]
        if saved[1] is None:
            os.environ.pop("SOMA_WORKFLOW_CONFIG", None)
        else:
            os.environ["SOMA_WORKFLOW_CONFIG"] = saved[1]


@contextlib.contextmanager
def temporary_directory(folder):
    """Light mode makes ``<tempdir>/soma-workflow-shtmp`` at start-up: keep it in ``folder``.

    Examples
    --------
    >>> import tempfile
    >>> with temporary_directory("runs/iris/soma-workflow"):
    ...     tempfile.gettempdir()
    'runs/iris/soma-workflow'
    """
    saved = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = saved


def shutdown(controller):
    """Stop the engine thread and, in light mode, the scheduler threads.

    Examples
    --------
    >>> shutdown(controller)                                        # needs a soma-workflow resource  # doctest: +SKIP
    """
    engine_loop = getattr(getattr(controller, "_engine_proxy", None), "engine_loop", None)
    scheduler = getattr(engine_loop, "_scheduler", None)
    controller.stop_engine()
    if hasattr(scheduler, "end_scheduler_thread"):
        # Daemon threads that would otherwise poll until interpreter exit.
        scheduler.end_scheduler_thread()
    # WorkflowController.__del__ prints and stops the engine again; after a
    # Ctrl-C the traceback keeps the controller alive, so it would print later.
    controller.__class__ = _stopped_class(type(controller))


def _stopped_class(cls):
    """``cls`` with a ``__del__`` that does nothing.

    A new class each time rather than a cache shared by the runs of a
    process: one small class per run, freed with its controller.
    """
    return type(f"Stopped{cls.__name__}", (cls,), {"__del__": lambda self: None})
