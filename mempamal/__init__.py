"""mempamal: Means for EMbarrassingly PArallel MAchine Learning.

scikit-learn evaluations (cross-validation, nested cross-validation with
model selection, permutation tests) as explicit, resumable task graphs run
on a laptop, on ipyparallel engines or through Soma-Workflow.

Examples
--------
>>> import mempamal as mp
>>> exp = mp.Experiment(estimator, param_grid=grid, cv=5, inner_cv=3)   # doctest: +SKIP
>>> res = exp.run(X, y, workdir="runs/demo", n_jobs=-1)                 # doctest: +SKIP
"""

__version__ = "0.1.0"

# Public names are imported lazily: `import mempamal` must stay fast and must
# not import scikit-learn, IPython or a backend before they are needed.
_EXPORTS = {
    "Experiment": "mempamal.experiment",
    "Workflow": "mempamal.workflow",
    "Task": "mempamal.workflow",
    "WorkflowError": "mempamal.workflow",
    "Results": "mempamal.results",
    "Run": "mempamal.run",
    "Backend": "mempamal.backends.base",
    "RunCancelled": "mempamal.backends.base",
    "register_backend": "mempamal.backends.base",
    "available_backends": "mempamal.backends.base",
    "run_task": "mempamal.tasks",
    "TaskError": "mempamal.tasks",
    "WorkdirError": "mempamal.store",
    "WorkdirLocked": "mempamal.lock",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mempamal' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))


def load_ipython_extension(ipython):
    """``%load_ext mempamal``: register the ``%mempamal`` / ``%%mempamal`` magics."""
    from .jupyter.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython):
    """``%unload_ext mempamal``."""
    from .jupyter.magics import unload_ipython_extension as unload

    unload(ipython)
