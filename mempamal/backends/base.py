"""Backend base class and registry (joblib's ``register_parallel_backend`` is the model).

A backend receives the workflow and the ids still to run and runs them in
dependency order.  It returns ``{task_id: error message}`` for the tasks that
failed (an empty dict when all went well); tasks depending on a failed task
are not run.

Adding one is one class and one registry line::

    class MyBackend(mp.Backend):
        def run(self, workflow, task_ids, n_jobs=None, progress=True):
            ...

    mp.register_backend("mine", MyBackend)
"""

import importlib
import os

_REGISTRY = {
    # Built-in backends are imported on first use so that `import mempamal`
    # never imports ipyparallel or soma-workflow.
    "local": "mempamal.backends.local:LocalBackend",
    "ipyparallel": "mempamal.backends.ipyparallel:IPyParallelBackend",
    "soma-workflow": "mempamal.backends.somaworkflow:SomaWorkflowBackend",
}


class Backend:
    """Runs tasks of a :class:`mempamal.Workflow`; subclasses implement :meth:`run`.

    Keyword arguments given to ``Workflow.run`` beyond ``backend``, ``n_jobs``
    and ``progress`` reach the backend's constructor.
    """

    name = None

    def __init__(self, **options):
        if options:
            raise TypeError(f"The {self.name!r} backend takes no options; got {sorted(options)}.")

    def run(self, workflow, task_ids, n_jobs=None, progress=True):
        """Run ``task_ids`` (dependency order); return ``{task_id: message}`` of failures."""
        raise NotImplementedError


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


def dependency_order(workflow, task_ids):
    """``(ids, deps)``: ids in a runnable order and each id's unfinished deps."""
    wanted = set(task_ids)
    by_id = {task.id: task for task in workflow.tasks}
    deps = {task_id: [d for d in by_id[task_id].deps if d in wanted] for task_id in task_ids}
    return list(task_ids), deps


def make_progress(total, progress, desc="mempamal"):
    """A tqdm bar (widget in notebooks, text in terminals) or a silent stand-in."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="task", disable=not progress, dynamic_ncols=True)
