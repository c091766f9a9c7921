"""How long a task graph takes on some workers, given each task's cost: critical path and list scheduling.

Both read only the tasks' ids and dependencies (a :class:`~mempamal.store.tasktable.TaskTable`
or any records with ``id`` and ``deps``, dependencies first) and a cost per
task in seconds.  :func:`list_schedule` replays what the backends do with
the shared :class:`~mempamal.backends.tracker.DependencyTracker`: a free
worker takes the first ready job; a job that becomes ready goes to the front
of the queue (a ``select`` runs as soon as its fits are done), so the
makespan it returns is the one of the real dispatch order, not an
idealised bound.  ``Workflow.estimate`` and ``benchmarks/sim_cluster.py``
use it.
"""

import heapq
from collections import deque, namedtuple

Schedule = namedtuple("Schedule", "makespan driver_busy n_jobs")
Schedule.__doc__ = """What :func:`list_schedule` found: seconds until the last job ends, seconds the
driver spent dispatching, jobs dispatched.

Examples
--------
>>> Schedule(10.0, 0.0, 3).makespan
10.0
"""


def critical_path(tasks, cost, done=()):
    """The longest chain of task costs through the dependencies (tasks in ``done`` cost nothing).

    Examples
    --------
    >>> from types import SimpleNamespace as T
    >>> tasks = [T(id="a", deps=()), T(id="b", deps=()), T(id="c", deps=("a", "b"))]
    >>> critical_path(tasks, {"a": 1.0, "b": 3.0, "c": 2.0})
    5.0
    """
    done = set(done)
    finish = {}
    for task in tasks:  # graph order: dependencies first
        own = 0.0 if task.id in done else cost[task.id]
        finish[task.id] = own + max((finish[dep] for dep in task.deps), default=0.0)
    return max(finish.values(), default=0.0)


def list_schedule(tasks, cost, workers, jobs=None, done=(), job_overhead=0.0, dispatch_seconds=0.0):
    """Simulate a run of ``tasks`` on ``workers`` workers; return a :class:`Schedule`.

    ``jobs`` groups task ids that one worker runs in order (bundles; each
    task alone by default); a job is ready once every dependency outside it
    is finished.  Tasks in ``done`` are not run.  A job occupies its worker
    for ``job_overhead`` plus its tasks' costs; the one driver spends
    ``dispatch_seconds`` per job it hands out, one after the other.

    On one worker with no overheads the makespan is the sum of the costs;
    on any number it is at least :func:`critical_path`.

    Examples
    --------
    >>> from types import SimpleNamespace as T
    >>> tasks = [T(id="a", deps=()), T(id="b", deps=()), T(id="c", deps=("a", "b"))]
    >>> cost = {"a": 1.0, "b": 3.0, "c": 2.0}
    >>> list_schedule(tasks, cost, workers=1).makespan, list_schedule(tasks, cost, workers=2).makespan
    (6.0, 5.0)
    """
    if workers < 1:
        from .._constraints import invalid

        raise invalid(f"The 'workers' parameter of list_schedule must be an int >= 1; got {workers!r} instead.")
    done = set(done)
    deps = {task.id: [dep for dep in task.deps if dep not in done] for task in tasks if task.id not in done}
    jobs = [[task_id] for task_id in deps] if jobs is None else [[t for t in job if t in deps] for job in jobs]
    jobs = [job for job in jobs if job]
    job_of = {task_id: index for index, job in enumerate(jobs) for task_id in job}
    waiting = [0] * len(jobs)
    dependents = [[] for _ in jobs]
    for index, job in enumerate(jobs):
        for task_id in job:
            for dep in deps[task_id]:
                if job_of[dep] != index:
                    waiting[index] += 1
                    dependents[job_of[dep]].append(index)
    ready = deque(index for index in range(len(jobs)) if not waiting[index])
    running, free = [], workers
    clock = driver_clock = driver_busy = 0.0
    while ready or running:
        while ready and free:
            index = ready.popleft()
            start = max(clock, driver_clock) + dispatch_seconds
            driver_clock, driver_busy, free = start, driver_busy + dispatch_seconds, free - 1
            seconds = job_overhead + sum(cost[task_id] for task_id in jobs[index])
            heapq.heappush(running, (start + seconds, index))
        clock, index = heapq.heappop(running)
        free += 1
        for child in dependents[index]:
            waiting[child] -= 1
            if not waiting[child]:
                ready.appendleft(child)  # ahead of the queue, as DependencyTracker does
    return Schedule(clock, driver_busy, len(jobs))
