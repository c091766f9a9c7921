"""Execution backends: local processes, ipyparallel, Dask, soma-workflow, exports."""

from .base import Backend, RunObserver, available_backends, effective_n_jobs, get_backend, register_backend
from .dispatch_loop import WorkerPool, dispatch

__all__ = ["Backend", "RunObserver", "WorkerPool", "available_backends", "dispatch", "effective_n_jobs",
           "get_backend", "register_backend"]
