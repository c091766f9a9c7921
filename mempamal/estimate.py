"""Estimate before launching: run a small sample of a workflow's real tasks, predict the whole run.

``wf.estimate(n_jobs=2)`` picks a few tasks (:func:`mempamal.cost_model.choose_sample`), runs
them through the backend exactly as ``wf.run`` would -- their outputs are
ordinary outputs, so the sample is done work that the next run does not
repeat -- and reads from each output what the task cost (``run_task``
records its wall time, CPU time and the worker's peak memory).  From those
costs it predicts every task's cost (:func:`mempamal.cost_model.task_costs`), then schedules
the graph on the workers as the backends do
(:func:`mempamal.graph.schedule.list_schedule`) for the wall time.

Which tasks are sampled and how their costs extrapolate: :mod:`mempamal.cost_model`.
"""

import math
import os
import time

from .cost_model import SplitSizes, choose_sample, mean, read_costs, task_costs
from .graph.schedule import critical_path, list_schedule
from .store.tasktable import MAIN

#: Seconds each task costs beyond its own work (dispatch, writing its output).
DISPATCH_SECONDS = 0.005
#: A whole outer fold (its fits and select) is sampled when it is at most this share of the work.
FOLD_SHARE = 0.03
#: Backends that run jobs (a job should last long enough to pay for its start).
JOB_SECONDS_RANGE = (60.0, 1800.0)


class Estimate:
    """What a whole run of a workflow will cost, predicted from a sample of its tasks.

    Returned by :meth:`mempamal.Workflow.estimate`.

    Attributes
    ----------
    cpu_seconds : float
        CPU time of every task of the workflow (done ones as measured).
    wall_seconds : float
        Wall time of the whole workflow from scratch on ``n_workers`` workers,
        with the worker start-up the sample's run took (``startup_seconds``:
        0 when this call ran no sample).
    work_seconds : float
        The sum of every task's predicted wall time: the wall time on one
        worker, without start-up.
    remaining_wall_seconds, remaining_cpu_seconds : float
        The same for what is left after the sample (what the next run does).
    critical_path_seconds : float
        The longest chain of dependent tasks: no number of workers is faster.
    peak_memory_bytes : int
        Predicted peak resident memory of one worker.
    n_workers : int
        Workers the prediction is for.
    backend : str
        Where the sample ran.
    sample : tuple of str
        The ids of the sampled tasks (now done).
    sample_seconds : float
        Wall time the sample took.
    job_seconds : float or None
        For job-based backends (Slurm, soma-workflow): a ``job_seconds``
        that bundles tasks into jobs long enough to pay for their start,
        with a few jobs per worker; None for the others.
    warnings : list of str
        Memory that ``n_workers`` workers would exceed, threads that would
        oversubscribe the cores.
    by_kind : dict
        Per task kind: ``{"tasks", "sampled", "cpu_seconds", "wall_seconds"}``.

    Examples
    --------
    >>> est = wf.estimate(n_jobs=2)
    >>> est
    <Estimate: ~... of CPU, ~... on 2 workers, ≤ ... per worker (sample: ...)>
    """

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def to_dict(self):
        """The estimate as plain JSON-ready values.

        Examples
        --------
        >>> sorted(wf.estimate(n_jobs=2).to_dict())[:3]
        ['backend', 'by_kind', 'cpu_seconds']
        """
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in sorted(self.__dict__.items())}

    def line(self):
        """The one-line summary the repr shows.

        Examples
        --------
        >>> wf.estimate(n_jobs=2).line()
        '~... of CPU, ~... on 2 workers, ≤ ... per worker'
        """
        from .run import format_seconds

        workers = f"{self.n_workers} worker{'s' if self.n_workers != 1 else ''}"
        text = (f"~{format_seconds(self.cpu_seconds)} of CPU, ~{format_seconds(self.wall_seconds)} on {workers}, "
                f"≤ {format_bytes(self.peak_memory_bytes)} per worker")
        if self.warnings:
            text += f" ({len(self.warnings)} warning{'s' if len(self.warnings) > 1 else ''})"
        return text

    def __repr__(self):
        from .run import format_seconds

        return (f"<Estimate: {self.line()} (sample: {len(self.sample)} tasks, "
                f"{format_seconds(self.sample_seconds)}, kept)>")


def format_bytes(size):
    """``1.3e9`` -> ``'1.3 GB'`` (powers of 1000, as ``ls -h --si``).

    Examples
    --------
    >>> format_bytes(1_300_000_000), format_bytes(52_000_000), format_bytes(900)
    ('1.3 GB', '52 MB', '900 B')
    """
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{int(size)} B"


def estimate_workflow(workflow, n_jobs=None, backend="local", memory_available=None, cores=None, **options):
    """Run a sample of ``workflow``'s tasks on ``backend``, then predict the whole run: an :class:`Estimate`.

    The engine of :meth:`mempamal.Workflow.estimate` (see there and the
    module docstring).

    Examples
    --------
    >>> est = estimate_workflow(wf, n_jobs=2)
    """
    from .backends.base import check_backend, effective_n_jobs

    runner = check_backend(backend, n_jobs, options)  # refused before anything runs
    memory_available = _check_positive(memory_available, "memory_available")
    cores = _check_positive(cores, "cores")
    n_workers = effective_n_jobs(n_jobs)
    sizes = SplitSizes(workflow)
    done = workflow.done_ids()
    sample = [task_id for task_id in choose_sample(workflow.table, sizes.prefix_keys) if task_id not in done]
    started = time.perf_counter()
    # One runner for the sample and the fold: the workers start once.  Made
    # from its name, it is kept for the workflow's next run by that name
    # (Workflow._kept_runner), which then does not start workers again.
    try:
        if sample:
            workflow._run_tasks(sample, backend=runner, n_jobs=n_jobs)
        measured = read_costs(workflow, workflow.done_ids())
        fold = _affordable_fold(workflow, sizes, measured)
        if fold:
            workflow._run_tasks(fold, backend=runner, n_jobs=n_jobs)
            measured = read_costs(workflow, workflow.done_ids())
    except BaseException:
        if isinstance(backend, str):
            runner.close()
        raise
    sample_seconds = time.perf_counter() - started
    if isinstance(backend, str):
        workflow._kept_runner.keep(backend, options, runner)
    costs = task_costs(workflow.tasks, sizes, measured)
    return _predict(workflow, sizes, measured, costs, dict(
        n_workers=n_workers, backend=backend if isinstance(backend, str) else type(backend).__name__,
        sample=tuple(sample + fold), sample_seconds=sample_seconds, job_based=_job_based(runner),
        memory_available=memory_available, cores=cores))


def _check_positive(value, name):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        from ._constraints import invalid

        raise invalid(f"The {name!r} parameter of Workflow.estimate must be a positive number or None; "
                      f"got {value!r} instead.")
    return value


def _job_based(runner):
    # Declared by the backend: a JobBackend's jobs outlive the driver.
    return runner.outlives_driver


def _affordable_fold(workflow, sizes, measured):
    """The unfinished tasks of the data's first outer fold when they are a small share of the work, else []."""
    table = workflow.table
    if not table.nested:
        return []
    block = next((b for b in table.blocks() if b.split_set == MAIN and b.outer is not None), None)
    if block is None:
        return []
    ids = [table.id_at(position) for position in range(block.first, block.gather + 1)]
    if all(task_id in measured for task_id in ids):
        return []
    costs = task_costs(workflow.tasks, sizes, measured)
    share = sum(costs[task_id][0] for task_id in ids) / max(sum(cost[0] for cost in costs.values()), 1e-9)
    return [task_id for task_id in ids if task_id not in measured] if share <= FOLD_SHARE else []


def _predict(workflow, sizes, measured, costs, info):
    """The :class:`Estimate` from the costs of every task and what the sample measured."""
    tasks, n_workers = workflow.tasks, info["n_workers"]
    wall = {task_id: seconds + DISPATCH_SECONDS for task_id, (seconds, _) in costs.items()}
    done = workflow.done_ids()
    sample = set(info["sample"])
    sampled = [task for task in tasks if task.id in sample]
    # Worker start-up (processes, imports, loading the workdir) and dispatch:
    # what the sample's run took beyond its tasks scheduled on the workers.
    startup = max(0.0, info["sample_seconds"] - list_schedule(sampled, wall, n_workers).makespan) if sampled else 0.0
    by_kind = {}
    for task in tasks:
        entry = by_kind.setdefault(task.kind, {"tasks": 0, "sampled": 0, "cpu_seconds": 0.0, "wall_seconds": 0.0})
        entry["tasks"] += 1
        entry["sampled"] += task.id in measured
        entry["cpu_seconds"] += costs[task.id][1]
        entry["wall_seconds"] += costs[task.id][0]
    peak = _peak_memory(tasks, sizes, measured)
    estimate = Estimate(
        cpu_seconds=sum(cpu for _, cpu in costs.values()),
        remaining_cpu_seconds=sum(cost[1] for task_id, cost in costs.items() if task_id not in done),
        work_seconds=sum(wall.values()), startup_seconds=startup,
        wall_seconds=startup + list_schedule(tasks, wall, n_workers).makespan,
        remaining_wall_seconds=list_schedule(tasks, wall, n_workers, done=done).makespan,
        critical_path_seconds=critical_path(tasks, wall), peak_memory_bytes=peak,
        n_workers=n_workers, backend=info["backend"], sample=info["sample"],
        sample_seconds=info["sample_seconds"], by_kind=by_kind,
        job_seconds=_job_seconds(tasks, wall, done, n_workers) if info["job_based"] else None)
    estimate.warnings = _warnings(estimate, sizes, measured, info)
    return estimate


def _peak_memory(tasks, sizes, measured):
    """A worker's peak: the highest measured, or more for a task fitting on more rows than any measured one."""
    if not measured:
        return 0
    highest = max(m["peak"] for m in measured.values())
    baseline = min(m["peak"] - m["growth"] for m in measured.values())
    per_row = max(m["growth"] / m["rows"] for m in measured.values())
    largest = max(sizes.rows(task) for task in tasks if task.kind != "final")
    return int(max(highest, baseline + per_row * largest))


def _job_seconds(tasks, wall, done, n_workers):
    """Jobs of a minute or more (an interpreter start is paid per job), about four per worker, never
    shorter than the longest task."""
    pending = [task.id for task in tasks if task.id not in done]
    if not pending:
        return None
    per_worker = sum(wall[task_id] for task_id in pending) / n_workers
    low, high = JOB_SECONDS_RANGE
    return round(max(max(wall[task_id] for task_id in pending), min(high, max(low, per_worker / 4))), 1)


def available_memory():
    """Bytes of memory available now (psutil when installed, else the free physical pages), or None.

    Examples
    --------
    >>> available_memory() is None or available_memory() > 0
    True
    """
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _estimator_threads(estimator, cores):
    """The most threads or processes one task's estimator starts (its ``n_jobs``, any nested one)."""
    threads = 1
    try:
        params = estimator.get_params(deep=True)
    except Exception:
        return 1
    for key, value in params.items():
        if (key == "n_jobs" or key.endswith("__n_jobs")) and isinstance(value, int) and not isinstance(value, bool):
            threads = max(threads, cores if value < 0 else value)
    return threads


def _warnings(estimate, sizes, measured, info):
    """Memory the workers would exceed; more threads than cores."""
    found = []
    n_workers = estimate.n_workers
    memory = info["memory_available"] if info["memory_available"] is not None else available_memory()
    if memory is not None and n_workers * estimate.peak_memory_bytes > memory:
        found.append(f"{n_workers} workers × {format_bytes(estimate.peak_memory_bytes)} per worker exceeds the "
                     f"{format_bytes(memory)} of memory available: use fewer workers (n_jobs)")
    cores = info["cores"] or os.cpu_count() or 1
    declared = _estimator_threads(sizes.estimator, cores)
    ratios = [m["cpu"] / m["wall"] for m in measured.values() if m["wall"] > 0.05]
    busy = max(1, round(mean(ratios, 1.0)))  # CPU seconds per wall second: threads actually busy
    threads = max(declared, busy)
    if threads > 1 and threads * n_workers > cores:
        source = f"the estimator's n_jobs={declared}" if declared >= busy else "BLAS/OpenMP threads (measured)"
        found.append(f"each task runs ~{threads} threads ({source}) × {n_workers} workers > {cores} cores: "
                     "they would oversubscribe the cores; lower n_jobs or the estimator's threads "
                     "(n_jobs=1, OMP_NUM_THREADS)")
    return found
