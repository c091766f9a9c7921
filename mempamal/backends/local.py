"""The local backend: a process pool over the ready tasks, owned by the run that uses it.

Workers are loky processes.  Each run has its own: a second run in the same
process (two notebook cells) starts its own workers, and cancelling, failing
or finishing one run never touches the other's.  A :class:`LocalBackend`
*instance* keeps its workers warm between its runs (they keep each workdir's
data loaded); a backend given by name (``backend="local"``) is made for one
run, so its workers end with it.  For warm workers across runs, pass one
instance and close it (or use it as a context manager)::

    with LocalBackend() as local:
        wf1.run(backend=local, n_jobs=2)
        wf2.run(backend=local, n_jobs=2)   # the same workers, already started

The pool is mempamal's own, not loky's global reusable executor: that one is joblib's
(scikit-learn's ``n_jobs``), and sharing it would make the two restart each
other's workers -- or break joblib outright.  Small tasks are sent in batches sized from measured durations, so
dispatch does not dominate.  Each worker's BLAS/OpenMP pools are limited to
``cpu_count // n_workers`` threads (environment at start-up plus
threadpoolctl), so nested parallelism does not oversubscribe the cores.
Each worker watches its driver and exits within about a second once the
driver is gone (even after SIGKILL): no orphan keeps computing.
"""

import numbers
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, wait

from ..engine.failures import reported
from ..engine.tasks import TaskError, run_task
from .base import Backend, effective_n_jobs, make_progress
from .dispatch_loop import WorkerPool, dispatch
from .._constraints import Interval, validate_params

#: Environment variables read by BLAS/OpenMP runtimes when they start.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
)
#: A batch of small tasks should keep a worker busy about this long.
TARGET_BATCH_SECONDS = 0.05

#: Idle workers exit after this many seconds (restarted on demand).
IDLE_WORKER_TIMEOUT = 300
#: How often a worker checks that its driver is still alive.
DRIVER_CHECK_SECONDS = 0.5

#: Worker-process state, never the driver's: the BLAS/OpenMP limit this worker
#: process has applied (a worker belongs to one pool, so to one run at a
#: time), remembered only so that each batch does not apply it again.
_worker_thread_limit = None


def start_executor(n_workers, env):
    """A new loky pool of ``n_workers`` processes with ``env`` set, whose workers exit with this driver.

    Examples
    --------
    >>> executor = start_executor(2, {"OMP_NUM_THREADS": "1"})
    >>> executor.shutdown(wait=True)
    """
    from joblib.externals.loky import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=n_workers, env=env or None, timeout=IDLE_WORKER_TIMEOUT,
                               initializer=exit_with_driver, initargs=(os.getpid(),))


def _broken(executor):
    return bool(getattr(getattr(executor, "_flags", None), "broken", None))


def _kill(executor):
    """End ``executor``'s workers now, abandoning what they run (outputs are written atomically)."""
    if executor is not None:
        executor.shutdown(wait=False, kill_workers=True)


def exit_with_driver(driver_pid):
    """Make this worker process exit as soon as ``driver_pid``, its parent, is gone.

    Run in each worker at start-up.  A killed driver closes no pipe the idle
    worker would notice (loky's own idle timeout is minutes), so a daemon
    thread polls the parent pid: once the driver is dead the worker is
    re-parented and exits at once, abandoning its task (outputs are written
    atomically, so a half-done task leaves nothing that is trusted).  Not
    ``PR_SET_PDEATHSIG``: it fires when the *thread* that started the worker
    ends, and runs are often driven from short-lived threads.

    Examples
    --------
    >>> from concurrent.futures import ProcessPoolExecutor
    >>> pool = ProcessPoolExecutor(2, initializer=exit_with_driver, initargs=(os.getpid(),))
    """
    def watch():
        while _driver_alive(driver_pid):
            time.sleep(DRIVER_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="mempamal-exit-with-driver", daemon=True).start()


def _driver_alive(driver_pid):
    if os.name == "nt":  # no re-parenting on Windows: ask whether the pid still runs
        try:
            import psutil
        except ImportError:
            return True
        return psutil.pid_exists(driver_pid)
    return os.getppid() == driver_pid  # POSIX: an orphan is re-parented (to init or a subreaper)


def _limit_threads(n_threads):
    global _worker_thread_limit
    if n_threads and _worker_thread_limit != n_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n_threads)
        _worker_thread_limit = n_threads


def run_batch(workdir, task_ids, n_threads=None, allow_version_mismatch=False):
    """Run tasks in a worker; returns ``[(task_id, TaskError or None, seconds)]``.

    A failed task's :class:`~mempamal.TaskError` travels back (it pickles),
    carrying the estimator's exception with ``error_score="raise"``.

    ``allow_version_mismatch``: see :func:`mempamal.run_task`.
    """
    _limit_threads(n_threads)
    outcomes = []
    for task_id in task_ids:
        start = time.perf_counter()
        try:
            run_task(workdir, task_id, allow_version_mismatch=allow_version_mismatch)
            error = None
        except TaskError as exc:
            error = reported(exc)  # carries the estimator's exception with error_score="raise"
        except Exception as exc:  # a bug must not kill the whole batch
            error = TaskError(f"Task {task_id!r} failed: {type(exc).__name__}: {exc}")
        outcomes.append((task_id, error, time.perf_counter() - start))
    return outcomes


class ProcessPool(WorkerPool):
    """The dispatch primitives over one run's loky workers.

    The pool's executor is this run's alone (given warm by its
    :class:`LocalBackend`, or started at the first batch): :meth:`abort`
    kills its workers and nobody else's.  After a run, ``executor`` is
    None when the workers were killed or broke, else the healthy executor,
    which the backend keeps warm or shuts down.

    Examples
    --------
    >>> from mempamal.backends.dispatch_loop import dispatch
    >>> wf = mp.Experiment(estimator, cv=2).build(X, y, workdir="runs/cv2")
    >>> dispatch(wf, wf.pending_ids(), ProcessPool(str(wf.workdir), 1, 1))   # one worker, one BLAS thread
    {}
    """

    target_batch_seconds = TARGET_BATCH_SECONDS

    def __init__(self, workdir, n_workers, n_threads, executor=None):
        self.workdir, self.n_workers, self.n_threads = workdir, n_workers, n_threads
        self.env = {name: str(n_threads) for name in THREAD_VARIABLES} if n_threads else {}
        self.executor = executor
        self.executors = {}  # future -> the executor that runs it (replaced when broken)

    def capacity(self):
        return 2 * self.n_workers

    def submit(self, batch):
        if self.executor is not None and _broken(self.executor):
            _kill(self.executor)
            self.executor = None
        if self.executor is None:
            self.executor = start_executor(self.n_workers, self.env)
        future = self.executor.submit(run_batch, self.workdir, batch, self.n_threads, self.allow_version_mismatch)
        self.executors[future] = self.executor
        return future

    def wait(self, handles, timeout):
        return wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)[0]

    def result(self, handle):
        from joblib.externals.loky.process_executor import BrokenProcessPool

        executor = self.executors.pop(handle)
        try:
            return handle.result()
        except BrokenProcessPool:
            # A worker died (killed, out of memory): the next batch starts a fresh pool.
            if executor is self.executor:
                self.executor = None
            _kill(executor)
            raise

    def worker_died(self, exc):
        from joblib.externals.loky.process_executor import BrokenProcessPool

        return isinstance(exc, BrokenProcessPool)

    def abort(self, handles):
        # Running tasks are simply abandoned with their workers -- this
        # run's own, so no other run loses a worker; their temporary files
        # are never trusted.  No future.cancel() first: loky's shutdown
        # fails every pending future itself, and one already cancelled
        # makes its manager thread die on InvalidStateError (a traceback).
        for future in handles:
            self.executors.pop(future, None)
        _kill(self.executor)
        self.executor = None


class InProcessPool(WorkerPool):
    """Run each batch in this process when it is waited for (``n_jobs=1``: no worker to start).

    Examples
    --------
    >>> from mempamal.backends.dispatch_loop import dispatch
    >>> wf = mp.Experiment(estimator, cv=2).build(X, y, workdir="runs/cv2")
    >>> dispatch(wf, wf.pending_ids(), InProcessPool(str(wf.workdir)))
    {}
    """

    target_batch_seconds = TARGET_BATCH_SECONDS

    def __init__(self, workdir):
        self.workdir = workdir

    def capacity(self):
        return 1

    def submit(self, batch):
        return tuple(batch)

    def wait(self, handles, timeout):
        return handles

    def result(self, handle):
        return run_batch(self.workdir, handle, None, self.allow_version_mismatch)

    def abort(self, handles):
        pass  # nothing runs between two calls of result()


class LocalBackend(Backend):
    """Run tasks in worker processes on this machine (the default backend).

    Each run has workers of its own.  The instance keeps those of a
    finished run warm for its next run (same ``n_jobs``) until
    :meth:`close` or the end of a ``with`` block; idle workers also exit by
    themselves after ``IDLE_WORKER_TIMEOUT`` seconds.  A run of this
    instance that starts while another one is going gets new workers, so two
    runs never share a process.  ``backend="local"`` makes a new instance
    for each run and closes it at the run's end.

    Parameters
    ----------
    threads_per_worker : int, optional
        BLAS/OpenMP threads per worker; default ``cpu_count // n_workers``.
    limit_threads : bool, default True
        False leaves BLAS/OpenMP thread pools alone (each worker may then
        start one thread per core: oversubscription); for comparisons.

    Examples
    --------
    >>> res = wf.run(backend="local", n_jobs=2)
    >>> with LocalBackend() as local:               # one pool, warm from the first run to the second
    ...     res1 = wf.run(backend=local, n_jobs=2)
    ...     res2 = wf.run(backend=local, n_jobs=2)
    """

    supports_stop = True
    supports_observer = True
    # Idle workers exit after IDLE_WORKER_TIMEOUT, and at once with their driver.
    warm_after_estimate = True

    name = "local"

    def __init__(self, threads_per_worker=None, limit_threads=True):
        validate_params({"threads_per_worker": threads_per_worker, "limit_threads": limit_threads},
                        {"threads_per_worker": [Interval(numbers.Integral, 1, None, closed="left"), None],
                         "limit_threads": ["boolean"]}, "the local backend")
        self.threads_per_worker = threads_per_worker
        self.limit_threads = bool(limit_threads)
        # The warm workers: (pool key, executor) of a finished run, or None.
        # Taken by the next run (then it is that run's alone), given back at its end.
        self._warm = None
        self._closed = False
        self._lock = threading.Lock()  # runs of one instance may be driven from several threads

    def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None, observer=None):
        """Run ``task_ids`` in this run's worker pool (in this process when ``n_jobs=1``).

        ``n_jobs=None`` means all cores, like -1.

        Examples
        --------
        >>> failed = LocalBackend().run(wf, wf.pending_ids(), n_jobs=2)
        """
        n_workers = effective_n_jobs(n_jobs)
        key = None  # the pool key of a process pool (none in this process)
        if n_workers == 1:
            pool = InProcessPool(str(workflow.workdir))
        else:
            n_threads = None
            if self.limit_threads:
                n_threads = self.threads_per_worker or max(1, (os.cpu_count() or 1) // n_workers)
            pool = ProcessPool(str(workflow.workdir), n_workers, n_threads)
            key = (n_workers, tuple(sorted(pool.env.items())))
            pool.executor = self._take_warm(key)
        bar = make_progress(len(task_ids), progress)
        try:
            return dispatch(workflow, task_ids, pool, bar, stop, observer)
        finally:
            bar.close()
            if key is not None:
                self._give_back(key, pool.executor)

    def _take_warm(self, key):
        """The warm executor if it fits ``key`` (it is then the caller's alone), else None."""
        with self._lock:
            self._closed = False
            warm, self._warm = self._warm, None
        if warm is not None and warm[0] == key and not _broken(warm[1]):
            return warm[1]
        if warm is not None:
            warm[1].shutdown(wait=False, kill_workers=_broken(warm[1]))
        return None

    def _give_back(self, key, executor):
        """Keep a run's healthy executor warm for the next run, unless closed or another one is kept."""
        if executor is None:
            return
        with self._lock:
            keep = self._warm is None and not self._closed
            if keep:
                self._warm = (key, executor)
        if not keep:
            executor.shutdown(wait=True)

    def close(self):
        """Stop the warm workers kept for this instance's next run.

        A run of this instance still going keeps its workers until it ends,
        then stops them.

        Examples
        --------
        >>> local = LocalBackend()
        >>> local.close()
        """
        with self._lock:
            warm, self._warm, self._closed = self._warm, None, True
        if warm is not None:
            warm[1].shutdown(wait=True)
