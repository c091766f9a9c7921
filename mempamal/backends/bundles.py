"""Bundles: several tasks of one dependency level run by one job.

A cluster job costs an interpreter start (about a second with scikit-learn's
imports) plus the scheduler's own latency; a tiny task costs milliseconds.
Job-based routes (soma-workflow, slurm, the shell/makefile/commands exports)
therefore run *bundles*: ``python -m mempamal task WORKDIR ID [ID ...]``
runs the bundle's tasks one after the other in one interpreter, each still
writing its own output (resume stays at task granularity).

Bundles never mix dependency levels (a task's level is the length of the
longest chain of unfinished tasks before it), so a bundle only waits for
bundles of lower levels.  Inside a level, tasks keep the graph's order
(neighbours share an outer fold and so the same cached data) and are cut
into bundles of about equal estimated cost.

Sizing (one of):

``job_seconds``
    target duration of a job.  A task's cost is the median duration of the
    finished tasks of its kind in this workdir when there are some (each
    output records its start and end), else :data:`ESTIMATED_SECONDS`.
``tasks_per_job``
    a fixed number of tasks per job.

Either way a level with ``N`` tasks gets at least ``min(n_workers, N)``
bundles, so bundling never removes parallelism the workers could use.
"""

import math
import numbers
import statistics
from dataclasses import dataclass
from pathlib import Path

from .. import store
from .._constraints import Interval, invalid, validate_params
from ..store import integrity
from ..store.records import TaskOutput
from ..store.tasktable import task_command
from .base import allow_version_mismatch

#: Guess of a task's duration (seconds) by kind, used until tasks of that
#: kind have finished in the workdir.  A ``fit`` task's guess is per grid point.
ESTIMATED_SECONDS = {"fit": 0.05, "select": 0.1, "score": 0.1, "final": 0.5, "fit-all": 0.05, "select-all": 0.1}
#: How many finished outputs per kind are read to measure durations.
MEASURED_SAMPLE = 25


@dataclass(frozen=True)
class Bundle:
    """Tasks one job runs, in order.

    Attributes
    ----------
    id : str
        ``bundle-<level>-<index>``, unique within one bundling.
    task_ids : tuple of str
        The tasks, in dependency order.
    deps : tuple of str
        Ids of the bundles holding this bundle's tasks' dependencies.
    level : int
        Dependency level shared by all its tasks.
    seconds : float
        Estimated duration (sum of its tasks' estimates).
    measured : bool
        True when ``seconds`` comes from measured durations (outputs of this
        workdir or the run's estimate) for every task, not from the guesses
        of :data:`ESTIMATED_SECONDS`: only then may a job's time limit be
        derived from it.

    Examples
    --------
    >>> Bundle("bundle-0-0", ("fit-o0-i0-c0", "fit-o0-i1-c0"), (), 0, 0.1).task_ids
    ('fit-o0-i0-c0', 'fit-o0-i1-c0')
    """

    id: str
    task_ids: tuple
    deps: tuple
    level: int
    seconds: float
    measured: bool = False


#: The sizing options of the job backends and of make_bundles.
BUNDLE_CONSTRAINTS = {
    "job_seconds": [Interval(numbers.Real, 0, math.inf, closed="neither"), None],
    "tasks_per_job": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "n_workers": [Interval(numbers.Integral, 1, None, closed="left")],
}


def check_bundle_options(job_seconds, tasks_per_job, owner):
    """Validate the sizing options; ``owner`` names the caller in messages.

    Examples
    --------
    >>> check_bundle_options(None, 0, "the 'slurm' backend")
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'tasks_per_job' parameter of the 'slurm' backend must be an int in the range [1, inf) or None; got 0 instead.
    """
    validate_params({"job_seconds": job_seconds, "tasks_per_job": tasks_per_job}, BUNDLE_CONSTRAINTS, owner)
    if job_seconds is not None and tasks_per_job is not None:
        raise invalid(f"Give {owner} either 'job_seconds' or 'tasks_per_job', not both; "
                      f"got job_seconds={job_seconds!r} and tasks_per_job={tasks_per_job!r}.")


def dependency_levels(tasks, task_ids):
    """``{task_id: level}`` over ``task_ids``; dependencies outside it are finished.

    ``tasks`` are the workflow's tasks in dependency order.

    Examples
    --------
    >>> from types import SimpleNamespace as T
    >>> tasks = [T(id="a", deps=()), T(id="b", deps=()), T(id="c", deps=("a", "b"))]
    >>> dependency_levels(tasks, ["a", "c"])
    {'a': 0, 'c': 1}
    """
    wanted = set(task_ids)
    levels = {}
    for task in tasks:
        if task.id in wanted:
            levels[task.id] = 1 + max((levels[d] for d in task.deps if d in levels), default=-1)
    return levels


def measured_seconds(workdir, tasks, sample=MEASURED_SAMPLE):
    """Median duration by kind of finished tasks (``{kind: seconds}``, kinds with outputs only).

    A ``fit`` task's duration is divided by its number of grid points, so that
    chunks of different sizes share one per-point cost.

    Examples
    --------
    >>> sorted(measured_seconds(wf.workdir, wf.tasks))
    ['final', 'fit', 'fit-all', 'select', 'select-all']
    """
    done = store.finished_task_ids(workdir)
    durations = {}
    for task in tasks:
        if task.id not in done or len(durations.get(task.kind, ())) >= sample:
            continue
        output = integrity.load_output(store.output_path(workdir, task.id))[0]
        try:
            run = TaskOutput.from_json(output).run
        except (TypeError, store.WorkdirError):  # untrusted (None), or another record version
            continue  # no timing to learn from
        seconds = float(run.end) - float(run.start)
        durations.setdefault(task.kind, []).append(seconds / _points(task))
    return {kind: statistics.median(values) for kind, values in durations.items()}


def _points(task):
    return max(1, len(task.points)) if task.kind in ("fit", "fit-all") and task.points else 1


def make_bundles(workflow, task_ids, n_workers=1, job_seconds=None, tasks_per_job=None, costs=None):
    """Group ``task_ids`` of ``workflow`` into :class:`Bundle` s, lowest level first.

    Without ``job_seconds`` and ``tasks_per_job`` every task is its own bundle.
    ``costs`` (``{task_id: seconds}``, e.g. a run's estimate) replaces the
    measured medians and guesses for the tasks it names.

    Examples
    --------
    >>> bundles = make_bundles(wf, [task.id for task in wf.tasks], n_workers=4, tasks_per_job=8)
    >>> [(b.id, len(b.task_ids)) for b in bundles]
    [('bundle-0-0', 6), ('bundle-0-1', 6), ('bundle-0-2', 6), ('bundle-0-3', 6), ('bundle-1-0', 1), ('bundle-1-1', 1), ('bundle-1-2', 1), ('bundle-1-3', 1), ('bundle-2-0', 1)]
    >>> all(b.level == 0 for b in make_bundles(wf, [t.id for t in wf.tasks if t.kind == "fit"], n_workers=4, job_seconds=60))
    True
    >>> fits = [t.id for t in wf.tasks if t.kind == "fit"]   # an estimate says 30 s each: two per 60-s job
    >>> [len(b.task_ids) for b in make_bundles(wf, fits, job_seconds=60, costs={t: 30.0 for t in fits})][:3]
    [2, 2, 2]
    """
    check_bundle_options(job_seconds, tasks_per_job, "make_bundles")
    validate_params({"n_workers": n_workers}, BUNDLE_CONSTRAINTS, "make_bundles")
    tasks = workflow.tasks
    levels = dependency_levels(tasks, task_ids)
    by_id = {task.id: task for task in tasks if task.id in levels}
    known = {} if costs is None else {task_id: float(costs[task_id]) for task_id in levels if task_id in costs}
    costs, measured = _task_costs(Path(workflow.workdir), tasks, by_id.values()) if job_seconds or known else ({}, set())
    costs.update(known)
    measured |= set(known)
    per_level = {}
    for task in tasks:
        if task.id in levels:
            per_level.setdefault(levels[task.id], []).append(task.id)
    bundles, bundle_of = [], {}
    for level in sorted(per_level):
        ids = per_level[level]
        for index, members in enumerate(_split(ids, costs, n_workers, job_seconds, tasks_per_job)):
            bundle_id = f"bundle-{level}-{index}"
            deps = []
            for task_id in members:
                for dep in by_id[task_id].deps:
                    owner = bundle_of.get(dep)
                    if owner is not None and owner not in deps:
                        deps.append(owner)
            for task_id in members:
                bundle_of[task_id] = bundle_id
            bundles.append(Bundle(bundle_id, tuple(members), tuple(deps), level,
                                  sum(costs.get(task_id, 0.0) for task_id in members),
                                  all(task_id in measured for task_id in members)))
    return bundles


def _task_costs(workdir, tasks, wanted):
    """``({task_id: seconds}, ids whose cost is measured rather than guessed)``."""
    measured = measured_seconds(workdir, tasks)
    costs = {task.id: measured.get(task.kind, ESTIMATED_SECONDS.get(task.kind, 0.1)) * _points(task)
             for task in wanted}
    return costs, {task.id for task in wanted if task.kind in measured}


def _split(ids, costs, n_workers, job_seconds, tasks_per_job):
    """Cut one level's ids (kept in order) into bundles of about equal cost."""
    if job_seconds is None and tasks_per_job is None:
        return [[task_id] for task_id in ids]
    if tasks_per_job is not None:
        n_bundles = math.ceil(len(ids) / tasks_per_job)
        weights = [1.0] * len(ids)
    else:
        weights = [costs[task_id] for task_id in ids]
        n_bundles = math.ceil(sum(weights) / job_seconds)
    # Never fewer bundles than workers while there are enough tasks.
    n_bundles = max(1, min(len(ids), max(n_bundles, n_workers)))
    if not sum(weights):  # every measured duration 0 (clock resolution): split by count
        weights = [1.0] * len(ids)
    total = sum(weights)
    groups = [[] for _ in range(n_bundles)]
    cumulative = 0.0
    for task_id, weight in zip(ids, weights):
        # A task goes where its cost's midpoint falls: contiguous, balanced groups.
        index = min(n_bundles - 1, int((cumulative + weight / 2) / total * n_bundles))
        groups[index].append(task_id)
        cumulative += weight
    return [group for group in groups if group]


def bundle_entries(workflow, bundles, python=None, workdir=None):
    """One :func:`mempamal.backends.export.command_entries`-like row per :class:`mempamal.backends.bundles.Bundle`.

    ``id`` and ``deps`` are bundle ids, ``tasks`` the bundle's task ids, and
    ``cmd`` runs them all in one interpreter; ``outer`` / ``split_set`` are
    the tasks' common values, or None when they differ.

    Examples
    --------
    >>> rows = bundle_entries(wf, make_bundles(wf, [task.id for task in wf.tasks], tasks_per_job=10))
    >>> n = len(rows[0]["tasks"]); rows[0]["cmd"][-n:] == list(rows[0]["tasks"])
    True
    """
    target = workdir or workflow.workdir
    prefix = list(task_command(target, "", python or workflow.manifest.get("python"))[:-2])
    if allow_version_mismatch(workflow):  # Workflow.run(allow_version_mismatch=True)
        prefix.append("--allow-version-mismatch")
    prefix.append(str(target))
    rows = []
    for bundle in bundles:
        members = [workflow.task(task_id) for task_id in bundle.task_ids]
        outers = {task.outer for task in members}
        split_sets = {task.split_set for task in members}
        rows.append({"id": bundle.id, "cmd": prefix + list(bundle.task_ids), "deps": list(bundle.deps),
                     "kind": members[0].kind if len({t.kind for t in members}) == 1 else None,
                     "outer": outers.pop() if len(outers) == 1 else None,
                     "split_set": split_sets.pop() if len(split_sets) == 1 else None,
                     "tasks": list(bundle.task_ids)})
    return rows
