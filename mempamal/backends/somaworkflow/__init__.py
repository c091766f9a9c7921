"""The ``soma-workflow`` backend: one Job per bundle, submitted through a WorkflowController.

============================  ==================================================
module                        job
============================  ==================================================
:mod:`~.backend`              :class:`~mempamal.backends.somaworkflow.backend.SomaWorkflowBackend`
:mod:`~.jobs`                 the soma-workflow ``Workflow`` of a run and its export
:mod:`~.engine`               the in-process (light mode) engine's settings and shutdown
:mod:`~.status`               job statuses mapped back to tasks, the submission record
:mod:`~.resource`             a configured resource (a cluster) and its environment
============================  ==================================================

Examples
--------
>>> from mempamal.backends.base import available_backends
>>> "soma-workflow" in available_backends()
True
"""
