"""The one dispatch loop of the batch backends (local, ipyparallel, Dask): joblib's ``Parallel`` is the model.

A batch backend does not write a scheduler: it provides a :class:`WorkerPool`
(submit a batch, wait for any, get a result, abort, recognise a dead worker)
and calls :func:`dispatch`, which keeps the pool busy with ready tasks
(:class:`~mempamal.backends.tracker.DependencyTracker`) in batches sized by
:class:`BatchSizer`, retries the tasks of a dead worker (never blaming
them: a worker killed at its time limit or preempted is not a task that
raised), ends the run with :class:`~mempamal.exceptions.WorkersLost` once no
worker is left, tells the run's
:class:`~mempamal.backends.base.RunObserver` what is executing and aborts
everything in flight on Ctrl-C, an error or the ``stop`` event.
"""

import abc
import time
from collections import deque

from .. import store
from ..exceptions import BLOCKED_MESSAGE, WORKER_LOST_NOT_RUN, WorkersLost
from .base import RunObserver, allow_version_mismatch, check_stop
from .tracker import DependencyTracker

#: The dispatch loop wakes up at least this often to look at the stop event.
POLL_SECONDS = 0.1


class WorkerPool(abc.ABC):
    """Where :func:`~mempamal.backends.dispatch_loop.dispatch` sends batches: the few primitives a backend provides.

    A batch is a list of task ids that one worker runs in order, returning
    ``[(task_id, TaskError (or a message) or None, seconds)]`` as
    :func:`mempamal.backends.local.run_batch` does.  Handles are whatever
    :meth:`submit` returns (hashable: a future, an AsyncResult, ...).

    Examples
    --------
    >>> from mempamal.backends.local import run_batch
    >>> class InProcess(WorkerPool):
    ...     def __init__(self, workdir):
    ...         self.workdir = workdir
    ...     def capacity(self):
    ...         return 1
    ...     def submit(self, batch):
    ...         return tuple(batch)
    ...     def wait(self, handles, timeout):
    ...         return handles
    ...     def result(self, handle):
    ...         return run_batch(self.workdir, handle)
    ...     def abort(self, handles):
    ...         pass
    >>> wf = mp.Experiment(estimator, cv=2).build(X, y, workdir="runs/cv2")
    >>> dispatch(wf, wf.pending_ids(), InProcess(wf.workdir)), wf.status()["done"]
    ({}, 4)
    """

    #: A batch of small tasks keeps a worker busy about this long: the
    #: dispatch round trip is paid once per batch, not once per task.
    target_batch_seconds = 0.05
    #: How many times a task whose worker died while running it is submitted again.
    retries = 1
    #: Set by :func:`dispatch` from the run (``Workflow.run(allow_version_mismatch=True)``):
    #: pools pass it to :func:`~mempamal.backends.local.run_batch`.
    allow_version_mismatch = False
    #: What a worker is called in messages ("worker", "engine", ...).
    worker_name = "worker"
    #: With no live worker (:meth:`live_workers` 0) this long, the run ends
    #: with :class:`~mempamal.exceptions.WorkersLost`.
    lost_after_seconds = 60.0
    #: What the message of :class:`~mempamal.exceptions.WorkersLost` tells the user to do.
    lost_advice = "start workers"

    @abc.abstractmethod
    def capacity(self):
        """How many batches to keep in flight (about two per worker, so none idles).

        Examples
        --------
        >>> from mempamal.backends.local import InProcessPool
        >>> pool = InProcessPool(str(wf.workdir))
        >>> pool.capacity()
        1
        """

    @abc.abstractmethod
    def submit(self, batch):
        """Start running ``batch`` (a list of task ids); return a handle.

        Examples
        --------
        >>> from mempamal.backends.local import InProcessPool
        >>> pool = InProcessPool(str(wf.workdir))
        >>> handle = pool.submit(["fit-o0-i0-c0", "fit-o0-i1-c0"])
        """

    @abc.abstractmethod
    def wait(self, handles, timeout):
        """Wait up to ``timeout`` seconds for any of ``handles``; return those that are done.

        Examples
        --------
        >>> from mempamal.backends.local import InProcessPool
        >>> pool = InProcessPool(str(wf.workdir))
        >>> handle = pool.submit(["fit-o0-i0-c0"])
        >>> pool.wait([handle], timeout=POLL_SECONDS) == [handle]
        True
        """

    @abc.abstractmethod
    def result(self, handle):
        """The outcomes of a done batch; raises when the batch itself did not return.

        Examples
        --------
        >>> from mempamal.backends.local import InProcessPool
        >>> pool = InProcessPool(str(wf.workdir))
        >>> [(task_id, error) for task_id, error, seconds in pool.result(("fit-o0-i0-c0", "fit-o0-i1-c0"))]
        [('fit-o0-i0-c0', None), ('fit-o0-i1-c0', None)]
        """

    @abc.abstractmethod
    def abort(self, handles):
        """Cancel queued batches and stop running ones (Ctrl-C, stop event, error).

        Examples
        --------
        >>> from mempamal.backends.local import InProcessPool
        >>> pool = InProcessPool(str(wf.workdir))
        >>> pool.abort([pool.submit(["fit-o0-i0-c0"])])
        """

    def workers(self):
        """How many batches execute at once (the others wait in the pool's queue).

        :meth:`capacity` keeps about two batches per worker in flight, so by
        default half of it.

        Examples
        --------
        >>> class FourSlots(WorkerPool):
        ...     def capacity(self): return 4
        ...     def submit(self, batch): ...
        ...     def wait(self, handles, timeout): ...
        ...     def result(self, handle): ...
        ...     def abort(self, handles): ...
        >>> FourSlots().workers()
        2
        """
        return max(1, self.capacity() // 2)

    def worker_died(self, exc):
        """Whether ``exc`` (raised by :meth:`result`) means the worker died: its tasks are retried.

        Examples
        --------
        >>> from mempamal.backends.local import InProcessPool
        >>> pool = InProcessPool(str(wf.workdir))
        >>> pool.worker_died(RuntimeError("the task raised"))
        False
        """
        return False

    def live_workers(self):
        """How many workers are alive now, or None when the pool cannot tell (never "all gone").

        Examples
        --------
        >>> from mempamal.backends.local import InProcessPool
        >>> InProcessPool(str(wf.workdir)).live_workers() is None
        True
        """
        return None

    def recover(self, exc):
        """Called after a worker died, before its tasks are resubmitted (e.g. start a new one).

        Examples
        --------
        >>> from mempamal.backends.local import InProcessPool
        >>> pool = InProcessPool(str(wf.workdir))
        >>> pool.recover(RuntimeError("the worker died"))
        """

    def describe(self, exc):
        """``exc`` as it appears in the failure message of the batch's tasks.

        Examples
        --------
        >>> from mempamal.backends.local import InProcessPool
        >>> pool = InProcessPool(str(wf.workdir))
        >>> pool.describe(MemoryError("out of memory"))
        'MemoryError: out of memory'
        """
        return f"{type(exc).__name__}: {exc}"


class BatchSizer:
    """How many ready tasks go in the next batch, from the measured task durations.

    The typical duration is the median of the last few tasks: a worker's
    first task also loads the workdir (and imports scikit-learn on a fresh
    engine), and one such outlier must not keep batches small for long.

    Examples
    --------
    >>> sizer = BatchSizer(target_seconds=0.05)
    >>> sizer.size(n_ready=1000, capacity=4)     # nothing measured yet: one at a time
    1
    >>> for seconds in (0.9, 0.001, 0.001):      # a slow first task, then tiny ones
    ...     sizer.observe(seconds)
    >>> sizer.size(n_ready=1000, capacity=4)     # 50 tasks of 1 ms make 0.05 s
    50
    >>> sizer.size(n_ready=20, capacity=4)       # but every worker gets a share
    5
    """

    #: How many recent durations the median is taken over.
    WINDOW = 25

    def __init__(self, target_seconds):
        self.target_seconds = target_seconds
        self.recent = deque(maxlen=self.WINDOW)

    def observe(self, seconds):
        """Record how long one task took on a worker.

        Examples
        --------
        >>> sizer = BatchSizer(target_seconds=0.05)
        >>> sizer.observe(0.01); list(sizer.recent)
        [0.01]
        """
        self.recent.append(seconds)

    def size(self, n_ready, capacity):
        """Tasks for the next batch, with ``n_ready`` tasks ready and ``capacity`` batches in flight.

        Examples
        --------
        >>> sizer = BatchSizer(target_seconds=0.05)
        >>> sizer.observe(0.01); sizer.size(n_ready=100, capacity=2)      # 5 tasks of 10 ms
        5
        """
        if not self.recent:
            return 1
        typical = sorted(self.recent)[len(self.recent) // 2]
        by_duration = int(self.target_seconds / max(typical, 1e-6))
        # Never so large that some workers idle while others work through long batches.
        fair_share = max(1, n_ready // capacity)
        return max(1, min(by_duration, fair_share))


def dispatch(workflow, task_ids, pool, bar=None, stop=None, observer=None):
    """Run ``task_ids`` on ``pool`` in dependency order; return ``{task_id: failure}`` (message or TaskError).

    The one loop behind the batch backends (joblib's ``Parallel`` loop is the
    model): submit ready tasks in batches sized by :class:`BatchSizer`, wait
    for any batch, record its outcomes, resubmit the tasks of a dead worker
    (:class:`LostWorkers`: ``pool.retries`` times, never reported as failed),
    end the run with :class:`~mempamal.exceptions.WorkersLost` once no worker
    is left, and on Ctrl-C, an error or ``stop`` abort
    everything in flight and re-raise (:class:`~mempamal.backends.base.RunCancelled` for ``stop``).
    Finished outputs are complete files whatever happens to the rest.
    ``observer`` (the run's :class:`~mempamal.backends.base.RunObserver`)
    hears when a batch starts and finishes executing.

    Examples
    --------
    >>> from mempamal.backends.local import InProcessPool
    >>> wf = mp.Experiment(estimator, cv=2).build(X, y, workdir="runs/cv2")
    >>> dispatch(wf, wf.pending_ids(), InProcessPool(str(wf.workdir)), bar=None, stop=None)
    {}
    """
    tracker = DependencyTracker(workflow, task_ids)
    sizer = BatchSizer(pool.target_batch_seconds)
    pool.allow_version_mismatch = allow_version_mismatch(workflow)
    observer = RunObserver() if observer is None else observer
    lost = LostWorkers(pool, getattr(workflow, "workdir", None), len(task_ids))
    failed, in_flight, executing = {}, {}, set()
    try:
        while tracker.ready or in_flight:
            check_stop(stop)
            capacity = pool.capacity()
            while tracker.ready and len(in_flight) < capacity:
                size = sizer.size(len(tracker.ready), capacity)
                batch = [tracker.ready.popleft() for _ in range(min(size, len(tracker.ready)))]
                in_flight[pool.submit(batch)] = batch
            # Pools start batches in submission order: the oldest ones in
            # flight are those on a worker, the rest wait in the pool's queue.
            for handle in list(in_flight)[:pool.workers()]:
                if handle not in executing:
                    executing.add(handle)
                    observer.started(in_flight[handle])
            for handle in pool.wait(list(in_flight), POLL_SECONDS):
                batch = in_flight.pop(handle)
                try:
                    outcomes = pool.result(handle)
                except Exception as exc:  # the batch did not return: infrastructure, not the tasks
                    lost.batch_lost(exc, batch, handle in executing, tracker, failed, bar)
                    continue
                finally:  # after result(): an in-process pool runs the batch right there
                    if handle in executing:
                        executing.discard(handle)
                        observer.finished(batch)
                for task_id, error, seconds in outcomes:
                    sizer.observe(seconds)
                    tracker.record(task_id, error, failed, bar)
            lost.check_workers_left(tracker, failed, waiting=bool(in_flight))
    except BaseException:  # Ctrl-C, stop, every worker gone: nothing left running behind us
        pool.abort(list(in_flight))
        raise
    finally:
        for handle in executing & set(in_flight):
            observer.finished(in_flight[handle])
    return failed


class LostWorkers:
    """What :func:`dispatch` does when workers die: resubmit their tasks, end the run once none is left.

    A worker that dies (killed at its time limit, preempted, out of memory,
    lost with its node) did not fail its tasks.  A lost batch's tasks that
    wrote their output before the death count as done; the one the worker was
    running is resubmitted ``pool.retries`` times, then reported
    :data:`~mempamal.exceptions.WORKER_LOST_NOT_RUN` (pending, not failed);
    the tasks queued behind it are resubmitted freely.  A batch that was only
    waiting on the dead worker counts half a death for its first task, so
    that a worker dying again and again cannot loop forever.  With no live
    worker for ``pool.lost_after_seconds`` and tasks left, the run ends with
    :class:`~mempamal.exceptions.WorkersLost`.

    Examples
    --------
    >>> from mempamal.backends.local import InProcessPool
    >>> lost = LostWorkers(InProcessPool(str(wf.workdir)), wf.workdir, n_tasks=4)
    >>> tracker = DependencyTracker(wf, wf.pending_ids())
    >>> failed = {}
    >>> lost.batch_lost(RuntimeError("no such module"), ["score-o0"], True, tracker, failed, None)
    >>> failed["score-o0"]
    "Task 'score-o0' raised on its worker: RuntimeError: no such module"
    """

    def __init__(self, pool, workdir, n_tasks):
        self.pool, self.workdir, self.n_tasks = pool, workdir, n_tasks
        self.deaths = {}  # task id -> [deaths while running it, deaths while it waited on that worker]
        self.none_since = None

    def batch_lost(self, exc, batch, was_running, tracker, failed, bar):
        """``batch`` did not return (``pool.result`` raised ``exc``): report it, or resubmit what is left.

        ``was_running``: the batch was executing on its worker (not only queued there).

        Examples
        --------
        >>> from mempamal.backends.local import InProcessPool
        >>> class Dying(InProcessPool):
        ...     def worker_died(self, exc):
        ...         return True
        >>> wf = mp.Experiment(estimator, cv=2).build(X, y, workdir="runs/cv2")
        >>> tracker, failed = DependencyTracker(wf, wf.pending_ids()), {}
        >>> lost = LostWorkers(Dying(str(wf.workdir)), wf.workdir, n_tasks=4)
        >>> task_id = tracker.ready.popleft()
        >>> lost.batch_lost(MemoryError("killed"), [task_id], True, tracker, failed, None)
        >>> tracker.ready[0] == task_id, failed     # resubmitted: retries=1
        (True, {})
        >>> lost.batch_lost(MemoryError("killed"), [tracker.ready.popleft()], True, tracker, failed, None)
        >>> failed[task_id]
        "Task 'score-o0' not run to the end (worker lost): its worker died 2 time(s) while it ran ..."
        """
        pool = self.pool
        if not pool.worker_died(exc):
            for task_id in batch:
                tracker.record(task_id, f"Task {task_id!r} raised on its {pool.worker_name}: {pool.describe(exc)}",
                               failed, bar)
            return
        # The worker ran the batch in order: the tasks before the one it was
        # running are done (their outputs are complete files), the ones after
        # it only waited behind it.
        written = self._written(batch)
        for task_id in written:
            tracker.record(task_id, None, failed, bar)
        todo = [task_id for task_id in batch if task_id not in written]
        if todo:
            first = todo[0]
            deaths = self.deaths.setdefault(first, [0, 0])
            deaths[0 if was_running else 1] += 1
            if 2 * deaths[0] + deaths[1] > 2 * pool.retries + 1:
                tracker.record(first, self._message(first, deaths, exc), failed, bar)
                todo = todo[1:]
        tracker.ready.extendleft(reversed(todo))  # first again, in their order
        pool.recover(exc)

    def _written(self, batch):
        if self.workdir is None:
            return []
        return [task_id for task_id in batch if store.output_path(self.workdir, task_id).exists()]

    def _message(self, task_id, deaths, exc):
        pool = self.pool
        return (f"Task {task_id!r} {WORKER_LOST_NOT_RUN}: its {pool.worker_name} died {sum(deaths)} time(s) while it "
                f"ran or waited there ({pool.describe(exc)}); retries={pool.retries} resubmission(s) allowed. "
                f"The task did not raise: it stays pending, run again to resume.")

    def check_workers_left(self, tracker, failed, waiting):
        """Raise :class:`~mempamal.exceptions.WorkersLost` when tasks wait and no worker was alive for a while.

        Examples
        --------
        >>> from mempamal.backends.local import InProcessPool
        >>> class Gone(InProcessPool):
        ...     lost_after_seconds = 0
        ...     def live_workers(self):
        ...         return 0
        >>> wf = mp.Experiment(estimator, cv=2).build(X, y, workdir="runs/cv2")
        >>> tracker = DependencyTracker(wf, wf.pending_ids())
        >>> LostWorkers(Gone(str(wf.workdir)), wf.workdir, n_tasks=3).check_workers_left(tracker, {}, waiting=True)
        Traceback (most recent call last):
        ...
        mempamal.exceptions.WorkersLost: Every worker of the run is gone (none for 0 s): 3 task(s) not run. ...
        """
        alive = self.pool.live_workers() if waiting else None
        if alive is None or alive > 0:
            self.none_since = None
            return
        now = time.monotonic()
        if self.none_since is None:
            self.none_since = now
        if now - self.none_since < self.pool.lost_after_seconds:
            return
        pool = self.pool
        not_run = self.n_tasks - tracker.n_finished - len(failed)
        # str(): a failure message may be a TaskFailure carrying the estimator's exception.
        raised = sum(1 for message in map(str, failed.values()) if not message.startswith(BLOCKED_MESSAGE)
                     and WORKER_LOST_NOT_RUN not in message)
        before = f" {raised} task(s) had failed before (WorkersLost.failed)." if raised else ""
        raise WorkersLost(
            f"Every {pool.worker_name} of the run is gone (none for {now - self.none_since:.0f} s): "
            f"{not_run} task(s) not run. They did not fail and finished outputs are kept: {pool.lost_advice} "
            f"and run again to resume.{before}", failed, not_run)
