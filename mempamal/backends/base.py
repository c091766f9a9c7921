"""Backend base class and registry (joblib's ``register_parallel_backend`` is the model).

A backend receives the workflow and the ids still to run and runs them in
dependency order.  It returns ``{task_id: error message}`` for the tasks that
failed (an empty dict when all went well); tasks depending on a failed task
are not run.

A run may be driven from a background thread (``Workflow.submit``): it then
gets a ``stop`` :class:`threading.Event`; once it is set the backend stops
submitting, aborts what it started (finished outputs stay) and raises
:class:`RunCancelled`.  It may also get an ``observer``, the
:class:`~mempamal.backends.base.RunObserver` of the :class:`mempamal.Run` it drives, to tell which
tasks execute now.

Each run owns what it starts: the workers of a private cluster, the local
backend's processes (see :mod:`mempamal.backends.local`), its observer.
Cancelling, failing or finishing one run never touches another's; nothing
about a run is kept per process.

Backends that run batches of tasks on workers (local, ipyparallel, dask)
share one dispatch loop, :func:`mempamal.backends.dispatch_loop.dispatch`,
as joblib's backends share ``Parallel``'s: they only provide a
:class:`~mempamal.backends.dispatch_loop.WorkerPool` (submit a batch, wait
for any, get a result, abort, recognise a dead worker).  Which tasks are
ready is :class:`~mempamal.backends.tracker.DependencyTracker`'s job.

Besides the base class, its registry and ``n_jobs``: the small helpers every
backend uses (:func:`check_stop`, :func:`make_progress`,
:class:`~mempamal.backends.base.RunObserver` (what executes now, per run),
:func:`temporary_environment`).

Adding one is one class and one registry line::

    class MyBackend(mp.Backend):
        def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None, observer=None):
            ...

    mp.register_backend("mine", MyBackend)
"""

import abc
import contextlib
import importlib
import numbers
import os
import threading

from .._constraints import Predicate, invalid, raise_invalid, validate_params
from ..exceptions import RunCancelled

#: ``n_jobs`` as scikit-learn takes it: a non-zero int (negative counts from the cores) or None.
N_JOBS_CONSTRAINTS = {"n_jobs": [Predicate(lambda n: isinstance(n, numbers.Integral) and not isinstance(n, bool)
                                           and n != 0, "a non-zero int"), None]}


# The one module-level mutable object of the backends, on purpose: the names
# ``backend=`` accepts (joblib's ``register_parallel_backend`` keeps one
# too).  It holds classes or import strings, never a run's state or workers.
_REGISTRY = {
    # Built-in backends are imported on first use so that `import mempamal`
    # never imports ipyparallel or soma-workflow.
    "local": "mempamal.backends.local:LocalBackend",
    "ipyparallel": "mempamal.backends.ipyparallel:IPyParallelBackend",
    "soma-workflow": "mempamal.backends.somaworkflow.backend:SomaWorkflowBackend",
    "dask": "mempamal.backends.dask:DaskBackend",
    "slurm": "mempamal.backends.slurm.backend:SlurmBackend",
}


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
    >>> wf = mp.Experiment(estimator, cv=2).build(X, y, workdir="runs/cv2")
    >>> InProcess().run(wf, wf.pending_ids()), wf.status()["done"]
    ({}, 4)
    """

    name = None
    #: What this backend can do, declared (joblib's ``supports_*`` flags): a
    #: ``Workflow`` reads these, it never probes signatures.
    #: ``run`` honours ``stop=`` (``Run.cancel()``); without it a run goes to its end.
    supports_stop = False
    #: ``run`` tells ``observer=`` what executes now (``Run.status()["running"]``).
    supports_observer = False
    #: Its workers import the user's script again (spawned processes): a script
    #: without ``if __name__ == "__main__":`` is refused before anything starts.
    imports_main_script = False
    #: Its work goes on when the process that submitted it dies: left running
    #: at interpreter exit, followed again by :meth:`JobBackend.attach`.
    outlives_driver = False
    #: Made from its name for an estimate's sample, it may be kept for the
    #: workflow's next run (the workers started once): only a backend whose
    #: idle workers leave by themselves, and with their driver.
    warm_after_estimate = False

    def __init__(self, **options):
        if options:
            raise invalid(f"The {self.name!r} backend takes no options; got {sorted(options)}.")

    @abc.abstractmethod
    def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None, observer=None):
        """Run ``task_ids`` in dependency order; return ``{task_id: failure}`` of the failures.

        A failure is a message, or the :class:`~mempamal.TaskError` the task
        raised (a worker's :func:`~mempamal.backends.local.run_batch` sends it
        back): with ``error_score="raise"`` it carries the estimator's
        exception, which ``Workflow.run`` raises in the caller.  ``stop`` is None or a :class:`threading.Event`: once set, stop
        submitting, abort what is queued or running, and raise
        :class:`RunCancelled`.  ``observer`` is None or the run's
        :class:`~mempamal.backends.base.RunObserver`: tell it which batches execute now.
        ``Workflow.run`` passes each only to a backend that declares it
        (:attr:`supports_stop`, :attr:`supports_observer`).

        Examples
        --------
        A backend that runs every task in this process, one after the other
        (the ``Backend`` example above); ``Workflow.run`` calls it with the
        pending tasks:

        >>> from mempamal.backends.local import run_batch
        >>> class InProcess(Backend):
        ...     name = "in-process"
        ...     def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None):
        ...         return {i: e for i, e, _ in run_batch(workflow.workdir, task_ids) if e}
        >>> wf = mp.Experiment(estimator, cv=2).build(X, y, workdir="runs/cv2")
        >>> InProcess().run(wf, wf.pending_ids(), progress=False)
        {}
        """

    def close(self):
        """Release what this instance keeps between its runs (e.g. the local backend's warm workers).

        A backend given by name (``backend="local"``) is made for one run and
        closed at its end; an instance you pass is yours to close, or to use
        as a context manager.  Does nothing by default.

        Examples
        --------
        >>> from mempamal.backends.local import LocalBackend
        >>> with LocalBackend() as local:                      # closed at the end of the block
        ...     res = wf.run(backend=local, n_jobs=2)
        """

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class JobBackend(Backend):
    """A backend whose tasks run as a scheduler's jobs: they outlive the driver, which can attach again.

    Besides :meth:`~mempamal.backends.base.Backend.run`, it records its submission in
    ``WORKDIR/submissions/<name>.json`` and implements :meth:`attach` (follow
    a recorded submission again, after a kernel restart) and
    :meth:`jobs_status` (the scheduler's view of it, for ``status``).  The
    ``slurm`` and ``soma-workflow`` backends are such backends.

    Examples
    --------
    >>> from mempamal.backends.slurm.backend import SlurmBackend
    >>> issubclass(SlurmBackend, JobBackend), SlurmBackend.outlives_driver
    (True, True)
    """

    outlives_driver = True

    @abc.abstractmethod
    def attach(self, workflow, stop=None, progress=True, observer=None):
        """Follow the recorded submission of ``workflow`` to its end; ``{task_id: message}`` of the failures.

        Examples
        --------
        >>> run = wf.attach()   # Workflow.attach calls this on the recorded backend
        >>> run is None         # nothing recorded: nothing to follow
        True
        """

    @abc.abstractmethod
    def jobs_status(self, workdir, submission):
        """The scheduler's view of a recorded ``submission``: ``{"pending": n, "running": n, "finished": n}``.

        Never raises: ``{"error": ...}`` says why the scheduler did not answer.

        Examples
        --------
        >>> from mempamal.graph.submissions import recorded_jobs
        >>> recorded_jobs(wf.workdir) is None   # no submission recorded
        True
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
        raise_invalid("name", "register_backend", "a non-empty str", name)
    _REGISTRY[name] = backend


def available_backends():
    """Names of the registered backends.

    Examples
    --------
    >>> {"local", "ipyparallel", "slurm"} <= set(available_backends())
    True
    """
    return sorted(_REGISTRY)


class KeptRunner:
    """One backend made from its name, kept for the next run that asks for the same name and options.

    ``Workflow.estimate`` keeps the runner of its sample here, so the run
    that follows uses the workers the sample started.  Only a backend
    declaring :attr:`Backend.warm_after_estimate` is kept; any other is
    closed at once, as a run by name closes its own.

    Examples
    --------
    >>> from mempamal.backends.local import LocalBackend
    >>> kept, local = KeptRunner(), LocalBackend()
    >>> kept.keep("local", {}, local)
    >>> kept.take("local", {}) is local, kept.take("local", {})      # taken once: the taker closes it
    (True, None)
    """

    def __init__(self):
        self._kept = None  # (name, options, backend) or None

    def keep(self, name, options, runner):
        """Keep ``runner``, made from ``name`` and ``options``; an earlier kept one is closed.

        Examples
        --------
        >>> from mempamal.backends.local import LocalBackend
        >>> KeptRunner().keep("local", {}, LocalBackend())
        """
        self.take(None, None)
        if runner.warm_after_estimate:
            self._kept = (name, dict(options), runner)
        else:
            runner.close()

    def take(self, name, options):
        """The kept runner if it was made from ``name`` and ``options`` (then the caller's to close), else None.

        A kept runner that does not match is closed.

        Examples
        --------
        >>> from mempamal.backends.local import LocalBackend
        >>> kept = KeptRunner()
        >>> kept.keep("local", {}, LocalBackend())
        >>> kept.take("local", {"threads_per_worker": 1}) is None      # other options: closed, not given
        True
        """
        kept, self._kept = self._kept, None
        if kept is None:
            return None
        if (kept[0], kept[1]) == (name, options):
            return kept[2]
        kept[2].close()
        return None


def get_backend(backend, **options):
    """An instance of the backend named ``backend`` (or ``backend`` itself).

    Examples
    --------
    >>> type(get_backend("local")).__name__
    'LocalBackend'
    >>> get_backend("nowhere")                                     # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'backend' parameter must be one of [...] or a Backend instance; got 'nowhere' instead.
    """
    if isinstance(backend, Backend):
        if options:
            raise invalid("Options cannot be given with a Backend instance; pass them to its constructor.")
        return backend
    if not isinstance(backend, str) or backend not in _REGISTRY:
        raise_invalid("backend", None, f"one of {available_backends()} or a Backend instance", backend)
    entry = _REGISTRY[backend]
    if isinstance(entry, str):
        module_name, class_name = entry.split(":")
        entry = getattr(importlib.import_module(module_name), class_name)
    return entry(**options)


def check_n_jobs(n_jobs, owner=None):
    """Refuse an ``n_jobs`` that is not a non-zero int or None (in the caller's thread).

    Examples
    --------
    >>> check_n_jobs(0, "Workflow.run")
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'n_jobs' parameter of Workflow.run must be a non-zero int or None; got 0 instead.
    """
    validate_params({"n_jobs": n_jobs}, N_JOBS_CONSTRAINTS, owner)


def joblib_n_jobs(n_jobs):
    """``n_jobs``, or for None the ``n_jobs`` of joblib's active ``parallel_config`` (None when no context sets it).

    As in scikit-learn, ``with joblib.parallel_config(n_jobs=2): wf.run()``
    runs 2 workers, and a ``"sequential"`` backend one.  joblib keeps its
    context per thread: call this in the caller's thread, before a run's
    driver thread starts.

    Examples
    --------
    >>> from joblib import parallel_config
    >>> with parallel_config(n_jobs=2):
    ...     joblib_n_jobs(None), joblib_n_jobs(3)
    (2, 3)
    """
    if n_jobs is not None:
        return n_jobs
    from joblib.parallel import get_active_backend

    backend, context_n_jobs = get_active_backend()
    if type(backend).__name__ == "SequentialBackend":
        return 1
    return context_n_jobs


def effective_n_jobs(n_jobs):
    """Number of workers for ``n_jobs``: None or -1 = all cores, -2 = all but one, ...

    A run resolves ``n_jobs=None`` with :func:`joblib_n_jobs` first (a
    joblib ``parallel_config(n_jobs=...)`` around the call decides, as in
    scikit-learn); what is still None here means all cores, like -1.
    scikit-learn's None means 1, but mempamal exists to run tasks in
    parallel: a default that runs them one by one would make every plain
    ``wf.run()`` a serial run.  Backends that connect to running workers
    (a user's ipyparallel or Dask cluster) ignore ``n_jobs`` and use all of them.

    Examples
    --------
    >>> effective_n_jobs(2)
    2
    >>> effective_n_jobs(None) == effective_n_jobs(-1) == (os.cpu_count() or 1)
    True
    """
    cpus = os.cpu_count() or 1
    check_n_jobs(n_jobs)
    if n_jobs is None:
        return cpus
    if n_jobs < 0:
        return max(1, cpus + 1 + int(n_jobs))
    return int(n_jobs)


def check_backend(backend, n_jobs, options):
    """The backend ``backend=`` names with ``options``, checked before anything is written.

    Raises for an unknown backend, options it does not take, a wrong
    ``n_jobs``, and (through :mod:`~mempamal.backends.main_guard`) a script
    whose spawned workers would import it and start the run again.

    Examples
    --------
    >>> type(check_backend("local", 2, {})).__name__
    'LocalBackend'
    """
    runner = get_backend(backend, **options)
    if n_jobs is not None:
        check_n_jobs(n_jobs)
    if getattr(runner, "imports_main_script", False):
        from .main_guard import check_main_guard

        check_main_guard(backend if isinstance(backend, str) else type(runner).__name__)
    return runner


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
class RunObserver:
    """What the backend driving one run tells that run: the batches executing now.

    Each :class:`mempamal.Run` owns one and hands it to ``Backend.run``
    (``observer=``); nothing about executing tasks is kept per process, so
    two runs of one process (two notebook cells) never see, or clear, each
    other's.  A batch is a list of task ids one worker runs in order: it
    counts one executing task, its first one without an output.  Backends
    report events (:meth:`started`, :meth:`finished`) or, when they poll a
    scheduler, the whole picture (:meth:`now_executing`); the run's driver
    thread writes and ``Run.status()`` reads from another thread, hence the lock.

    Examples
    --------
    >>> observer = RunObserver()
    >>> observer.started(["fit-o0-i0-c0", "fit-o0-i1-c0"])
    >>> sorted(observer.executing(done={"fit-o0-i0-c0"}))
    ['fit-o0-i1-c0']
    >>> observer.finished(["fit-o0-i0-c0", "fit-o0-i1-c0"])
    >>> observer.executing(done=set())
    set()
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._batches = {}  # tuple of task ids -> how many times it executes now

    def started(self, task_ids):
        """A worker began running the batch ``task_ids``.

        Examples
        --------
        >>> RunObserver().started(["fit-o0-i0-c0"])
        """
        key = tuple(task_ids)
        with self._lock:
            self._batches[key] = self._batches.get(key, 0) + 1

    def finished(self, task_ids):
        """The batch ``task_ids`` no longer executes (returned, failed, aborted or its worker died).

        Examples
        --------
        >>> observer = RunObserver(); observer.started(["final"]); observer.finished(["final"])
        """
        key = tuple(task_ids)
        with self._lock:
            count = self._batches.pop(key, 0) - 1
            if count > 0:
                self._batches[key] = count

    def now_executing(self, batches):
        """Exactly ``batches`` execute now (a poll of a scheduler: Slurm, soma-workflow).

        Examples
        --------
        >>> observer = RunObserver()
        >>> observer.now_executing([["fit-o0-i0-c0"], ["fit-o1-i0-c0"]])
        >>> sorted(observer.executing(done=set()))
        ['fit-o0-i0-c0', 'fit-o1-i0-c0']
        >>> observer.now_executing([]); observer.executing(done=set())
        set()
        """
        counts = {}
        for batch in batches:
            counts[tuple(batch)] = counts.get(tuple(batch), 0) + 1
        with self._lock:
            self._batches = counts

    def executing(self, done):
        """Ids of the tasks executing now; ``done`` are the finished ids (skipped in a batch).

        Examples
        --------
        >>> RunObserver().executing(done=set())
        set()
        """
        with self._lock:
            batches = list(self._batches)
        running = set()
        for batch in batches:
            running.update(next(([t] for t in batch if t not in done), []))
        return running


def allow_version_mismatch(workflow):
    """Whether the run of ``workflow`` going on lets tasks run under other library versions than the build's.

    ``Workflow.run(allow_version_mismatch=True)`` sets it on the workflow
    for the run (one runner per workdir: the lock); a backend carries it to
    its tasks (``run_batch``'s argument, ``mempamal task
    --allow-version-mismatch`` in job commands).

    Examples
    --------
    >>> allow_version_mismatch(object())
    False
    """
    return bool(getattr(workflow, "allow_version_mismatch", False))


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
