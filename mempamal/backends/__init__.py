"""Execution backends: local processes, ipyparallel, Dask, soma-workflow, exports."""

from .base import Backend, WorkerPool, available_backends, dispatch, effective_n_jobs, get_backend, register_backend

__all__ = ["Backend", "WorkerPool", "available_backends", "dispatch", "effective_n_jobs", "get_backend",
           "register_backend"]
