"""The ``slurm`` backend: sbatch arrays of bundles with ``afterok`` dependencies, polled; no server.

============================  ==================================================
module                        job
============================  ==================================================
:mod:`~.backend`              :class:`~mempamal.backends.slurm.backend.SlurmBackend`: submit, poll, cancel, attach
:mod:`~.script`               the array job scripts and the plan of arrays per level
============================  ==================================================

Examples
--------
>>> from mempamal.backends.base import available_backends
>>> "slurm" in available_backends()
True
"""
