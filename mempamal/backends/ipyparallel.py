"""ipyparallel: run tasks on engines of a running or auto-started cluster.

Engines call :func:`mempamal.backends.local.run_batch`, i.e. ``run_task``
on the shared workdir: remote engines (SSH, Slurm, PBS, MPI launchers) need
the workdir on a shared filesystem, as on clusters.  Our own driver submits
only ready tasks through a load-balanced view (ipyparallel's ``after=``
dependencies live in its scheduler and are lost with it); a task whose
engine dies (``EngineError``: killed at its walltime, preempted, lost) is
resubmitted to the remaining engines ``retries`` times, then reported not
run (pending), never failed; with no engine left for ``ENGINE_WAIT_SECONDS``
the run ends with :class:`~mempamal.exceptions.WorkersLost`.  ``view.retries`` stays 0
because ipyparallel would also re-run tasks that raised.  Each engine's
BLAS/OpenMP threads are limited to ``cpu_count // engines on its host``, as
the local backend does for its workers.
"""

import contextlib
import numbers
import os
import re
import shutil
import signal
import socket
import tempfile
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, wait

from .base import Backend, effective_n_jobs, make_progress, temporary_environment
from .._constraints import Interval, Predicate, invalid, validate_params
from .dispatch_loop import WorkerPool, dispatch
from .local import THREAD_VARIABLES, run_batch

#: The options of the ipyparallel backend (and LocalCluster's engines).
IPYPARALLEL_CONSTRAINTS = {
    "retries": [Interval(numbers.Integral, 0, None, closed="left")],
    "threads_per_engine": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "engines": [Predicate(lambda e: isinstance(e, str) and bool(e),
                          "an ipyparallel launcher name such as 'local' or 'slurm'")],
    "cluster_options": [dict, None],
}

#: A batch of small tasks should keep an engine busy about this long.
TARGET_BATCH_SECONDS = 0.1

#: How long a private cluster waits for its engines (Slurm jobs may queue).
ENGINE_START_SECONDS = 300

#: With no engine left (a running cluster), how long a run waits for one to
#: register before it ends with WorkersLost.
ENGINE_WAIT_SECONDS = 30

INSTALL_HINT = "The 'ipyparallel' backend needs ipyparallel: pip install ipyparallel"


def _import_ipp():
    try:
        import ipyparallel
    except ImportError as exc:
        from ..exceptions import MissingDependency

        raise MissingDependency(INSTALL_HINT) from exc
    return ipyparallel


class LocalCluster:
    """A private ``ipyparallel.Cluster`` in a temporary IPython dir, stopped on exit.

    Engines create ``$IPYTHONDIR/profile_default`` whatever ``profile_dir``
    says, so IPYTHONDIR itself points into the temporary folder while they
    start: nothing lands in the user's ``~/.ipython``.  On exit the
    controller, the engines and their nanny processes are gone; if the
    process that started it dies instead (even by SIGKILL), a watchdog
    (:mod:`mempamal.backends.watchdog`) kills them and cancels the Slurm jobs.

    Parameters
    ----------
    n_engines : int
        Engines to start.
    engines : str, default "local"
        ipyparallel's engine launcher: ``"local"`` processes, ``"slurm"``
        (one ``sbatch`` job whose ``srun`` starts the engines; its script and
        log stay in the temporary folder), ``"mpi"``, ``"ssh"``, ...
    **cluster_options
        More ``ipyparallel.Cluster`` arguments (``controller_ip``, ``config``, ...).

    Examples
    --------
    >>> with LocalCluster(2) as local:                                    # needs an ipyparallel cluster  # doctest: +SKIP
    ...     res = wf.run(backend="ipyparallel", client=local.client)
    ...     res2 = wf2.run(backend="ipyparallel", client=local.client)   # same engines
    >>> with LocalCluster(4, engines="slurm") as on_slurm:                # needs an ipyparallel cluster  # doctest: +SKIP
    ...     res = wf.run(backend="ipyparallel", client=on_slurm.client)
    """

    def __init__(self, n_engines, engines="local", **cluster_options):
        ipp = _import_ipp()
        validate_params({"engines": engines}, IPYPARALLEL_CONSTRAINTS, "LocalCluster")
        self.n_engines = n_engines
        self.base = tempfile.mkdtemp(prefix="mempamal-ipp-")
        self.ipython_dir = os.path.join(self.base, "ipython")
        options = dict(
            n=n_engines, profile_dir=os.path.join(self.ipython_dir, "profile_mempamal"),
            cluster_id="mempamal", log_level=40,
            # Engines wait for the controller's connection info anyway; the
            # default extra 1 s sleep between the two only adds latency.
            delay=0,
            # A 1 s heartbeat registers engines in ~2.5 s instead of ~6.5 s.
            controller_args=["--HeartMonitor.period=1000"],
        )
        if engines != "local":
            options["engines"] = engines
        if engines == "slurm":
            options.update(_slurm_options(self.base))
        options.update(cluster_options)
        self.cluster = ipp.Cluster(**options)
        self.watchdog = None

    def __enter__(self):
        from .watchdog import start_watchdog

        # First the watchdog: a driver killed while the cluster starts leaves nothing either.
        self.watchdog = start_watchdog("IPYTHONDIR", self.ipython_dir, self.base)
        try:
            with temporary_environment(IPYTHONDIR=self.ipython_dir):
                self.cluster.start_cluster_sync()
                self._tell_watchdog_the_jobs()
                self.client = self.cluster.connect_client_sync()
                self.client.wait_for_engines(self.n_engines, timeout=ENGINE_START_SECONDS, interactive=False)
                # Part of starting: the first tasks must not each pay scikit-learn's import.
                self.client[:].apply_sync(_import_task_modules)
        except BaseException:  # engines timed out, Ctrl-C while starting, ...
            with contextlib.suppress(Exception):
                self.cluster.stop_cluster_sync()
            shutil.rmtree(self.base, ignore_errors=True)
            self._stop_watchdog(sweep=True)  # whatever did start (engines still queued, ...) goes too
            raise
        return self

    def add_engine(self):
        """Start one more engine in this cluster (to replace one that died)."""
        with temporary_environment(IPYTHONDIR=self.ipython_dir):
            self.cluster.start_engines_sync(n=1)
        self._tell_watchdog_the_jobs()

    def _tell_watchdog_the_jobs(self):
        """Batch-system engines are jobs: the watchdog cancels them if we die."""
        from .watchdog import tell_watchdog

        for engine_set in list(self.cluster.engines.values()):
            if getattr(engine_set, "job_id", None):
                tell_watchdog(self.watchdog, f"slurm-job {engine_set.job_id}")

    def _stop_watchdog(self, sweep=False):
        from .watchdog import stop_watchdog

        if self.watchdog is not None:
            stop_watchdog(self.watchdog, sweep)
            self.watchdog = None

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
            self._stop_watchdog()


def _import_task_modules():
    import sklearn.model_selection  # noqa: F401 - what every task uses

    import mempamal.backends.local  # noqa: F401 - run_batch and run_task


def _slurm_options(folder):
    """Keep the engines' batch script and job log in ``folder``, not in the current directory."""
    from traitlets.config import Config

    config = Config()
    launcher = config.SlurmEngineSetLauncher
    launcher.batch_file_name = os.path.join(folder, "slurm_engine.sbatch")
    log = os.path.join(folder, "engines-%j.out").replace("{", "{{").replace("}", "}}")
    launcher.batch_template = ("#!/bin/sh\n#SBATCH --export=ALL\n#SBATCH --job-name=ipengine-{cluster_id}\n"
                               f"#SBATCH --output={log}\n#SBATCH --ntasks={{n}}\nsrun {{program_and_args}}\n")
    return {"config": config}


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
        How many times a task whose engine died while running it is
        resubmitted (to the remaining engines); after that it is reported not
        run (it stays pending), not failed.  A task that raised is never
        re-run: it is reported failed.  With no engine left, a private
        cluster starts a new one; on a running cluster the run ends with
        :class:`~mempamal.WorkersLost` after ``ENGINE_WAIT_SECONDS``.
    threads_per_engine : int, optional
        BLAS/OpenMP threads per engine; default ``cpu_count // engines on
        that host`` (as the local backend), so engines sharing a machine do
        not oversubscribe its cores.
    engines : str, default "local"
        How a private cluster starts its engines: ipyparallel's launcher name,
        e.g. ``"slurm"`` (one sbatch job running the engines with srun).
    cluster_options : dict, optional
        More ``ipyparallel.Cluster`` arguments for a private cluster
        (``controller_ip="*"`` when engines run on other nodes, ``config``
        for the launcher's partition, time limit, ...).

    Without ``client``/``profile``/``cluster_id``/``profile_dir``, ``n_jobs``
    engines (None = all cores) are started in a private cluster (temporary
    IPython dir) and stopped at the end, also when the driver is killed; with
    a running cluster ``n_jobs`` is ignored and every engine is used.  Engines run ``run_task`` on the workdir, so remote
    engines need it on a shared filesystem at the same path.  Cancelling
    (Ctrl-C, ``stop``) interrupts the running tasks on a private cluster;
    on a running cluster, which other runs may share, queued tasks are
    cancelled and running ones finish by themselves.

    Examples
    --------
    >>> res = wf.run(backend="ipyparallel", n_jobs=4)                   # needs an ipyparallel cluster  # doctest: +SKIP
    >>> res = wf.run(backend="ipyparallel", profile="slurm")            # needs an ipyparallel cluster  # doctest: +SKIP
    >>> rc = ipyparallel.Client(cluster_id="ml")                        # needs an ipyparallel cluster  # doctest: +SKIP
    >>> res = wf.run(backend="ipyparallel", client=rc)                  # needs an ipyparallel cluster  # doctest: +SKIP
    >>> res = wf.run(backend="ipyparallel", engines="slurm", n_jobs=8)  # needs an ipyparallel cluster  # doctest: +SKIP
    """

    supports_stop = True
    supports_observer = True

    name = "ipyparallel"

    def __init__(self, client=None, profile=None, cluster_id=None, profile_dir=None, retries=1,
                 threads_per_engine=None, engines="local", cluster_options=None):
        ipp = _import_ipp()  # the install hint before any work starts
        owner = "the ipyparallel backend"
        validate_params({"client": client}, {"client": [Predicate(lambda c: isinstance(c, ipp.Client),
                                                                  "an ipyparallel.Client"), None]}, owner)
        validate_params({"retries": retries, "threads_per_engine": threads_per_engine, "engines": engines,
                         "cluster_options": cluster_options}, IPYPARALLEL_CONSTRAINTS, owner)
        self.client = client
        self.connect_args = {k: v for k, v in
                             (("profile", profile), ("cluster_id", cluster_id), ("profile_dir", profile_dir)) if v}
        if client is not None and self.connect_args:
            raise invalid(
                f"Give the ipyparallel backend either 'client' or {sorted(self.connect_args)}, not both.")
        self.retries = retries
        self.threads_per_engine = threads_per_engine
        if (engines != "local" or cluster_options) and (client is not None or self.connect_args):
            raise invalid("'engines' and 'cluster_options' configure a cluster the ipyparallel backend "
                             "starts; they cannot be given with a running cluster ('client', 'profile', ...).")
        self.engines, self.cluster_options = engines, dict(cluster_options or {})

    def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None, observer=None):
        """Run ``task_ids`` on the engines (``n_jobs`` engines when auto-started, None = all cores).

        Examples
        --------
        >>> failed = IPyParallelBackend().run(wf, wf.pending_ids(), n_jobs=2)   # needs an ipyparallel cluster  # doctest: +SKIP
        """
        bar = make_progress(len(task_ids), progress)
        try:
            with self._connect(n_jobs) as (client, local_cluster):
                pool = EnginePool(client, str(workflow.workdir), self.retries, self.threads_per_engine,
                                  local_cluster)
                return dispatch(workflow, task_ids, pool, bar, stop, observer)
        finally:
            bar.close()

    @contextlib.contextmanager
    def _connect(self, n_jobs):
        """``(client, private cluster or None)``; a private cluster is stopped on exit."""
        if self.client is not None:
            yield self.client, None
        elif self.connect_args:
            try:
                client = _import_ipp().Client(**self.connect_args)
            except OSError as exc:
                from ..exceptions import ClusterUnreachable

                raise ClusterUnreachable(f"The ipyparallel backend found no running cluster for "
                                         f"{self.connect_args} (start one with ipcluster start): {exc}") from exc
            try:
                yield client, None
            finally:
                client.close()
        else:
            with LocalCluster(effective_n_jobs(n_jobs), self.engines, **self.cluster_options) as local:
                yield local.client, local


class EnginePool(WorkerPool):
    """The dispatch primitives over a load-balanced view of ipyparallel engines.

    Examples
    --------
    >>> from mempamal.backends.dispatch_loop import dispatch
    >>> failed = dispatch(wf, wf.pending_ids(), EnginePool(client, str(wf.workdir)))   # needs an ipyparallel cluster  # doctest: +SKIP
    """

    # A round trip through the scheduler costs a few ms.
    target_batch_seconds = TARGET_BATCH_SECONDS
    worker_name = "ipyparallel engine"
    lost_advice = "start engines (ipcluster start -n N)"

    def __init__(self, client, workdir, retries=1, n_threads=None, local_cluster=None):
        if not client.ids:
            from ..exceptions import BackendError

            raise BackendError("The ipyparallel cluster has no engines; start some (ipcluster start -n N).")
        self.client, self.workdir, self.retries = client, workdir, retries
        self.n_threads, self.local_cluster = n_threads, local_cluster
        self.view = client.load_balanced_view()
        self.lost_after_seconds = ENGINE_WAIT_SECONDS
        self.per_host = None if n_threads else self._engines_per_host()

    def _engines_per_host(self):
        """``{hostname: engines}``, or None when the engines are too busy to answer."""
        try:
            return Counter(self.client[:].apply_async(socket.gethostname).get(timeout=10))
        except Exception:  # busy with someone else's work: leave their thread pools alone
            return None

    def capacity(self):
        return 2 * max(1, len(self.client.ids))

    def submit(self, batch):
        return self.view.apply_async(run_batch_on_engine, self.workdir, batch, self.n_threads, self.per_host,
                                     self.allow_version_mismatch)

    def wait(self, handles, timeout):
        return wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)[0]

    def result(self, handle):
        return handle.result()

    def worker_died(self, exc):
        return getattr(exc, "ename", None) == "EngineError"

    def describe(self, exc):
        return exc.evalue if self.worker_died(exc) else _describe(exc)

    def live_workers(self):
        return len(self.client.ids)  # engines that unregistered (died, lost) are gone from it

    def recover(self, exc):
        # A running cluster is the user's: with no engine left, dispatch ends
        # the run (WorkersLost) unless one registers within lost_after_seconds.
        if self.client.ids or self.local_cluster is None:
            return
        self.local_cluster.add_engine()
        self.client.wait_for_engines(1, timeout=120)

    def abort(self, handles):
        """Cancel queued tasks, interrupt running ones on this run's own engines; outputs stay complete.

        On a cluster the run did not start (``client=``, ``profile=``), other
        runs share the engines: by the time a SIGINT lands, the engine may
        be running one of theirs.  There the batches already running finish
        by themselves (their outputs are complete files), as on Dask.
        """
        with contextlib.suppress(Exception):
            self.client.abort(jobs=handles, block=False)
        engines = {getattr(f, "engine_id", None) for f in handles} - {None}
        if engines and self.local_cluster is not None:
            with contextlib.suppress(Exception):
                self.client.send_signal(signal.SIGINT, targets=sorted(engines), block=True)


def run_batch_on_engine(workdir, task_ids, n_threads=None, engines_per_host=None, allow_version_mismatch=False):
    """:func:`~mempamal.backends.local.run_batch` on an engine, BLAS threads split among its host's engines.

    Examples
    --------
    >>> view.apply_async(run_batch_on_engine, "/shared/runs/iris", ["fit-o0-i0-c0"])   # needs an ipyparallel cluster  # doctest: +SKIP
    """
    if n_threads is None and engines_per_host:
        n_threads = max(1, (os.cpu_count() or 1) // engines_per_host.get(socket.gethostname(), 1))
    if n_threads:
        # threadpoolctl (in run_batch) only reaches the libraries already
        # loaded; scipy's own OpenBLAS is loaded later, by the task, and
        # reads these at that moment.
        for name in THREAD_VARIABLES:
            os.environ.setdefault(name, str(n_threads))
    return run_batch(workdir, task_ids, n_threads, allow_version_mismatch)


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
