"""Execution backends: local processes, ipyparallel, soma-workflow, exports."""

from .base import Backend, available_backends, effective_n_jobs, get_backend, register_backend

__all__ = ["Backend", "available_backends", "effective_n_jobs", "get_backend", "register_backend"]
