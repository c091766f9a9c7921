"""The local backend: a reusable process pool over the ready tasks.

Workers are loky processes: started once, reused across runs of the same
session, and they keep each workdir's data loaded between tasks.  The pool is
mempamal's own, not loky's global reusable executor: that one is joblib's
(scikit-learn's ``n_jobs``), and sharing it would make the two restart each
other's workers -- or break joblib outright.  Small tasks are sent in batches sized from measured durations, so
dispatch does not dominate.  Each worker's BLAS/OpenMP pools are limited to
``cpu_count // n_workers`` threads (environment at start-up plus
threadpoolctl), so nested parallelism does not oversubscribe the cores.
"""

import os
import time

from ..tasks import TaskError, run_task
from .base import Backend, DependencyTracker, RunCancelled, check_stop, effective_n_jobs, make_progress

#: Environment variables read by BLAS/OpenMP runtimes when they start.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
)
#: A batch of small tasks should keep a worker busy about this long.
TARGET_BATCH_SECONDS = 0.05

#: Idle workers exit after this many seconds (restarted on demand).
IDLE_WORKER_TIMEOUT = 300

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
        executor = ProcessPoolExecutor(max_workers=n_workers, env=env or None, timeout=IDLE_WORKER_TIMEOUT)
        _pool.update(key=key, executor=executor)
    return _pool["executor"]


def _discard_executor(executor):
    """Kill a broken or interrupted pool; the next run starts a new one."""
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
            error = str(exc)
        except Exception as exc:  # a bug must not kill the whole batch
            error = f"Task {task_id!r} failed: {type(exc).__name__}: {exc}"
        outcomes.append((task_id, error, time.perf_counter() - start))
    return outcomes


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
    >>> res = wf.run(backend="local", n_jobs=2)     # doctest: +SKIP
    """

    name = "local"

    def __init__(self, threads_per_worker=None, limit_threads=True):
        if threads_per_worker is not None and (
                not isinstance(threads_per_worker, int) or isinstance(threads_per_worker, bool)
                or threads_per_worker < 1):
            raise ValueError(
                f"The 'threads_per_worker' parameter of the local backend must be an int >= 1 "
                f"or None; got {threads_per_worker!r} instead.")
        self.threads_per_worker = threads_per_worker
        self.limit_threads = bool(limit_threads)

    def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None):
        """Run ``task_ids`` in the worker pool (in this process when ``n_jobs=1``).

        Examples
        --------
        >>> failed = LocalBackend().run(wf, wf.pending_ids(), n_jobs=2)   # doctest: +SKIP
        """
        n_workers = effective_n_jobs(-1 if n_jobs is None else n_jobs)
        graph = DependencyTracker(workflow, task_ids)
        bar = make_progress(len(task_ids), progress)
        try:
            if n_workers == 1:
                return self._run_in_process(workflow, graph, bar, stop)
            return self._run_in_pool(workflow, graph, bar, n_workers, stop)
        finally:
            bar.close()

    def _run_in_process(self, workflow, graph, bar, stop):
        failed = {}
        while graph.ready:
            check_stop(stop)
            task_id = graph.ready.popleft()
            ((_, error, _),) = run_batch(workflow.workdir, [task_id])
            graph.record(task_id, error, failed, bar)
        return failed

    def _executor(self, n_workers, n_threads):
        env = {name: str(n_threads) for name in THREAD_VARIABLES} if n_threads else {}
        return _get_executor(n_workers, env)

    def _run_in_pool(self, workflow, graph, bar, n_workers, stop):
        from concurrent.futures import FIRST_COMPLETED, wait

        from joblib.externals.loky.process_executor import BrokenProcessPool

        n_threads = None
        if self.limit_threads:
            n_threads = self.threads_per_worker or max(1, (os.cpu_count() or 1) // n_workers)
        failed, in_flight, crashes = {}, {}, {}
        mean_seconds = None
        try:
            while graph.ready or in_flight:
                while graph.ready and len(in_flight) < 2 * n_workers:
                    size = self._batch_size(len(graph.ready), n_workers, mean_seconds)
                    batch = [graph.ready.popleft() for _ in range(size)]
                    executor = self._executor(n_workers, n_threads)
                    future = executor.submit(run_batch, str(workflow.workdir), batch, n_threads)
                    in_flight[future] = (batch, executor)
                # With a stop event, wake up regularly to look at it.
                done, _ = wait(in_flight, timeout=None if stop is None else 0.1, return_when=FIRST_COMPLETED)
                check_stop(stop)
                for future in done:
                    batch, executor = in_flight.pop(future)
                    try:
                        outcomes = future.result()
                    except BrokenProcessPool as exc:
                        # A worker died (killed, out of memory): retry its
                        # tasks once in a fresh pool, then give up on them.
                        _discard_executor(executor)
                        for task_id in batch:
                            crashes[task_id] = crashes.get(task_id, 0) + 1
                            if crashes[task_id] > 1:
                                graph.record(task_id, f"worker process died: {exc}", failed, bar)
                            else:
                                graph.ready.appendleft(task_id)
                        continue
                    for task_id, error, seconds in outcomes:
                        mean_seconds = seconds if mean_seconds is None else 0.8 * mean_seconds + 0.2 * seconds
                        graph.record(task_id, error, failed, bar)
        except (KeyboardInterrupt, RunCancelled):
            # Finished outputs are complete files; running tasks are simply
            # abandoned (their temporary files are never trusted).
            for future, (_, executor) in in_flight.items():
                future.cancel()
                _discard_executor(executor)
            raise
        return failed

    @staticmethod
    def _batch_size(n_ready, n_workers, mean_seconds):
        if mean_seconds is None:
            return 1
        by_duration = int(TARGET_BATCH_SECONDS / max(mean_seconds, 1e-6))
        fair_share = max(1, n_ready // (2 * n_workers))
        return max(1, min(by_duration, fair_share))
