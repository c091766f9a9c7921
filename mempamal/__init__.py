"""mempamal: Means for EMbarrassingly PArallel MAchine Learning.

scikit-learn evaluations (cross-validation, nested cross-validation with
model selection, permutation tests) as explicit, resumable task graphs run
on a laptop, on ipyparallel engines or through Soma-Workflow.

Examples
--------
>>> import mempamal as mp
>>> exp = mp.Experiment(estimator, param_grid=grid, cv=2, inner_cv=2)
>>> res = exp.run(X, y, workdir="runs/demo", n_jobs=1, progress=False)
>>> res.best_params_
{'clf__C': 10.0}
"""

from ._version import __version__  # noqa: F401

# Public names are imported lazily: `import mempamal` must stay fast and must
# not import scikit-learn, IPython or a backend before they are needed.
_EXPORTS = {
    "Experiment": "mempamal.experiment",
    "Workflow": "mempamal.workflow",
    "Task": "mempamal.store.tasktable",
    "Results": "mempamal.results",
    "Run": "mempamal.run",
    "Estimate": "mempamal.estimate",
    "Backend": "mempamal.backends.base",
    "JobBackend": "mempamal.backends.base",
    "register_backend": "mempamal.backends.base",
    "available_backends": "mempamal.backends.base",
    "run_task": "mempamal.engine.tasks",
    "compare": "mempamal.model_comparison",
    "ComparisonDisplay": "mempamal.display.comparison",
    # One error family (mempamal.exceptions): each also derives from the
    # builtin a caller expects.
    "MempamalError": "mempamal.exceptions",
    "InvalidParameterError": "mempamal.exceptions",
    "WorkdirError": "mempamal.exceptions",
    "DiskFullError": "mempamal.exceptions",
    "WorkdirLocked": "mempamal.exceptions",
    "TaskError": "mempamal.exceptions",
    "VersionMismatchError": "mempamal.exceptions",
    "WorkflowError": "mempamal.exceptions",
    "RunCancelled": "mempamal.exceptions",
    "SetupError": "mempamal.exceptions",
    "BackendError": "mempamal.exceptions",
    "ClusterUnreachable": "mempamal.exceptions",
    "MissingDependency": "mempamal.exceptions",
    "RunTimeout": "mempamal.exceptions",
    "WorkersLost": "mempamal.exceptions",
    # `%load_ext mempamal` looks these up here; they live in the Jupyter skin.
    "load_ipython_extension": "mempamal.jupyter.magics",
    "unload_ipython_extension": "mempamal.jupyter.magics",
}

__all__ = sorted(name for name in _EXPORTS if not name.endswith("_extension"))


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mempamal' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
