"""The ``slurm`` backend: sbatch arrays of bundles with ``afterok`` dependencies, polled; no server.

============================  ==================================================
module                        job
============================  ==================================================
:mod:`~.backend`              :class:`~mempamal.backends.slurm.backend.SlurmBackend`: submit, poll, cancel, attach
:mod:`~.script`               the array job scripts and the plan of arrays per level
:mod:`~.follow`               waiting for a submission: rounds of arrays, stuck arrays cancelled
:mod:`~.watcher`              the one watcher per process: one squeue per tick for every run, backing off
:mod:`~.retry`                lost jobs (walltime, preemption, dead node) versus tasks that raised
============================  ==================================================

Examples
--------
>>> from mempamal.backends.base import available_backends
>>> "slurm" in available_backends()
True
"""
