"""The graph layer: a workdir's tasks and their state, read from the store.

============================  ==================================================
module                        job
============================  ==================================================
:mod:`~.state`                :class:`~mempamal.graph.state.TaskGraph`: tasks, status counts, what is done
:mod:`~.submissions`          the record of a job-based run (who runs it, which jobs)
:mod:`~.schedule`             critical path and list scheduling of the graph on N workers
============================  ==================================================

It never imports the api above it; the backends and the engine below never
import it.

Examples
--------
>>> from mempamal.graph.state import TaskGraph
>>> TaskGraph.__name__
'TaskGraph'
"""
