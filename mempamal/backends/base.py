"""Backend base class and registry (joblib's ``register_parallel_backend`` is the model).

A backend receives the workflow and the ids still to run and runs them in
dependency order.  It returns ``{task_id: error message}`` for the tasks that
failed (an empty dict when all went well); tasks depending on a failed task
are not run.

A run may be driven from a background thread (``Workflow.submit``): it then
gets a ``stop`` :class:`threading.Event`; once it is set the backend stops
submitting, aborts what it started (finished outputs stay) and raises
:class:`RunCancelled`.

Backends that run batches of tasks on workers (local, ipyparallel, dask)
share one dispatch loop, :func:`dispatch`, as joblib's backends share
``Parallel``'s: they only provide a :class:`WorkerPool` (submit a batch,
wait for any, get a result, abort, recognise a dead worker).

Adding one is one class and one registry line::

    class MyBackend(mp.Backend):
        def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None):
            ...

    mp.register_backend("mine", MyBackend)
"""

import abc
import contextlib
import importlib
import os
from collections import deque

from ..tasktable import TaskTable

_REGISTRY = {
    # Built-in backends are imported on first use so that `import mempamal`
    # never imports ipyparallel or soma-workflow.
    "local": "mempamal.backends.local:LocalBackend",
    "ipyparallel": "mempamal.backends.ipyparallel:IPyParallelBackend",
    "soma-workflow": "mempamal.backends.somaworkflow:SomaWorkflowBackend",
    "dask": "mempamal.backends.dask:DaskBackend",
    "slurm": "mempamal.backends.slurm:SlurmBackend",
}


class RunCancelled(Exception):
    """A run was stopped through its ``stop`` event; finished outputs are kept.

    Examples
    --------
    >>> import threading
    >>> stop = threading.Event(); stop.set()
    >>> try:
    ...     check_stop(stop)
    ... except RunCancelled as exc:
    ...     print(exc)
    the run was cancelled
    """


def check_stop(stop):
    """Raise :class:`RunCancelled` if the ``stop`` event (or None) is set.

    Examples
    --------
    >>> check_stop(None)
    """
    if stop is not None and stop.is_set():
        raise RunCancelled("the run was cancelled")


class Backend(abc.ABC):
    """Runs tasks of a :class:`mempamal.Workflow`; subclasses implement :meth:`~mempamal.Backend.run`.

    Keyword arguments given to ``Workflow.run`` beyond ``backend``, ``n_jobs``
    and ``progress`` reach the backend's constructor.

    Examples
    --------
    >>> class InProcess(Backend):
    ...     name = "in-process"
    ...     def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None):
    ...         from mempamal.backends.local import run_batch
    ...         return {i: e for i, e, _ in run_batch(workflow.workdir, task_ids) if e}
    >>> failed = InProcess().run(wf, wf.pending_ids())          # doctest: +SKIP
    """

    name = None

    def __init__(self, **options):
        if options:
            raise TypeError(f"The {self.name!r} backend takes no options; got {sorted(options)}.")

    @abc.abstractmethod
    def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None):
        """Run ``task_ids`` in dependency order; return ``{task_id: message}`` of the failures.

        ``stop`` is None or a :class:`threading.Event`: once set, stop
        submitting, abort what is queued or running, and raise
        :class:`RunCancelled`.

        Examples
        --------
        A backend that runs every task in this process, one after the other
        (the ``Backend`` example above); ``Workflow.run`` calls it with the
        pending tasks:

        >>> failed = InProcess().run(wf, wf.pending_ids(), progress=False)    # doctest: +SKIP
        >>> failed                                                           # doctest: +SKIP
        {}
        """


def register_backend(name, backend):
    """Make ``backend`` (a Backend subclass or ``"module:Class"``) usable as ``backend=name``.

    Examples
    --------
    >>> from mempamal.backends.local import LocalBackend
    >>> register_backend("my-local", LocalBackend)
    >>> "my-local" in available_backends()
    True
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"The 'name' of a backend must be a non-empty string; got {name!r}.")
    _REGISTRY[name] = backend


def available_backends():
    """Names of the registered backends.

    Examples
    --------
    >>> {"local", "ipyparallel", "slurm"} <= set(available_backends())
    True
    """
    return sorted(_REGISTRY)


def get_backend(backend, **options):
    """An instance of the backend named ``backend`` (or ``backend`` itself).

    Examples
    --------
    >>> type(get_backend("local")).__name__
    'LocalBackend'
    >>> get_backend("nowhere")                                     # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: The 'backend' parameter must be one of [...] or a Backend instance; got 'nowhere' instead.
    """
    if isinstance(backend, Backend):
        if options:
            raise TypeError("Options cannot be given with a Backend instance; pass them to its constructor.")
        return backend
    if backend not in _REGISTRY:
        raise ValueError(
            f"The 'backend' parameter must be one of {available_backends()} or a Backend "
            f"instance; got {backend!r} instead."
        )
    entry = _REGISTRY[backend]
    if isinstance(entry, str):
        module_name, class_name = entry.split(":")
        entry = getattr(importlib.import_module(module_name), class_name)
    return entry(**options)


def effective_n_jobs(n_jobs):
    """Number of workers for ``n_jobs``: None or -1 = all cores, -2 = all but one, ...

    mempamal exists to run in parallel, so ``n_jobs=None`` (the default of
    every ``run``) means all cores, like -1 -- unlike scikit-learn, where
    None means 1.  Backends that connect to running workers (a user's
    ipyparallel or Dask cluster) ignore ``n_jobs`` and use all of them.

    Examples
    --------
    >>> effective_n_jobs(2)
    2
    >>> effective_n_jobs(None) == effective_n_jobs(-1) == (os.cpu_count() or 1)
    True
    """
    cpus = os.cpu_count() or 1
    if n_jobs is None:
        return cpus
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs == 0:
        raise ValueError(f"The 'n_jobs' parameter must be a non-zero int or None; got {n_jobs!r} instead.")
    if n_jobs < 0:
        return max(1, cpus + 1 + n_jobs)
    return n_jobs


class DependencyTracker:
    """Which tasks are ready, which are blocked: the scheduler every backend shares.

    Examples
    --------
    >>> tracker = DependencyTracker(workflow, workflow.pending_ids())   # doctest: +SKIP
    >>> task_id = tracker.ready.popleft()                               # doctest: +SKIP
    >>> tracker.record(task_id, None, failed={}, bar=None)              # doctest: +SKIP
    """

    def __init__(self, workflow, task_ids):
        table = getattr(workflow, "table", None)
        self._positions = None
        if isinstance(table, TaskTable):
            self._init_positions(table, task_ids)
            return
        wanted = set(task_ids)
        by_id = {task.id: task for task in workflow.tasks}
        self.waiting_on = {i: {d for d in by_id[i].deps if d in wanted} for i in task_ids}
        self.dependents = {}
        for task_id, deps in self.waiting_on.items():
            for dep in deps:
                self.dependents.setdefault(dep, []).append(task_id)
        self.ready = deque(i for i in task_ids if not self.waiting_on[i])

    def _init_positions(self, table, task_ids):
        """The same decisions on integers: a workdir's table gives each task's one dependent.

        For a million tasks, no record and no set per task: the position of
        each id, its dependent's position, and per position the number of
        wanted dependencies not finished yet.
        """
        self._ids = list(table.ids())
        self._positions = {task_id: position for position, task_id in enumerate(self._ids)}
        self._dependent = table.dependent_positions()
        n = len(self._ids)
        self._wanted, self._finished = bytearray(n), bytearray(n)
        positions = [self._positions[task_id] for task_id in task_ids]
        for position in positions:
            self._wanted[position] = 1
        self._waiting = [0] * n
        wanted, dependent, waiting = self._wanted, self._dependent, self._waiting
        for position in positions:
            parent = dependent[position]
            if parent >= 0 and wanted[parent]:
                waiting[parent] += 1
        self.ready = deque(task_id for task_id, position in zip(task_ids, positions) if not waiting[position])

    def finished(self, task_id):
        """Mark ``task_id`` done: a dependent whose last dependency it was becomes ready.

        Examples
        --------
        >>> from types import SimpleNamespace as Record
        >>> wf = Record(tasks=[Record(id="fit", deps=[]), Record(id="select", deps=["fit"])])
        >>> tracker = DependencyTracker(wf, ["fit", "select"])
        >>> tracker.ready.popleft()
        'fit'
        >>> tracker.finished("fit"); list(tracker.ready)
        ['select']
        """
        if self._positions is not None:
            position = self._positions.get(task_id)
            if position is None or not self._wanted[position]:
                return
            parent = self._dependent[position]
            if parent < 0 or not self._wanted[parent]:
                return
            if not self._finished[position]:
                self._finished[position] = 1
                self._waiting[parent] -= 1
            if not self._waiting[parent]:
                self.ready.appendleft(self._ids[parent])  # as below
            return
        for child in self.dependents.get(task_id, ()):
            self.waiting_on[child].discard(task_id)
            if not self.waiting_on[child]:
                # Ahead of the queue: a select runs as soon as its fits are done,
                # so outer folds finish one after the other, not all at the end.
                self.ready.appendleft(child)

    def blocked_by(self, task_id):
        """Every task that (transitively) depends on ``task_id``.

        Examples
        --------
        >>> tracker.blocked_by("fit-o0-i0-c0")                          # doctest: +SKIP
        {'select-o0', 'final'}
        """
        if self._positions is not None:
            blocked, position = set(), self._positions.get(task_id)
            if position is None or not self._wanted[position]:
                return blocked
            position = self._dependent[position]
            while position >= 0 and self._wanted[position]:
                blocked.add(self._ids[position])
                position = self._dependent[position]
            return blocked
        blocked, stack = set(), [task_id]
        while stack:
            for child in self.dependents.get(stack.pop(), ()):
                if child not in blocked:
                    blocked.add(child)
                    stack.append(child)
        return blocked

    def record(self, task_id, error, failed, bar=None):
        """Mark ``task_id`` finished (``error`` None) or failed, blocking its dependents.

        Examples
        --------
        >>> failed = {}
        >>> tracker.record("fit-o0-i0-c0", "ValueError: bad", failed)   # doctest: +SKIP
        >>> failed["select-o0"]                                         # doctest: +SKIP
        "not run: depends on failed task 'fit-o0-i0-c0'"
        """
        if error is None:
            self.finished(task_id)
            if bar is not None:
                bar.update(1)
            return
        failed[task_id] = error
        blocked = self.blocked_by(task_id)
        for child in blocked:
            failed.setdefault(child, f"{BLOCKED_MESSAGE} {task_id!r}")
        if bar is not None:
            bar.update(1 + len(blocked))


#: How a backend reports a task it did not run because a dependency failed
#: ("blocked by a failure" in ``mempamal status`` and ``WorkflowError``).
BLOCKED_MESSAGE = "not run: depends on failed task"


def make_progress(total, progress, desc="mempamal"):
    """A tqdm bar (widget in notebooks, text in terminals) or a silent stand-in.

    Examples
    --------
    >>> bar = make_progress(10, progress=False)      # silent: nothing is printed
    >>> bar.disable, bar.total
    (True, 10)
    >>> bar.close()
    """
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="task", disable=not progress, dynamic_ncols=True)


# ------------------------------------------------------------ in flight
#: Workdir -> the batches (lists of task ids) whose tasks are executing now,
#: published by the loop driving a run in this process (dispatch, the job
#: backends' polls) and read by ``Run.status()``.
_EXECUTING = {}


def publish_executing(workdir, batches):
    """Say which batches of ``workdir``'s run are executing now (None: the run is over).

    A batch runs its tasks one after the other, so each counts one running
    task: its first one without an output.  The list is replaced, never
    mutated, so readers in other threads see one consistent snapshot.

    Examples
    --------
    >>> publish_executing("runs/iris", [["fit-o0-i0-c0", "fit-o0-i1-c0"]])
    >>> executing_task_ids("runs/iris", done=set())
    {'fit-o0-i0-c0'}
    >>> publish_executing("runs/iris", None)
    >>> executing_task_ids("runs/iris", done=set()) is None
    True
    """
    key = os.path.abspath(workdir)
    if batches is None:
        _EXECUTING.pop(key, None)
    else:
        _EXECUTING[key] = [list(batch) for batch in batches]


def published_batches(workdir):
    """What :func:`publish_executing` last said for ``workdir`` (None: nothing published).

    Examples
    --------
    >>> published_batches("runs/nothing-runs-here") is None
    True
    """
    return _EXECUTING.get(os.path.abspath(workdir))


def executing_task_ids(workdir, done):
    """Ids of the tasks executing now in a run driven from this process, or None when none is.

    ``done`` are the finished ids (a batch's finished tasks are skipped).

    Examples
    --------
    >>> executing_task_ids("runs/nothing-runs-here", done=set()) is None
    True
    """
    batches = published_batches(workdir)
    if batches is None:
        return None
    running = set()
    for batch in batches:
        running.update(next(([t] for t in batch if t not in done), []))
    return running


#: The dispatch loop wakes up at least this often to look at the stop event.
POLL_SECONDS = 0.1


class WorkerPool(abc.ABC):
    """Where :func:`~mempamal.backends.base.dispatch` sends batches of tasks: the few primitives a backend provides.

    A batch is a list of task ids that one worker runs in order, returning
    ``[(task_id, error message or None, seconds)]`` as
    :func:`mempamal.backends.local.run_batch` does.  Handles are whatever
    :meth:`submit` returns (hashable: a future, an AsyncResult, ...).

    Examples
    --------
    >>> class InProcess(WorkerPool):
    ...     def capacity(self):
    ...         return 1
    ...     def submit(self, batch):
    ...         return tuple(batch)
    ...     def wait(self, handles, timeout):
    ...         return handles
    ...     def result(self, handle):
    ...         from mempamal.backends.local import run_batch
    ...         return run_batch(workdir, handle)
    ...     def abort(self, handles):
    ...         pass
    >>> failed = dispatch(wf, wf.pending_ids(), InProcess())      # doctest: +SKIP
    """

    #: A batch of small tasks keeps a worker busy about this long: the
    #: dispatch round trip is paid once per batch, not once per task.
    target_batch_seconds = 0.05
    #: How many times a task whose worker died is submitted again.
    retries = 1
    #: What a worker is called in messages ("worker", "engine", ...).
    worker_name = "worker"

    @abc.abstractmethod
    def capacity(self):
        """How many batches to keep in flight (about two per worker, so none idles).

        Examples
        --------
        >>> InProcess().capacity()                                      # doctest: +SKIP
        1
        """

    @abc.abstractmethod
    def submit(self, batch):
        """Start running ``batch`` (a list of task ids); return a handle.

        Examples
        --------
        >>> handle = pool.submit(["fit-o0-i0-c0", "fit-o0-i1-c0"])       # doctest: +SKIP
        """

    @abc.abstractmethod
    def wait(self, handles, timeout):
        """Wait up to ``timeout`` seconds for any of ``handles``; return those that are done.

        Examples
        --------
        >>> done = pool.wait([handle], timeout=POLL_SECONDS)              # doctest: +SKIP
        """

    @abc.abstractmethod
    def result(self, handle):
        """The outcomes of a done batch; raises when the batch itself did not return.

        Examples
        --------
        >>> pool.result(handle)                                          # doctest: +SKIP
        [('fit-o0-i0-c0', None, 0.012), ('fit-o0-i1-c0', None, 0.011)]
        """

    @abc.abstractmethod
    def abort(self, handles):
        """Cancel queued batches and stop running ones (Ctrl-C, stop event, error).

        Examples
        --------
        >>> pool.abort([handle])                                         # doctest: +SKIP
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
        >>> pool.worker_died(RuntimeError("the task raised"))           # doctest: +SKIP
        False
        """
        return False

    def recover(self, exc):
        """Called after a worker died, before its tasks are resubmitted (e.g. start a new one).

        Examples
        --------
        >>> pool.recover(exc)                                            # doctest: +SKIP
        """

    def describe(self, exc):
        """``exc`` as it appears in the failure message of the batch's tasks.

        Examples
        --------
        >>> InProcess().describe(MemoryError("out of memory"))           # doctest: +SKIP
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


def dispatch(workflow, task_ids, pool, bar=None, stop=None):
    """Run ``task_ids`` on ``pool`` in dependency order; return ``{task_id: message}`` of the failures.

    The one loop behind the batch backends (joblib's ``Parallel`` loop is the
    model): submit ready tasks in batches sized by :class:`BatchSizer`, wait
    for any batch, record its outcomes, resubmit the tasks of a dead worker
    (``pool.retries`` times), and on Ctrl-C, an error or ``stop`` abort
    everything in flight and re-raise (:class:`RunCancelled` for ``stop``).
    Finished outputs are complete files whatever happens to the rest.

    Examples
    --------
    >>> failed = dispatch(wf, wf.pending_ids(), pool, bar=None, stop=None)   # doctest: +SKIP
    """
    tracker = DependencyTracker(workflow, task_ids)
    sizer = BatchSizer(pool.target_batch_seconds)
    failed, in_flight, deaths = {}, {}, {}
    published_before = published_batches(workflow.workdir)  # a Run's "nothing yet": restored at the end
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
            publish_executing(workflow.workdir, list(in_flight.values())[:pool.workers()])
            for handle in pool.wait(list(in_flight), POLL_SECONDS):
                batch = in_flight.pop(handle)
                try:
                    outcomes = pool.result(handle)
                except Exception as exc:  # the batch did not return: infrastructure, not the tasks
                    _batch_lost(pool, exc, batch, tracker, failed, deaths, bar)
                    continue
                for task_id, error, seconds in outcomes:
                    sizer.observe(seconds)
                    tracker.record(task_id, error, failed, bar)
    except BaseException:  # Ctrl-C, stop, every worker gone: nothing left running behind us
        pool.abort(list(in_flight))
        raise
    finally:
        publish_executing(workflow.workdir, published_before and [])
    return failed


def _batch_lost(pool, exc, batch, tracker, failed, deaths, bar):
    """Resubmit the tasks of a dead worker (up to ``pool.retries`` times); report the rest."""
    if not pool.worker_died(exc):
        for task_id in batch:
            tracker.record(task_id, f"Task {task_id!r} raised on its {pool.worker_name}: {pool.describe(exc)}",
                           failed, bar)
        return
    for task_id in batch:
        deaths[task_id] = deaths.get(task_id, 0) + 1
        if deaths[task_id] > pool.retries:
            tracker.record(task_id, f"Task {task_id!r}: its {pool.worker_name} died {deaths[task_id]} "
                                    f"time(s): {pool.describe(exc)}", failed, bar)
        else:
            tracker.ready.appendleft(task_id)
    pool.recover(exc)


@contextlib.contextmanager
def temporary_environment(**values):
    """Set ``values`` in ``os.environ`` for the block; afterwards it is exactly as before.

    The whole environment is restored, not only ``values``: libraries started
    inside the block (e.g. distributed's nannies, which write
    ``OMP_NUM_THREADS=1``) must not leave their settings to later processes.

    Examples
    --------
    >>> import os
    >>> with temporary_environment(MEMPAMAL_EXAMPLE="1"):
    ...     os.environ["MEMPAMAL_EXAMPLE"]
    '1'
    >>> "MEMPAMAL_EXAMPLE" in os.environ
    False
    """
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        for name, value in saved.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
