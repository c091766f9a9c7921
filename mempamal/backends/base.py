"""Backend base class and registry (joblib's ``register_parallel_backend`` is the model).

A backend receives the workflow and the ids still to run and runs them in
dependency order.  It returns ``{task_id: error message}`` for the tasks that
failed (an empty dict when all went well); tasks depending on a failed task
are not run.

A run may be driven from a background thread (``Workflow.submit``): it then
gets a ``stop`` :class:`threading.Event`; once it is set the backend stops
submitting, aborts what it started (finished outputs stay) and raises
:class:`RunCancelled`.

Adding one is one class and one registry line::

    class MyBackend(mp.Backend):
        def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None):
            ...

    mp.register_backend("mine", MyBackend)
"""

import abc
import importlib
import os
from collections import deque

_REGISTRY = {
    # Built-in backends are imported on first use so that `import mempamal`
    # never imports ipyparallel or soma-workflow.
    "local": "mempamal.backends.local:LocalBackend",
    "ipyparallel": "mempamal.backends.ipyparallel:IPyParallelBackend",
    "soma-workflow": "mempamal.backends.somaworkflow:SomaWorkflowBackend",
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
    """Runs tasks of a :class:`mempamal.Workflow`; subclasses implement :meth:`run`.

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
    """Names of the registered backends."""
    return sorted(_REGISTRY)


def get_backend(backend, **options):
    """An instance of the backend named ``backend`` (or ``backend`` itself)."""
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
    """Workers for ``n_jobs`` with scikit-learn's convention (None = 1, -1 = all cores)."""
    cpus = os.cpu_count() or 1
    if n_jobs is None:
        return 1
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
        wanted = set(task_ids)
        by_id = {task.id: task for task in workflow.tasks}
        self.waiting_on = {i: {d for d in by_id[i].deps if d in wanted} for i in task_ids}
        self.dependents = {}
        for task_id, deps in self.waiting_on.items():
            for dep in deps:
                self.dependents.setdefault(dep, []).append(task_id)
        self.ready = deque(i for i in task_ids if not self.waiting_on[i])

    def finished(self, task_id):
        for child in self.dependents.get(task_id, ()):
            self.waiting_on[child].discard(task_id)
            if not self.waiting_on[child]:
                self.ready.append(child)

    def blocked_by(self, task_id):
        """Every task that (transitively) depends on ``task_id``."""
        blocked, stack = set(), [task_id]
        while stack:
            for child in self.dependents.get(stack.pop(), ()):
                if child not in blocked:
                    blocked.add(child)
                    stack.append(child)
        return blocked

    def record(self, task_id, error, failed, bar=None):
        """Mark ``task_id`` finished (``error`` None) or failed, blocking its dependents."""
        if error is None:
            self.finished(task_id)
            if bar is not None:
                bar.update(1)
            return
        failed[task_id] = error
        blocked = self.blocked_by(task_id)
        for child in blocked:
            failed.setdefault(child, f"not run: depends on failed task {task_id!r}")
        if bar is not None:
            bar.update(1 + len(blocked))


def make_progress(total, progress, desc="mempamal"):
    """A tqdm bar (widget in notebooks, text in terminals) or a silent stand-in."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="task", disable=not progress, dynamic_ncols=True)
