"""Dask: run tasks on the workers of a ``distributed.Client``.

The client may be the user's (a LocalCluster, a dask-jobqueue
``SLURMCluster``, Kubernetes, a cloud service), a scheduler address, or a
private LocalCluster started for the run and closed after it.  Dask sees only
batches of *ready* tasks: the dependency order is mempamal's own (the shared
:func:`~mempamal.backends.dispatch_loop.dispatch` loop), so a run can be cancelled,
resumed, and mixed with other backends freely.  Workers call
:func:`~mempamal.backends.local.run_batch` on the workdir: remote workers
need it on a shared filesystem at the same path.

Lost workers: Dask reschedules the tasks of a worker that died by itself
(up to ``distributed.scheduler.allowed-failures`` times); a batch it gave up
on (``KilledWorker``: its workers kept dying, e.g. killed at their walltime)
is submitted again ``retries`` times by mempamal, and its task is then
reported not run (pending), never failed.  With no worker left for
``WORKER_WAIT_SECONDS``, the run ends with :class:`~mempamal.exceptions.WorkersLost`.
"""

import contextlib
import logging
import numbers
import os
import time
import uuid

from .base import Backend, effective_n_jobs, make_progress, temporary_environment
from .dispatch_loop import WorkerPool, dispatch
from .local import run_batch
from .._constraints import Interval, Predicate, invalid, validate_params

#: The options of the dask backend (the client's type is known once distributed is imported).
DASK_CONSTRAINTS = {
    "address": [Predicate(lambda a: isinstance(a, str) and bool(a),
                          "a scheduler address such as 'tcp://host:8786'"), None],
    "retries": [Interval(numbers.Integral, 0, None, closed="left")],
    "threads_per_worker": [Interval(numbers.Integral, 1, None, closed="left"), None],
}

INSTALL_HINT = "The 'dask' backend needs dask.distributed: pip install 'mempamal[dask]'"

#: How long a run waits for a first worker (jobqueue workers wait in a batch queue),
#: and for a new one once every worker is gone (then it ends with WorkersLost).
WORKER_WAIT_SECONDS = 600
#: How long connecting to a scheduler address may take.
CONNECT_SECONDS = 30
#: How often the number of worker threads is asked again (clusters scale up and down).
CAPACITY_REFRESH_SECONDS = 2.0


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        from ..exceptions import MissingDependency

        raise MissingDependency(INSTALL_HINT) from exc
    return distributed


class DaskBackend(Backend):
    """Run tasks on Dask workers.

    Parameters
    ----------
    client : distributed.Client, optional
        A connected client; its cluster is left running.
    address : str, optional
        A scheduler address (``"tcp://host:8786"``) to connect to; left running.
    retries : int, default 1
        How many times mempamal resubmits a task Dask gave up on because the
        workers running it kept dying (``KilledWorker``, after Dask's own
        ``distributed.scheduler.allowed-failures`` reschedules); after that
        the task is reported not run (it stays pending), not failed.  A task
        that raised is never re-run: it is reported failed.
    threads_per_worker : int, optional
        BLAS/OpenMP threads per task.  Default: ``cpu_count // n_jobs`` in a
        private cluster; left alone on a user's cluster.

    Without ``client`` or ``address``, a private ``distributed.LocalCluster``
    of ``n_jobs`` single-threaded worker processes (None = all cores) is
    started for the run and closed after it; with a running cluster
    ``n_jobs`` is ignored and every worker thread is used.  Cancelling
    (Ctrl-C, ``stop``) cancels queued batches; on a user's cluster, batches
    already running finish by themselves (Dask cannot interrupt them; their
    outputs are complete files).

    Examples
    --------
    >>> res = wf.run(backend="dask", n_jobs=4)                           # needs a Dask cluster  # doctest: +SKIP
    >>> from distributed import Client                                    # needs a Dask cluster  # doctest: +SKIP
    >>> res = wf.run(backend="dask", client=Client("tcp://head:8786"))    # needs a Dask cluster  # doctest: +SKIP
    >>> res = wf.run(backend="dask", address="tcp://head:8786")           # needs a Dask cluster  # doctest: +SKIP
    """

    supports_stop = True
    supports_observer = True

    name = "dask"

    def __init__(self, client=None, address=None, retries=1, threads_per_worker=None):
        distributed = _import_distributed()  # the install hint before any work starts
        owner = "the dask backend"
        validate_params({"client": client}, {"client": [Predicate(lambda c: isinstance(c, distributed.Client),
                                                                  "a distributed.Client"), None]}, owner)
        validate_params({"address": address, "retries": retries, "threads_per_worker": threads_per_worker},
                        DASK_CONSTRAINTS, owner)
        if client is not None and address is not None:
            raise invalid("Give the dask backend either 'client' or 'address', not both.")
        self.client, self.address = client, address
        self.retries, self.threads_per_worker = retries, threads_per_worker

    @property
    def imports_main_script(self):
        """True when a run starts a private LocalCluster, whose spawned workers import the script again.

        Examples
        --------
        >>> DaskBackend().imports_main_script
        True
        """
        return self.client is None and self.address is None

    def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None, observer=None):
        """Run ``task_ids`` on the Dask workers (a private cluster of ``n_jobs`` workers by default).

        Examples
        --------
        >>> failed = DaskBackend().run(wf, wf.pending_ids(), n_jobs=2)   # needs a Dask cluster  # doctest: +SKIP
        """
        bar = make_progress(len(task_ids), progress)
        try:
            with self._connect(n_jobs) as (client, n_threads):
                pool = DaskPool(client, str(workflow.workdir), self.retries, n_threads)
                return dispatch(workflow, task_ids, pool, bar, stop, observer)
        finally:
            bar.close()

    @contextlib.contextmanager
    def _connect(self, n_jobs):
        """``(client, BLAS threads per task)``; a private cluster is closed on exit."""
        distributed = _import_distributed()
        if self.client is not None:
            yield self.client, self.threads_per_worker
            return
        if self.address is not None:
            try:
                client = distributed.Client(self.address, timeout=CONNECT_SECONDS)
            except OSError as exc:
                from ..exceptions import ClusterUnreachable

                raise ClusterUnreachable(f"The dask backend could not reach a scheduler at {self.address!r}: "
                                         f"{exc}") from exc
            with client:
                yield client, self.threads_per_worker
            return
        n_workers = effective_n_jobs(n_jobs)
        n_threads = self.threads_per_worker or max(1, (os.cpu_count() or 1) // n_workers)
        # Single-threaded worker processes: the GIL and BLAS threads are
        # handled per task (run_batch limits them), as the local backend does.
        # distributed's nannies write their workers' settings (OMP_NUM_THREADS=1,
        # MALLOC_TRIM_THRESHOLD_, ...) into *our* os.environ; every process the
        # user starts afterwards -- e.g. a local run with limit_threads=False --
        # would inherit them.  Put the environment back as it was.
        with temporary_environment():
            # CRITICAL, not ERROR: a worker still closing when its scheduler
            # is already gone logs a heartbeat traceback (seen on a loaded
            # machine, with or without other runs).  What goes wrong in a
            # private cluster reaches the user as the run's own errors.
            cluster = distributed.LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                silence_logs=logging.CRITICAL)
            try:
                with distributed.Client(cluster) as client:
                    yield client, n_threads
            finally:
                cluster.close()


class DaskPool(WorkerPool):
    """The dispatch primitives over a ``distributed.Client``: one future per batch.

    Examples
    --------
    >>> from mempamal.backends.dispatch_loop import dispatch
    >>> failed = dispatch(wf, wf.pending_ids(), DaskPool(client, str(wf.workdir)))   # needs a Dask cluster  # doctest: +SKIP
    """

    # A round trip through the scheduler costs a few ms.
    target_batch_seconds = 0.1

    lost_advice = "start or scale workers (cluster.scale(n))"

    worker_name = "Dask worker"

    def __init__(self, client, workdir, retries=1, n_threads=None, worker_wait=None):
        self.client, self.workdir, self.retries, self.n_threads = client, workdir, retries, n_threads
        worker_wait = WORKER_WAIT_SECONDS if worker_wait is None else worker_wait
        # Batch-queue workers (dask-jobqueue) replaced after a walltime may wait in the queue as long as the first.
        self.lost_after_seconds = worker_wait
        try:
            # Workers of a batch-queue cluster may still be waiting to start.
            client.wait_for_workers(1, timeout=worker_wait)
        except TimeoutError as exc:
            from ..exceptions import BackendError

            raise BackendError(f"The Dask cluster has no worker after {worker_wait} s; start or scale "
                               f"some (cluster.scale(n)) and run again.") from exc
        self._threads, self._workers, self._asked = 0, 1, float("-inf")
        self.run_id = uuid.uuid4().hex[:8]

    def capacity(self):
        now = time.monotonic()
        if now - self._asked > CAPACITY_REFRESH_SECONDS:
            threads = self.client.nthreads()
            self._threads, self._workers, self._asked = sum(threads.values()), len(threads), now
        return 2 * max(1, self._threads)

    def live_workers(self):
        self.capacity()  # asks the scheduler at most every CAPACITY_REFRESH_SECONDS
        return self._workers

    def submit(self, batch):
        # A readable key: the dashboard shows which tasks a batch holds.
        key = f"mempamal-{batch[0]}-{len(batch)}-{self.run_id}-{uuid.uuid4().hex[:8]}"
        return self.client.submit(run_batch, self.workdir, batch, self.n_threads, self.allow_version_mismatch,
                                  key=key, pure=False)

    def wait(self, handles, timeout):
        distributed = _import_distributed()
        try:
            return distributed.wait(handles, timeout=timeout, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            return []

    def result(self, handle):
        try:
            return handle.result()
        finally:
            handle.release()

    def worker_died(self, exc):
        from distributed import KilledWorker

        return isinstance(exc, KilledWorker)

    def describe(self, exc):
        if self.worker_died(exc):  # its first sentence; the rest is advice on reading worker logs
            return f"KilledWorker: {str(exc).split('. ')[0]}"
        return super().describe(exc)

    def abort(self, handles):
        with contextlib.suppress(Exception):
            self.client.cancel(handles, force=True)
