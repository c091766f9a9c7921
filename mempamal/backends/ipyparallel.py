"""ipyparallel: run tasks on engines of a running or auto-started cluster.

Engines call :func:`mempamal.backends.local.run_batch`, i.e. ``run_task``
on the shared workdir: remote engines (SSH, Slurm, PBS, MPI launchers) need
the workdir on a shared filesystem, as on clusters.  Our own driver submits
only ready tasks through a load-balanced view (ipyparallel's ``after=``
dependencies live in its scheduler and are lost with it); a task whose
engine dies is resubmitted to another engine.  ``view.retries`` stays 0
because ipyparallel would also re-run tasks that raised.
"""

import contextlib
import os
import shutil
import signal
import tempfile
from concurrent.futures import FIRST_COMPLETED, wait

from .base import Backend, DependencyTracker, effective_n_jobs, make_progress
from .local import run_batch

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
    start: nothing lands in the user's ``~/.ipython``.
    """

    def __init__(self, n_engines):
        ipp = _import_ipp()
        self.base = tempfile.mkdtemp(prefix="mempamal-ipp-")
        self.ipython_dir = os.path.join(self.base, "ipython")
        self.cluster = ipp.Cluster(
            n=n_engines, profile_dir=os.path.join(self.ipython_dir, "profile_mempamal"),
            cluster_id="mempamal", log_level=40,
            # A 1 s heartbeat registers engines in ~2.5 s instead of ~6.5 s.
            controller_args=["--HeartMonitor.period=1000"],
        )

    def __enter__(self):
        with _environment(IPYTHONDIR=self.ipython_dir):
            self.client = self.cluster.start_and_connect_sync()
        return self

    def add_engine(self):
        with _environment(IPYTHONDIR=self.ipython_dir):
            self.cluster.start_engines_sync(n=1)

    def __exit__(self, *exc):
        try:
            self.client.close()
            self.cluster.stop_cluster_sync()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


class IPyParallelBackend(Backend):
    """Run tasks on ipyparallel engines.

    Parameters
    ----------
    client : ipyparallel.Client, optional
        A connected client; its cluster is left running.
    profile, cluster_id, profile_dir : str, optional
        Connect to a running cluster (``ipp.Client(profile=..., cluster_id=...)``),
        left running afterwards.
    retries : int
        How many times a task whose engine died is resubmitted.

    Without any of them, ``n_jobs`` engines are started in a private cluster
    and stopped at the end.

    Examples
    --------
    >>> res = wf.run(backend="ipyparallel", n_jobs=4)                   # doctest: +SKIP
    >>> res = wf.run(backend="ipyparallel", profile="slurm")            # doctest: +SKIP
    """

    name = "ipyparallel"

    def __init__(self, client=None, profile=None, cluster_id=None, profile_dir=None, retries=1):
        self.client = client
        self.connect_args = {k: v for k, v in
                             (("profile", profile), ("cluster_id", cluster_id), ("profile_dir", profile_dir)) if v}
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"The 'retries' parameter must be an int >= 0; got {retries!r} instead.")
        self.retries = retries

    def run(self, workflow, task_ids, n_jobs=None, progress=True):
        bar = make_progress(len(task_ids), progress)
        try:
            if self.client is not None:
                return _Driver(self.client, None, self.retries, None).run(workflow, task_ids, bar)
            if self.connect_args:
                client = _import_ipp().Client(**self.connect_args)
                try:
                    return _Driver(client, None, self.retries, None).run(workflow, task_ids, bar)
                finally:
                    client.close()
            n_engines = effective_n_jobs(-1 if n_jobs is None else n_jobs)
            n_threads = max(1, (os.cpu_count() or 1) // n_engines)
            with LocalCluster(n_engines) as local:
                return _Driver(local.client, local, self.retries, n_threads).run(workflow, task_ids, bar)
        finally:
            bar.close()


class _Driver:
    """Submit ready batches, wait for any, resubmit after engine deaths."""

    def __init__(self, client, local_cluster, retries, n_threads):
        self.client = client
        self.local_cluster = local_cluster
        self.retries = retries
        self.n_threads = n_threads

    def run(self, workflow, task_ids, bar):
        from ipyparallel.error import RemoteError

        if not self.client.ids:
            raise RuntimeError("The ipyparallel cluster has no engines; start some (ipcluster start -n N).")
        view = self.client.load_balanced_view()
        tracker = DependencyTracker(workflow, task_ids)
        failed, in_flight, deaths = {}, {}, {}
        workdir = str(workflow.workdir)
        try:
            while tracker.ready or in_flight:
                max_in_flight = 2 * max(1, len(self.client.ids))
                while tracker.ready and len(in_flight) < max_in_flight:
                    batch = [tracker.ready.popleft() for _ in range(self._batch_size(tracker, max_in_flight))]
                    in_flight[view.apply_async(run_batch, workdir, batch, self.n_threads)] = batch
                done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                for future in done:
                    batch = in_flight.pop(future)
                    try:
                        outcomes = future.result()
                    except RemoteError as exc:
                        self._engine_failure(exc, batch, tracker, failed, deaths, bar)
                        continue
                    for task_id, error, _ in outcomes:
                        tracker.record(task_id, error, failed, bar)
        except KeyboardInterrupt:
            self._abort(in_flight)
            raise
        return failed

    @staticmethod
    def _batch_size(tracker, max_in_flight):
        # Many small ready tasks: amortize the ~2 ms per submission.
        return max(1, min(16, len(tracker.ready) // max_in_flight))

    def _engine_failure(self, exc, batch, tracker, failed, deaths, bar):
        if exc.ename != "EngineError":
            message = f"{exc.ename}: {exc.evalue}"
            for task_id in batch:
                tracker.record(task_id, f"raised on engine: {message}", failed, bar)
            return
        for task_id in batch:
            deaths[task_id] = deaths.get(task_id, 0) + 1
            if deaths[task_id] > self.retries:
                tracker.record(task_id, f"its engine died {deaths[task_id]} times: {exc.evalue}", failed, bar)
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
