"""ipyparallel: run tasks on engines of a running or auto-started cluster.

Engines call :func:`mempamal.backends.local.run_batch`, i.e. ``run_task``
on the shared workdir: remote engines (SSH, Slurm, PBS, MPI launchers) need
the workdir on a shared filesystem, as on clusters.  Our own driver submits
only ready tasks through a load-balanced view (ipyparallel's ``after=``
dependencies live in its scheduler and are lost with it); a task whose
engine dies is resubmitted to another engine.  ``view.retries`` stays 0
because ipyparallel would also re-run tasks that raised.  Each engine's
BLAS/OpenMP threads are limited to ``cpu_count // engines on its host``, as
the local backend does for its workers.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import tempfile
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, wait

from .base import Backend, DependencyTracker, check_stop, effective_n_jobs, make_progress
from .local import THREAD_VARIABLES, run_batch

#: A batch of small tasks should keep an engine busy about this long.
TARGET_BATCH_SECONDS = 0.1

INSTALL_HINT = "The 'ipyparallel' backend needs ipyparallel: pip install ipyparallel"


def _import_ipp():
    try:
        import ipyparallel
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return ipyparallel


@contextlib.contextmanager
def _environment(**values):
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class LocalCluster:
    """A private ``ipyparallel.Cluster`` in a temporary IPython dir, stopped on exit.

    Engines create ``$IPYTHONDIR/profile_default`` whatever ``profile_dir``
    says, so IPYTHONDIR itself points into the temporary folder while they
    start: nothing lands in the user's ``~/.ipython``.  On exit the
    controller, the engines and their nanny processes are gone.

    Examples
    --------
    >>> with LocalCluster(2) as local:                                    # doctest: +SKIP
    ...     res = wf.run(backend="ipyparallel", client=local.client)
    ...     res2 = wf2.run(backend="ipyparallel", client=local.client)   # same engines
    """

    def __init__(self, n_engines):
        ipp = _import_ipp()
        self.base = tempfile.mkdtemp(prefix="mempamal-ipp-")
        self.ipython_dir = os.path.join(self.base, "ipython")
        self.cluster = ipp.Cluster(
            n=n_engines, profile_dir=os.path.join(self.ipython_dir, "profile_mempamal"),
            cluster_id="mempamal", log_level=40,
            # Engines wait for the controller's connection info anyway; the
            # default extra 1 s sleep between the two only adds latency.
            delay=0,
            # A 1 s heartbeat registers engines in ~2.5 s instead of ~6.5 s.
            controller_args=["--HeartMonitor.period=1000"],
        )

    def __enter__(self):
        try:
            with _environment(IPYTHONDIR=self.ipython_dir):
                self.client = self.cluster.start_and_connect_sync()
        except BaseException:  # engines timed out, Ctrl-C while starting, ...
            with contextlib.suppress(Exception):
                self.cluster.stop_cluster_sync()
            shutil.rmtree(self.base, ignore_errors=True)
            raise
        return self

    def add_engine(self):
        with _environment(IPYTHONDIR=self.ipython_dir):
            self.cluster.start_engines_sync(n=1)

    def _nannies(self):
        """The engines' nanny processes (children of the engine processes)."""
        import psutil  # an ipyparallel dependency

        nannies = []
        for engine_set in list(self.cluster.engines.values()):
            for launcher in list(getattr(engine_set, "launchers", {}).values()):
                with contextlib.suppress(psutil.Error, ValueError):
                    nannies.extend(psutil.Process(launcher.pid).children(recursive=True))
        return nannies

    def __exit__(self, *exc):
        try:
            nannies = self._nannies()
            self.client.close()
            self.cluster.stop_cluster_sync()
            # A nanny whose engine had unsent control messages (e.g. after a
            # Ctrl-C abort) blocks forever in zmq_ctx_term once the
            # controller is gone; its only remaining job, telling that
            # controller the engine left, is moot.
            _end_processes(nannies)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _end_processes(processes, seconds=3):
    """SIGTERM, then SIGKILL what still runs after ``seconds``.

    They are not our children: once dead they are zombies until init reaps
    them (seconds in some containers), so "dead" means "gone or zombie".
    """
    import time

    import psutil

    def running(process):
        try:
            return process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    deadline = time.monotonic() + seconds
    while any(map(running, processes)) and time.monotonic() < deadline:
        time.sleep(0.02)
    for process in filter(running, processes):
        with contextlib.suppress(psutil.Error):
            process.kill()


class IPyParallelBackend(Backend):
    """Run tasks on ipyparallel engines.

    Parameters
    ----------
    client : ipyparallel.Client, optional
        A connected client; its cluster is left running.
    profile, cluster_id, profile_dir : str, optional
        Connect to a running cluster (``ipp.Client(profile=..., cluster_id=...)``),
        left running afterwards.
    retries : int, default 1
        How many times a task whose engine died is resubmitted (to another
        engine).  A task that raised is never re-run: it is reported.
    threads_per_engine : int, optional
        BLAS/OpenMP threads per engine; default ``cpu_count // engines on
        that host`` (as the local backend), so engines sharing a machine do
        not oversubscribe its cores.

    Without any of them, ``n_jobs`` engines are started in a private cluster
    (temporary IPython dir) and stopped at the end; with a running cluster ``n_jobs`` is ignored and
    every engine is used.  Engines run ``run_task`` on the workdir, so remote
    engines need it on a shared filesystem at the same path.

    Examples
    --------
    >>> res = wf.run(backend="ipyparallel", n_jobs=4)                   # doctest: +SKIP
    >>> res = wf.run(backend="ipyparallel", profile="slurm")            # doctest: +SKIP
    >>> rc = ipyparallel.Client(cluster_id="ml")                        # doctest: +SKIP
    >>> res = wf.run(backend="ipyparallel", client=rc)                  # doctest: +SKIP
    """

    name = "ipyparallel"

    def __init__(self, client=None, profile=None, cluster_id=None, profile_dir=None, retries=1,
                 threads_per_engine=None):
        ipp = _import_ipp()  # the install hint before any work starts
        if client is not None and not isinstance(client, ipp.Client):
            raise ValueError(
                f"The 'client' parameter of the ipyparallel backend must be an ipyparallel.Client "
                f"or None; got {client!r} instead.")
        self.client = client
        self.connect_args = {k: v for k, v in
                             (("profile", profile), ("cluster_id", cluster_id), ("profile_dir", profile_dir)) if v}
        if client is not None and self.connect_args:
            raise ValueError(
                f"Give the ipyparallel backend either 'client' or {sorted(self.connect_args)}, not both.")
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ValueError(f"The 'retries' parameter must be an int >= 0; got {retries!r} instead.")
        self.retries = retries
        if threads_per_engine is not None and (
                not isinstance(threads_per_engine, int) or isinstance(threads_per_engine, bool)
                or threads_per_engine < 1):
            raise ValueError(f"The 'threads_per_engine' parameter must be an int >= 1 or None; "
                             f"got {threads_per_engine!r} instead.")
        self.threads_per_engine = threads_per_engine

    def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None):
        """Run ``task_ids`` on the engines (``n_jobs`` engines when auto-started).

        Examples
        --------
        >>> failed = IPyParallelBackend().run(wf, wf.pending_ids(), n_jobs=2)   # doctest: +SKIP
        """
        bar = make_progress(len(task_ids), progress)
        try:
            if self.client is not None:
                return _Driver(self.client, None, self, stop).run(workflow, task_ids, bar)
            if self.connect_args:
                try:
                    client = _import_ipp().Client(**self.connect_args)
                except OSError as exc:
                    raise OSError(f"The ipyparallel backend found no running cluster for "
                                  f"{self.connect_args} (start one with ipcluster start): {exc}") from exc
                try:
                    return _Driver(client, None, self, stop).run(workflow, task_ids, bar)
                finally:
                    client.close()
            with LocalCluster(effective_n_jobs(-1 if n_jobs is None else n_jobs)) as local:
                return _Driver(local.client, local, self, stop).run(workflow, task_ids, bar)
        finally:
            bar.close()


class _Driver:
    """Submit ready batches, wait for any, resubmit after engine deaths."""

    def __init__(self, client, local_cluster, backend, stop=None):
        self.client = client
        self.stop = stop
        self.local_cluster = local_cluster
        self.retries = backend.retries
        self.n_threads = backend.threads_per_engine
        self.mean_seconds = None  # moving average of one task's duration on an engine

    def run(self, workflow, task_ids, bar):
        if not self.client.ids:
            raise RuntimeError("The ipyparallel cluster has no engines; start some (ipcluster start -n N).")
        view = self.client.load_balanced_view()
        per_host = None if self.n_threads else self._engines_per_host()
        tracker = DependencyTracker(workflow, task_ids)
        failed, in_flight, deaths = {}, {}, {}
        workdir = str(workflow.workdir)
        try:
            while tracker.ready or in_flight:
                max_in_flight = 2 * max(1, len(self.client.ids))
                while tracker.ready and len(in_flight) < max_in_flight:
                    batch = [tracker.ready.popleft() for _ in range(self._batch_size(tracker, max_in_flight))]
                    future = view.apply_async(run_batch_on_engine, workdir, batch, self.n_threads, per_host)
                    in_flight[future] = batch
                # With a stop event, wake up regularly to look at it.
                done, _ = wait(list(in_flight), timeout=None if self.stop is None else 0.1,
                               return_when=FIRST_COMPLETED)
                check_stop(self.stop)
                for future in done:
                    batch = in_flight.pop(future)
                    try:
                        outcomes = future.result()
                    except Exception as exc:  # RemoteError, TaskAborted, ... : infrastructure
                        self._batch_failure(exc, batch, tracker, failed, deaths, bar)
                        continue
                    for task_id, error, seconds in outcomes:
                        self.mean_seconds = seconds if self.mean_seconds is None else (
                            0.8 * self.mean_seconds + 0.2 * seconds)
                        tracker.record(task_id, error, failed, bar)
        except BaseException:  # Ctrl-C, every engine dead, ...: nothing left running behind us
            self._abort(in_flight)
            raise
        return failed

    def _engines_per_host(self):
        """``{hostname: engines}``, or None when the engines are too busy to answer."""
        try:
            return Counter(self.client[:].apply_async(socket.gethostname).get(timeout=10))
        except Exception:  # busy with someone else's work: leave their thread pools alone
            return None

    def _batch_size(self, tracker, max_in_flight):
        # A round trip through the scheduler costs a few ms: tiny tasks go in
        # batches of about TARGET_BATCH_SECONDS, but never so large that
        # some engines would idle while others work through long batches.
        fair_share = max(1, len(tracker.ready) // max_in_flight)
        if self.mean_seconds is None:
            return min(fair_share, 4)
        return max(1, min(fair_share, int(TARGET_BATCH_SECONDS / max(self.mean_seconds, 1e-6))))

    def _batch_failure(self, exc, batch, tracker, failed, deaths, bar):
        """A batch did not return: its engine died (resubmit) or the call itself raised."""
        if getattr(exc, "ename", None) != "EngineError":
            for task_id in batch:
                tracker.record(task_id, f"Task {task_id!r} raised on its engine: {_describe(exc)}", failed, bar)
            return
        for task_id in batch:
            deaths[task_id] = deaths.get(task_id, 0) + 1
            if deaths[task_id] > self.retries:
                tracker.record(task_id, f"Task {task_id!r}: its engine died {deaths[task_id]} time(s): "
                                        f"{exc.evalue}", failed, bar)
            else:
                tracker.ready.appendleft(task_id)
        if not self.client.ids:
            if self.local_cluster is None:
                raise RuntimeError("Every ipyparallel engine died; restart engines and run again to resume.")
            self.local_cluster.add_engine()
            self.client.wait_for_engines(1, timeout=120)

    def _abort(self, in_flight):
        """Ctrl-C: cancel queued tasks, interrupt running ones; outputs stay complete."""
        futures = list(in_flight)
        with contextlib.suppress(Exception):
            self.client.abort(jobs=futures, block=False)
        engines = {getattr(f, "engine_id", None) for f in futures} - {None}
        if engines:
            with contextlib.suppress(Exception):
                self.client.send_signal(signal.SIGINT, targets=sorted(engines), block=True)


def run_batch_on_engine(workdir, task_ids, n_threads=None, engines_per_host=None):
    """:func:`~mempamal.backends.local.run_batch` on an engine, BLAS threads split among its host's engines.

    Examples
    --------
    >>> view.apply_async(run_batch_on_engine, "/shared/runs/iris", ["fit-o0-i0-c0"])   # doctest: +SKIP
    """
    if n_threads is None and engines_per_host:
        n_threads = max(1, (os.cpu_count() or 1) // engines_per_host.get(socket.gethostname(), 1))
    if n_threads:
        # threadpoolctl (in run_batch) only reaches the libraries already
        # loaded; scipy's own OpenBLAS is loaded later, by the task, and
        # reads these at that moment.
        for name in THREAD_VARIABLES:
            os.environ.setdefault(name, str(n_threads))
    return run_batch(workdir, task_ids, n_threads)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _describe(exc):
    """``ename: evalue`` and the remote traceback, without terminal colours."""
    ename = getattr(exc, "ename", None) or type(exc).__name__
    evalue = getattr(exc, "evalue", None) or str(exc)
    traceback = getattr(exc, "traceback", None)
    text = f"{ename}: {evalue}"
    if traceback:
        text += "\nRemote traceback:\n" + _ANSI.sub("", traceback).rstrip()
    return text
