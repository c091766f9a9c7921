"""Where a mempamal run's wall-clock time goes: serial task costs, bound, profile.

Shared by the nested-CV, shared-prefix and throughput cases.  The
throughput case also uses the measuring tools at the end: timers around
the library's functions (:class:`PhaseTimer`, the library's code
unchanged), the dispatch loop's batches (:func:`batches_recorded`) and
the CPU of every process of a run (:func:`cpu_recorded`).  Each task is run alone,
in this process, in graph order, with the BLAS/OpenMP pools limited to the
threads a local worker gets (``cpu_count // n_workers``), so a task's cost
here is the work it does in a worker.  From those costs: the lower bound of
a run on ``n_workers`` workers, ``max(critical path, serial work /
workers)``; what the measured run spends above build + bound is dispatch,
worker processes and the contention of busy cores.

``profile=True`` adds one more serial pass under :mod:`cProfile` and splits
its time into buckets (the prefix transformers' fits, the final step's
fits, scoring, the select tasks' refits, the rest: mempamal's own work per
task plus ``clone``/``set_params``).  cProfile slows Python-heavy code more
than BLAS-heavy code, so the buckets are shares of the profiled pass, not
seconds of a normal run.
"""

import contextlib
import functools
import importlib
import resource
import shutil
import statistics
import threading
import time

from threadpoolctl import threadpool_limits

import mempamal as mp
from mempamal.graph.schedule import critical_path as graph_critical_path
from _common import cpu_count, fresh_workdir

#: Profile buckets: (label, file suffix, function name); cumulative times,
#: chosen so that none is called from inside another.
BUCKETS = (
    ("prefix transformer fits (fit_transform of each shared step)", "engine/fitting.py", "_fit_transform_step"),
    ("final-step fits of the grid points", "engine/fitting.py", "_fit_final_step"),
    ("scoring (shared transforms + scikit-learn's scorers)", "engine/fitting.py", "score_shared"),
    ("select tasks (outer refit, outer test scores)", "engine/tasks.py", "_run_select"),
)


def serial_task_costs(experiment, X, y, around_tasks=contextlib.nullcontext, **build_options):
    """``(build seconds, {task id: seconds}, workflow)``: every task run alone, in this process, in graph order.

    ``around_tasks()`` is entered around the tasks only, not the build (e.g. a :class:`PhaseTimer`).
    """
    workdir = fresh_workdir()
    start = time.perf_counter()
    workflow = experiment.build(X, y, workdir=workdir, **build_options)
    build_seconds = time.perf_counter() - start
    costs = {}
    with around_tasks():
        for task in workflow.tasks:
            start = time.perf_counter()
            mp.run_task(workdir, task.id)
            costs[task.id] = time.perf_counter() - start
    return build_seconds, costs, workflow


def critical_path(workflow, costs):
    """Longest chain of task costs through the dependencies (the package's own, graph/schedule.py)."""
    return graph_critical_path(workflow.tasks, costs)


def profile_buckets(experiment, X, y):
    """``(total seconds, [(label, seconds)])`` of one serial pass under cProfile."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    _, costs, workflow = serial_task_costs(experiment, X, y)
    profiler.disable()
    shutil.rmtree(workflow.workdir.parent, ignore_errors=True)
    stats = pstats.Stats(profiler).stats
    total = 0.0
    found = {label: 0.0 for label, _, _ in BUCKETS}
    for (filename, _, function), (_, _, _, cumulative, _) in stats.items():
        if filename.endswith("engine/tasks.py") and function == "run_task":
            total += cumulative
        for label, suffix, name in BUCKETS:
            if filename.endswith(suffix) and function == name:
                found[label] += cumulative
    return total, list(found.items())


def breakdown(experiment, X, y, n_workers, run_seconds, repeats, profile=False, reference=None):
    """Print where a mempamal run's wall-clock time goes, against its lower bound.

    ``reference`` (a callable: scikit-learn's way, serial) is timed once per
    round under the same thread limit, for the ratio of the two sides'
    serial work -- what the ratio of wall-clock times would be on workers
    that both sides kept equally busy.
    """
    threads = max(1, cpu_count() // n_workers)
    rounds, reference_seconds = [], []
    with threadpool_limits(limits=threads):
        for _ in range(repeats):
            build_seconds, costs, workflow = serial_task_costs(experiment, X, y)
            shutil.rmtree(workflow.workdir.parent, ignore_errors=True)
            rounds.append((build_seconds, sum(costs.values()), critical_path(workflow, costs), costs, workflow))
            if reference is not None:
                start = time.perf_counter()
                reference()
                reference_seconds.append(time.perf_counter() - start)
        profiled = profile_buckets(experiment, X, y) if profile else None
    build_seconds = statistics.median(r[0] for r in rounds)
    serial = statistics.median(r[1] for r in rounds)
    path = statistics.median(r[2] for r in rounds)
    costs, workflow = rounds[-1][3], rounds[-1][4]
    by_kind = {}
    for task in workflow.tasks:
        count, seconds = by_kind.get(task.kind, (0, 0.0))
        by_kind[task.kind] = (count + 1, seconds + costs[task.id])
    bound = max(path, serial / n_workers)
    print(f"  breakdown of mempamal n_jobs={n_workers} (medians of {repeats} in-process serial passes, "
          f"{threads} BLAS thread(s) as in a worker):")
    print(f"    build (data, splits, experiment, task table)   {build_seconds:7.3f} s")
    for kind, (count, seconds) in by_kind.items():
        print(f"    {count:3d} {kind:<8} tasks, run alone             {seconds:7.3f} s")
    print(f"    serial work {serial:.3f} s; critical path {path:.3f} s; "
          f"bound on {n_workers} workers {bound:.3f} s")
    print(f"    measured run {run_seconds:.3f} s = build + bound + {run_seconds - build_seconds - bound:.3f} s "
          f"(dispatch, worker processes, busy cores' contention)")
    if reference_seconds:
        ratios = [(r[0] + r[1]) / seconds for r, seconds in zip(rounds, reference_seconds)]
        print(f"    scikit-learn serial, same threads: {statistics.median(reference_seconds):.3f} s; "
              f"serial work ratio (build + tasks) / scikit-learn = {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    if profiled:
        total, buckets = profiled
        print(f"    profile of one serial pass (cProfile, {total:.2f} s in tasks):")
        rest = total
        for label, seconds in buckets:
            rest -= seconds
            print(f"      {seconds / total:6.1%}  {label}")
        print(f"      {rest / total:6.1%}  the rest (task input/output, data slicing, clone/set_params per point)")
    return {"build": build_seconds, "serial": serial, "path": path, "bound": bound,
            "reference": statistics.median(reference_seconds) if reference_seconds else None}


class PhaseTimer:
    """Wall-clock seconds and calls of chosen functions, by label, while in a ``with`` block.

    ``wrap(owner, name, label)`` replaces ``owner.name`` (a module, class or
    dict entry) by a timed wrapper until the block ends, so the benchmark
    measures the library's own phases without changing its code; nested
    phases are counted in both.  ``by_command=True`` adds the first word of
    the first argument to the label (a Slurm command line: ``sbatch``,
    ``squeue``...).  Thread-safe (a run's driver thread records too).

    Examples
    --------
    >>> import math
    >>> with PhaseTimer() as phases:
    ...     phases.wrap(math, "sqrt", "square roots")
    ...     math.sqrt(4.0)
    2.0
    >>> phases.calls["square roots"], math.sqrt.__name__
    (1, 'sqrt')
    """

    def __init__(self):
        self.seconds, self.calls = {}, {}
        self._undo, self._lock = [], threading.Lock()

    def wrap(self, owner, name, label, by_command=False):
        mapping = isinstance(owner, dict)
        original = owner[name] if mapping else getattr(owner, name)
        if not by_command:  # reports list the phases in the order they were wrapped
            self.seconds.setdefault(label, 0.0)
            self.calls.setdefault(label, 0)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            key = f"{label} {args[0][0]}" if by_command and args and args[0] else label
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(key, time.perf_counter() - start)

        if mapping:
            owner[name] = timed
        else:
            setattr(owner, name, timed)
        self._undo.append((owner, name, original, mapping))

    def add(self, label, seconds):
        with self._lock:
            self.seconds[label] = self.seconds.get(label, 0.0) + seconds
            self.calls[label] = self.calls.get(label, 0) + 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for owner, name, original, mapping in reversed(self._undo):
            if mapping:
                owner[name] = original
            else:
                setattr(owner, name, original)
        self._undo.clear()


@contextlib.contextmanager
def batches_recorded():
    """The dispatch loop's batch sizes and the tasks' in-worker seconds (what ``run_batch`` returns)."""
    from mempamal.backends import dispatch_loop

    original = dispatch_loop.BatchSizer
    record = {"sizes": [], "task_seconds": 0.0}

    class Recording(original):
        def observe(self, seconds):
            record["task_seconds"] += seconds
            super().observe(seconds)

        def size(self, n_ready, capacity):
            size = super().size(n_ready, capacity)
            record["sizes"].append(min(size, n_ready))
            return size

    dispatch_loop.BatchSizer = Recording
    try:
        yield record
    finally:
        dispatch_loop.BatchSizer = original


def _role(command):
    for fragment, role in (("watchdog", "watchdog"), ("controller", "controller"), ("nanny", "engine nannies"),
                           ("engine", "engines")):
        if fragment in command:
            return role
    return "workers"


def _cpu_by_process():
    import psutil

    me = psutil.Process()
    found = {}
    for process in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            role = "driver (all its threads)" if process.pid == me.pid else _role(" ".join(process.cmdline()))
            found[process.pid] = (role, times.user + times.system)
    return found


@contextlib.contextmanager
def cpu_recorded():
    """CPU seconds spent in the block by role: this process, its live children, children that ended."""
    before, ended_before = _cpu_by_process(), resource.getrusage(resource.RUSAGE_CHILDREN)
    by_role = {}
    yield by_role
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    for pid, (role, seconds) in _cpu_by_process().items():
        by_role[role] = by_role.get(role, 0.0) + seconds - before.get(pid, (role, 0.0))[1]
    gone = ended.ru_utime + ended.ru_stime - ended_before.ru_utime - ended_before.ru_stime
    if gone > 0.005:
        by_role["processes that ended (jobs)"] = gone


def wrap_phases(phases, specs):
    """``phases.wrap`` each ``(module name or object, attribute, label)``."""
    for owner, name, label in specs:
        phases.wrap(importlib.import_module(owner) if isinstance(owner, str) else owner, name, label)
