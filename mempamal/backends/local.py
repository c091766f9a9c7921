"""The local backend: a reusable process pool over the ready tasks.

Workers are loky processes: started once, reused across runs of the same
session, and they keep each workdir's data loaded between tasks.  The pool is
mempamal's own, not loky's global reusable executor: that one is joblib's
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

from ..engine.tasks import TaskError, failure_message, run_task
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

_worker_thread_limit = None
_pool = {"key": None, "executor": None}


def _get_executor(n_workers, env):
    """The session's worker pool, (re)started when its size or environment changes."""
    from joblib.externals.loky import ProcessPoolExecutor

    key = (n_workers, tuple(sorted(env.items())))
    executor = _pool["executor"]
    if executor is not None and getattr(getattr(executor, "_flags", None), "broken", None):
        _discard_executor(executor)
    elif executor is not None and _pool["key"] != key:
        shutdown_pool()
    if _pool["executor"] is None:
        executor = ProcessPoolExecutor(max_workers=n_workers, env=env or None, timeout=IDLE_WORKER_TIMEOUT,
                                       initializer=exit_with_driver, initargs=(os.getpid(),))
        _pool.update(key=key, executor=executor)
    return _pool["executor"]


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


def _discard_executor(executor):
    """Kill a broken or interrupted pool; the next run starts a new one."""
    if executor is None:
        return
    if _pool["executor"] is executor:
        _pool.update(key=None, executor=None)
    executor.shutdown(wait=False, kill_workers=True)


def shutdown_pool():
    """Stop the worker processes kept for later runs (they also exit when idle).

    Examples
    --------
    >>> from mempamal.backends.local import shutdown_pool
    >>> shutdown_pool()
    """
    executor = _pool["executor"]
    _pool.update(key=None, executor=None)
    if executor is not None:
        executor.shutdown(wait=True)


def _limit_threads(n_threads):
    global _worker_thread_limit
    if n_threads and _worker_thread_limit != n_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n_threads)
        _worker_thread_limit = n_threads


def run_batch(workdir, task_ids, n_threads=None):
    """Run tasks in a worker; returns ``[(task_id, error or None, seconds)]``."""
    _limit_threads(n_threads)
    outcomes = []
    for task_id in task_ids:
        start = time.perf_counter()
        try:
            run_task(workdir, task_id)
            error = None
        except TaskError as exc:
            error = failure_message(exc)  # carries the estimator's exception with error_score="raise"
        except Exception as exc:  # a bug must not kill the whole batch
            error = f"Task {task_id!r} failed: {type(exc).__name__}: {exc}"
        outcomes.append((task_id, error, time.perf_counter() - start))
    return outcomes


class ProcessPool(WorkerPool):
    """The dispatch primitives over the session's loky worker pool.

    Examples
    --------
    >>> from mempamal.backends.dispatch_loop import dispatch
    >>> wf = mp.Experiment(estimator, cv=2).build(X, y, workdir="runs/cv2")
    >>> dispatch(wf, wf.pending_ids(), ProcessPool(str(wf.workdir), 1, 1))   # one worker, one BLAS thread
    {}
    """

    target_batch_seconds = TARGET_BATCH_SECONDS

    def __init__(self, workdir, n_workers, n_threads):
        self.workdir, self.n_workers, self.n_threads = workdir, n_workers, n_threads
        self.env = {name: str(n_threads) for name in THREAD_VARIABLES} if n_threads else {}
        self.executors = {}  # future -> the executor that runs it (replaced when broken)

    def capacity(self):
        return 2 * self.n_workers

    def submit(self, batch):
        executor = _get_executor(self.n_workers, self.env)
        future = executor.submit(run_batch, self.workdir, batch, self.n_threads)
        self.executors[future] = executor
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
            _discard_executor(executor)
            raise

    def worker_died(self, exc):
        from joblib.externals.loky.process_executor import BrokenProcessPool

        return isinstance(exc, BrokenProcessPool)

    def abort(self, handles):
        # Running tasks are simply abandoned with their workers: their
        # temporary files are never trusted.
        for future in handles:
            future.cancel()
            _discard_executor(self.executors.pop(future, None))


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
        return run_batch(self.workdir, handle)

    def abort(self, handles):
        pass  # nothing runs between two calls of result()


class LocalBackend(Backend):
    """Run tasks in worker processes on this machine (the default backend).

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
    """

    name = "local"

    def __init__(self, threads_per_worker=None, limit_threads=True):
        validate_params({"threads_per_worker": threads_per_worker, "limit_threads": limit_threads},
                        {"threads_per_worker": [Interval(numbers.Integral, 1, None, closed="left"), None],
                         "limit_threads": ["boolean"]}, "the local backend")
        self.threads_per_worker = threads_per_worker
        self.limit_threads = bool(limit_threads)

    def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None):
        """Run ``task_ids`` in the worker pool (in this process when ``n_jobs=1``).

        ``n_jobs=None`` means all cores, like -1.

        Examples
        --------
        >>> failed = LocalBackend().run(wf, wf.pending_ids(), n_jobs=2)
        """
        n_workers = effective_n_jobs(n_jobs)
        if n_workers == 1:
            pool = InProcessPool(str(workflow.workdir))
        else:
            n_threads = None
            if self.limit_threads:
                n_threads = self.threads_per_worker or max(1, (os.cpu_count() or 1) // n_workers)
            pool = ProcessPool(str(workflow.workdir), n_workers, n_threads)
        bar = make_progress(len(task_ids), progress)
        try:
            return dispatch(workflow, task_ids, pool, bar, stop)
        finally:
            bar.close()
