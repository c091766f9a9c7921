"""Issue 25, part 7 - throughput on the cluster routes, each beside its bare reference measured in the same run.

No-op tasks: the ``NoOp`` estimator of ``bench_overhead.py`` (fit does
nothing, score returns 0) in a grid of ``--tasks / 20`` points, outer
KFold(5) x inner KFold(4), ``chunk_size=1``, ``final_fit=False``: one
``fit`` task per point and split (plus 5 ``select`` and the ``final``).

Routes (mempamal, build excluded | its reference, same run, same workers):

- ipyparallel: ``run(backend="ipyparallel", client=)`` on 2 engines already
  started (start printed apart) | ``load_balanced_view().map_sync`` of a no-op;
- dask: ``run(backend="dask", client=)`` on a LocalCluster of 2 one-thread
  workers | ``client.map`` + ``gather`` of a no-op on the same cluster;
- soma-workflow: ``run(backend="soma-workflow", n_jobs=2)``, light mode, its
  engine start included | the same jobs (count, dependencies) running
  ``python -c pass`` through the same engine set-up;
- slurm: ``--slurm-tasks`` (10^5) submitted, bundled, from
  ``submit(backend="slurm")`` to every array accepted by sbatch | bare
  ``sbatch --array`` of the same arrays (sizes, dependencies) of ``true``.

Targets (issue 25): ipyparallel >= 600 tasks/s, dask >= 1,000, soma-workflow
>= 50, the 10^5-task Slurm submission in < 10 s (>= 10,000 tasks/s).  The
Slurm jobs are submitted with ``--hold`` (``--no-hold`` to let them queue
for real) and cancelled at once: they never run on the shared Slurm.
Ratio = mempamal tasks/s / reference tasks/s.  Where a target is missed the
script prints where the time goes: batches and the workers' busy share,
CPU seconds by process (driver, controller, engines/workers), and the cost
of ``run_task`` alone in this process split into its phases (timers around
the library's functions, :class:`_breakdown.PhaseTimer`); for Slurm, the
submission's phases.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_throughput.py [--routes ipyparallel dask soma-workflow slurm]
        [--tasks 20000] [--slurm-tasks 100000] [--repeats 3] [--no-hold]
"""

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import KFold

import mempamal as mp
from _breakdown import PhaseTimer, batches_recorded, cpu_recorded, serial_task_costs, wrap_phases
from _common import fresh_workdir
from bench_backends import started_workers
from bench_overhead import NoOp

ROUTES = ("ipyparallel", "dask", "soma-workflow", "slurm")
#: Issue 25 targets in tasks per second (Slurm: 10^5 tasks in < 10 s).
TARGETS = {"ipyparallel": 600, "dask": 1000, "soma-workflow": 50, "slurm": 10_000}
N_WORKERS = 2
X, Y = np.arange(200.0).reshape(100, 2), np.arange(100.0)


def noop(i):
    """The reference's task: nothing."""
    return i


def noop_experiment(n_tasks):
    grid = {"value": list(range(max(1, round(n_tasks / 20))))}
    return mp.Experiment(NoOp(), grid, cv=KFold(5), inner_cv=KFold(4), final_fit=False)


# ------------------------------------------------------------------ measures
def soma_phases():
    from mempamal.backends.somaworkflow.backend import SomaWorkflowBackend

    module = "mempamal.backends.somaworkflow.backend"
    return [(module, "check_first_fit", "probe fit in the driver (check_first_fit)"),
            ("mempamal.backends.bundles", "make_bundles", "bundling (make_bundles)"),
            (SomaWorkflowBackend, "_controller", "soma-workflow engine started (WorkflowController)"),
            (SomaWorkflowBackend, "_submit_and_wait", "the jobs: submitted, run, followed to the end"),
            (module, "shutdown", "soma-workflow engine stopped")]


def wrap_run_phases(phases, route):
    """Timers around the phases of a run before and after its tasks."""
    loop = {"ipyparallel": "mempamal.backends.ipyparallel", "dask": "mempamal.backends.dask"}.get(route)
    wrap_phases(phases, [
        ("mempamal.store.integrity", "verify_build_files", "before: build files verified"),
        (mp.Workflow, "check_outputs", "before: outputs already there scanned (check_outputs)"),
        *([(loop, "dispatch", "the tasks: dispatch loop over the workers")] if loop else []),
        *(soma_phases() if route == "soma-workflow" else []),
        (mp.Workflow, "scan_outputs", "after: new outputs validated into the done-index (scan_outputs)"),
        (mp.Workflow, "results", "after: results gathered (Workflow.results)")])


def measure_mempamal(route, n_tasks, options):
    """Build a no-op workflow, run it (timed, build apart); the figures of the run."""
    workdir = fresh_workdir()
    try:
        start = time.perf_counter()
        workflow = noop_experiment(n_tasks).build(X, Y, workdir=workdir, chunk_size=1)
        built = time.perf_counter()
        with batches_recorded() as batches, cpu_recorded() as cpu, PhaseTimer() as phases:
            wrap_run_phases(phases, route)
            start_run = time.perf_counter()
            workflow.run(backend=route, n_jobs=N_WORKERS, progress=False, **options)
            seconds = time.perf_counter() - start_run
        return {"tasks": len(workflow.tasks), "build": built - start, "seconds": seconds, "batches": batches,
                "cpu": cpu, "rate": len(workflow.tasks) / seconds, "phases": phases.seconds}
    finally:
        shutil.rmtree(workdir.parent, ignore_errors=True)


def reference_ipyparallel(client, n_tasks):
    start = time.perf_counter()
    client.load_balanced_view().map_sync(noop, range(n_tasks))
    return time.perf_counter() - start


def reference_dask(client, n_tasks):
    start = time.perf_counter()
    futures = client.map(noop, range(n_tasks), pure=False)
    client.gather(futures)
    seconds = time.perf_counter() - start
    del futures
    settle_scheduler(client)
    return seconds


def settle_scheduler(client, timeout=300):
    """Wait (untimed) until the scheduler has forgotten every task of the round before.

    Releasing 20,000 futures is work the scheduler does after ``gather``
    returns; measured next, mempamal's run would pay for it (on a loaded
    2-core machine, up to half of its round).
    """
    deadline = time.monotonic() + timeout
    while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) and time.monotonic() < deadline:
        time.sleep(0.05)


def rounds(repeats, mempamal_side, reference_side):
    """Interleaved: mempamal, then its reference, ``repeats`` times; both lists of results."""
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(mempamal_side())
        theirs.append(reference_side())
    return ours, theirs


def worker_route(route, args):
    """ipyparallel or dask: workers started once (start excluded), then interleaved rounds."""
    with started_workers(route, N_WORKERS) as (runner, options, start_seconds):
        client = options["client"]
        reference = reference_ipyparallel if route == "ipyparallel" else reference_dask
        reference(client, 200)  # warm-up of the reference's own path
        load = os.getloadavg()[0]

        def ours_side():
            figures = measure_mempamal(runner, args.tasks, options)
            if route == "dask":  # both sides start on an idle scheduler
                settle_scheduler(client)
            return figures

        ours, theirs = rounds(args.repeats, ours_side, lambda: args.tasks / reference(client, args.tasks))
        direct = ""
        if route == "ipyparallel":  # for context: the map that splits the items in one message per engine
            start = time.perf_counter()
            client[:].map_sync(noop, range(args.tasks))
            direct = f"; DirectView map (one chunk per engine): {args.tasks / (time.perf_counter() - start):,.0f}/s"
    print(f"  {route}: workers started in {start_seconds:.1f} s (excluded); load {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f}{direct}")
    return ours, theirs


# ------------------------------------------------------------ soma-workflow
def bare_soma_workflow(entries, n_jobs):
    """Seconds for soma-workflow light mode to run ``entries``' jobs, each ``python -c pass``, same engine setup."""
    from mempamal.backends.somaworkflow.backend import SomaWorkflowBackend
    from mempamal.backends.somaworkflow.engine import engine_settings, quiet, shutdown
    from mempamal.backends.somaworkflow.jobs import build_soma_workflow, import_soma

    client, constants, _ = import_soma()
    state = fresh_workdir("soma-state")
    state.mkdir(mode=0o700)
    bare = [{**entry, "cmd": [sys.executable, "-c", "pass"]} for entry in entries]
    try:
        start = time.perf_counter()
        with engine_settings():
            with quiet():
                controller = SomaWorkflowBackend()._controller(client, state, state, n_jobs)
            try:
                with quiet():
                    workflow_id = controller.submit_workflow(build_soma_workflow(bare, "bare", None), name="bare")
                # Polled as the soma-workflow backend polls (its poll_interval, 0.1 s).
                while controller.workflow_status(workflow_id) != constants.WORKFLOW_DONE:
                    time.sleep(0.1)
                seconds = time.perf_counter() - start
                controller.delete_workflow(workflow_id, force=True)
            finally:
                with quiet():
                    shutdown(controller)
        return seconds
    finally:
        shutil.rmtree(state.parent, ignore_errors=True)


def soma_entries(n_tasks):
    """The bundles (as soma-workflow entries) the soma-workflow run makes of the no-op graph."""
    from mempamal.backends.bundles import bundle_entries, make_bundles
    from mempamal.backends.somaworkflow.backend import DEFAULT_JOB_SECONDS

    workdir = fresh_workdir()
    try:
        workflow = noop_experiment(n_tasks).build(X, Y, workdir=workdir, chunk_size=1)
        bundles = make_bundles(workflow, workflow.pending_ids(), N_WORKERS, DEFAULT_JOB_SECONDS)
        return bundle_entries(workflow, bundles), len({b.level for b in bundles}), len(workflow.tasks)
    finally:
        shutil.rmtree(workdir.parent, ignore_errors=True)


def soma_route(args):
    entries, levels, n_tasks = soma_entries(args.tasks)
    load = os.getloadavg()[0]
    ours, theirs = rounds(args.repeats, lambda: measure_mempamal("soma-workflow", args.tasks, {}),
                          lambda: n_tasks / bare_soma_workflow(entries, N_WORKERS))
    print(f"  soma-workflow: {len(entries)} jobs in {levels} levels; load {load:.1f} -> {os.getloadavg()[0]:.1f}")
    return ours, theirs, {"jobs": len(entries), "levels": levels}



# -------------------------------------------------------------------- slurm
def wrap_submission_phases(phases):
    """Timers around the submission's phases (the library's functions, its code unchanged)."""
    from mempamal.backends.slurm import backend

    slurm = "mempamal.backends.slurm.backend"
    wrap_phases(phases, [
        ("mempamal.store.integrity", "verify_build_files", "build files verified (verify_build_files)"),
        (mp.Workflow, "check_outputs", "outputs already there scanned (check_outputs)"),
        (slurm, "check_first_fit", "probe fit in the driver (check_first_fit)"),
        (slurm, "_partition_cpus", "partition CPUs (sinfo)"),
        (mp.Workflow, "_predicted_seconds", "costs from measured outputs (_predicted_seconds)"),
        (slurm, "make_bundles", "bundling (make_bundles)"),
        (slurm, "plan_arrays", "arrays planned (plan_arrays)"),
        (slurm, "submit_arrays", "submission (submit_arrays), of which:"),
        ("mempamal.backends.slurm.submit", "read_limits", "  site limits read (read_limits)"),
        ("mempamal.backends.slurm.submit", "array_script", "  array scripts made (array_script)"),
        ("mempamal.store", "write_json", "  submission record written after each sbatch (write_json)")])
    phases.wrap(backend, "_run", "Slurm command", by_command=True)


def measure_slurm(n_tasks, hold):
    """Build ``n_tasks`` no-op tasks, time ``submit(backend="slurm")`` until the last sbatch answered; cancel."""
    from mempamal.backends.slurm import backend

    workdir = fresh_workdir()
    try:
        start = time.perf_counter()
        workflow = noop_experiment(n_tasks).build(X, Y, workdir=workdir, chunk_size=1)
        build = time.perf_counter() - start
        with PhaseTimer() as phases:
            wrap_submission_phases(phases)
            marks, submitted = {}, threading.Event()
            real_follow = backend.follow

            def follow(*args, **kwargs):  # called once every array is accepted and recorded
                marks.update(end=time.perf_counter(), phases=dict(phases.seconds), calls=dict(phases.calls))
                submitted.set()
                return real_follow(*args, **kwargs)

            backend.follow, run = follow, None
            try:
                start = time.perf_counter()
                run = workflow.submit(backend="slurm", progress=False, sbatch_options=["--hold"] if hold else [])
                while not submitted.wait(0.05) and not run.done():
                    pass
                if not submitted.is_set():
                    run.wait()  # raises what ended the driver before it submitted
            finally:
                backend.follow = real_follow
                if run is not None:
                    run.cancel(wait=True, timeout=120)
                backend.SlurmBackend().cancel(workflow)
        record = backend.read_submission(workdir)
        arrays = [{"size": a["size"], "after": a["after"]} for a in record["arrays"]]
        n_total = len(workflow.tasks)
        seconds = marks["end"] - start
        return {"tasks": n_total, "build": build, "seconds": seconds, "rate": n_total / seconds, "arrays": arrays,
                "phases": marks["phases"], "calls": marks["calls"]}
    finally:
        shutil.rmtree(workdir.parent, ignore_errors=True)


def bare_sbatch(arrays, hold):
    """Seconds for plain ``sbatch --array`` calls of the same sizes and dependencies (held, then cancelled)."""
    job_ids = []
    start = time.perf_counter()
    try:
        for array in arrays:
            command = ["sbatch", "--parsable", "--job-name=bench-bare", f"--array=0-{array['size'] - 1}",
                       "--output=/dev/null", "--wrap=true"] + (["--hold"] if hold else [])
            if array["after"]:
                command.append("--dependency=afterok:" + ":".join(job_ids[i] for i in array["after"]))
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            job_ids.append(done.stdout.strip().split(";")[0])
        return time.perf_counter() - start
    finally:
        if job_ids:
            subprocess.run(["scancel", *job_ids], capture_output=True)


def slurm_route(args):
    if shutil.which("sbatch") is None:
        print("  slurm: skipped, no Slurm here (ci/slurm/start.sh)")
        return None
    load = os.getloadavg()[0]
    ours, theirs = [], []
    for _ in range(args.repeats):
        ours.append(measure_slurm(args.slurm_tasks, not args.no_hold))
        theirs.append(ours[-1]["tasks"] / bare_sbatch(ours[-1]["arrays"], not args.no_hold))
    last = ours[-1]
    print(f"  slurm: {last['tasks']} tasks, build {statistics.median(o['build'] for o in ours):.2f} s (apart); "
          f"{len(last['arrays'])} arrays of {[a['size'] for a in last['arrays']]} jobs; submission "
          f"{[round(o['seconds'], 2) for o in ours]} s; jobs {'held and ' if not args.no_hold else ''}cancelled; "
          f"load {load:.1f} -> {os.getloadavg()[0]:.1f}")
    return ours, theirs


# --------------------------------------------------------- where time goes
@contextlib.contextmanager
def run_task_phases_timed(phases):
    """Timers around the phases of ``run_task`` (the library's functions, its code unchanged)."""
    from mempamal.engine import context, tasks

    with phases:
        wrap_phases(phases, [
            (tasks, "load_context", "workdir context (load_context: cached; a stat of the manifest)"),
            (context.WorkdirContext, "check_build_files", "build files checked (a stat each)"),
            *[(tasks._HANDLERS, kind, "the task's own work (split rows, clone, no-op fit + score)")
              for kind in list(tasks._HANDLERS)],
            (tasks.TaskOutput, "to_json", "output: record as JSON fields (TaskOutput.to_json)"),
            ("mempamal.store.integrity", "output_bytes", "output: serialised + sha256 (output_bytes)"),
            ("mempamal.store", "atomic_write_bytes", "output: written (temporary file + rename)"),
            (tasks, "peak_rss_bytes", "bookkeeping: peak RSS read (getrusage)")])
        yield


def run_task_breakdown(n_tasks):
    """``(seconds per task, {phase: seconds per task})`` of every task run by ``run_task`` in this process."""
    phases = PhaseTimer()
    _, costs, workflow = serial_task_costs(noop_experiment(n_tasks), X, Y, lambda: run_task_phases_timed(phases),
                                           chunk_size=1)
    shutil.rmtree(workflow.workdir.parent, ignore_errors=True)
    total = sum(costs.values())
    split = {label: seconds / len(costs) for label, seconds in phases.seconds.items()}
    split["bookkeeping: the rest (stamp, TaskRun, versions, config applied, checks)"] = (
        total - sum(phases.seconds.values())) / len(costs)
    return total / len(costs), split


def print_run_task(per_task, split):
    print(f"    run_task alone in this process: {1e3 * per_task:.3f} ms/task ({1 / per_task:.0f} tasks/s on one "
          f"core, {N_WORKERS / per_task:.0f}/s on {N_WORKERS} workers at best), of which:")
    for label, seconds in split.items():
        print(f"      {1e3 * seconds:7.3f} ms  {seconds / per_task:5.1%}  {label}")


def print_run_phases(result):
    for label, seconds in result["phases"].items():
        print(f"    {seconds:7.3f} s  {label}")
    rest = result["seconds"] - sum(result["phases"].values())
    print(f"    {rest:7.3f} s  the rest (lock, connection and pool set-up, progress, thread start and join)")


def explain_workers(route, result, run_task_split):
    wall, n_tasks = result["seconds"], result["tasks"]
    sizes, busy = result["batches"]["sizes"], result["batches"]["task_seconds"]
    print(f"  where the time goes, {route} ({n_tasks} tasks in {wall:.2f} s: {N_WORKERS} workers x {wall:.2f} s "
          f"= {N_WORKERS * wall:.2f} worker-seconds on {os.cpu_count()} cores):")
    print(f"    {len(sizes)} batches, {np.mean(sizes):.1f} tasks each on average (largest {max(sizes)}); the tasks' "
          f"own time in the workers (run_batch): {busy:.2f} s = {busy / (N_WORKERS * wall):.0%} of the workers' "
          f"time, {1e3 * busy / n_tasks:.3f} ms/task")
    print(f"    the other {N_WORKERS * wall - busy:.2f} worker-seconds: waiting for batches (round trips driver -> "
          f"{'controller' if route == 'ipyparallel' else 'scheduler'} -> worker and back) while the processes "
          f"below share the cores")
    print_run_phases(result)
    for role, seconds in sorted(result["cpu"].items(), key=lambda item: -item[1]):
        print(f"    CPU {role:<28} {seconds:7.2f} s  {1e3 * seconds / n_tasks:7.3f} ms/task")
    print_run_task(*run_task_split)


def one_task_job_seconds():
    """Seconds of a job's fixed cost: ``python -m mempamal task WORKDIR ID`` of one no-op task (imports, load)."""
    workdir = fresh_workdir()
    try:
        workflow = noop_experiment(20).build(X, Y, workdir=workdir, chunk_size=1)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mempamal", "task", str(workdir), workflow.tasks[0].id], check=True)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(workdir.parent, ignore_errors=True)


def explain_soma(ours, theirs, info, run_task_split):
    result = sorted(ours, key=lambda o: o["rate"])[len(ours) // 2]
    bare_seconds = result["tasks"] / statistics.median(theirs)
    job = one_task_job_seconds()
    work = run_task_split[0] * result["tasks"] / N_WORKERS
    jobs_phase = result["phases"].get("the jobs: submitted, run, followed to the end", result["seconds"])
    print(f"  where the time goes, soma-workflow ({result['tasks']} tasks in {result['seconds']:.2f} s):")
    print_run_phases(result)
    print(f"    of the jobs' {jobs_phase:.2f} s: soma-workflow itself for the same {info['jobs']} jobs in "
          f"{info['levels']} levels (python -c pass, engine start included) {bare_seconds:.2f} s; a job's fixed "
          f"cost (python -m mempamal task WORKDIR ID of one no-op task: interpreter, imports, workdir load) "
          f"{job:.2f} s x {info['levels']} levels on the critical path = {job * info['levels']:.2f} s; the "
          f"tasks' own work on {N_WORKERS} workers {work:.2f} s; left "
          f"{jobs_phase - bare_seconds - job * info['levels'] - work:.2f} s (both level-0 jobs starting at once "
          f"on {os.cpu_count()} busy cores)")
    print_run_task(*run_task_split)


def explain_slurm(ours):
    result = sorted(ours, key=lambda o: o["seconds"])[len(ours) // 2]
    seconds = result["seconds"]
    print(f"  where the time goes, slurm submission ({result['tasks']} tasks, {seconds:.2f} s from submit() to "
          f"the last sbatch's answer):")
    top = 0.0
    for label, spent in result["phases"].items():
        if label.startswith("Slurm command"):
            continue
        if not label.startswith("  "):
            top += spent
        if not result["calls"][label]:
            continue
        print(f"    {spent:7.3f} s  {label} ({result['calls'][label]} call(s))")
    print(f"    {seconds - top:7.3f} s  the rest (workdir lock, task table check, driver thread start)")
    commands = {label.split()[-1]: (spent, result["calls"][label]) for label, spent in result["phases"].items()
                if label.startswith("Slurm command")}
    print("    Slurm commands inside those phases: "
          + ", ".join(f"{name} {calls} x {spent / calls:.3f} s" for name, (spent, calls) in commands.items()))


# ------------------------------------------------------------------- table
def _spread(values):
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def table_row(route, ours, theirs):
    rates = [o["rate"] for o in ours]
    rate, reference = statistics.median(rates), statistics.median(theirs)
    target = TARGETS[route]
    label = f">= {target:,}/s" if route != "slurm" else f"10^5 in < 10 s (>= {target:,}/s)"
    met = rate >= target
    return met, (f"| {route} | {_spread(rates)} | {_spread(theirs)} | {rate / reference:.2f} | {label} | "
                 f"{'yes' if met else 'NO'} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", nargs="+", choices=ROUTES, default=list(ROUTES))
    parser.add_argument("--tasks", type=int, default=20_000, help="no-op tasks of the ipyparallel, dask and "
                                                                  "soma-workflow runs (rounded to 20 per point)")
    parser.add_argument("--slurm-tasks", type=int, default=100_000, help="tasks of the Slurm submission")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds mempamal / reference")
    parser.add_argument("--no-hold", action="store_true", help="submit the Slurm jobs without --hold")
    parser.add_argument("--breakdown", action="store_true", help="where the time goes, also for met targets")
    args = parser.parse_args()
    # Job processes (soma-workflow) unpickle bench_overhead.NoOp: they need this folder on their path.
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    print(f"== throughput on the cluster routes: {args.repeats} round(s), {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    rows, split = [], None
    for route in args.routes:
        if route == "slurm":
            found = slurm_route(args)
            if found is None:
                continue
            ours, theirs = found
        elif route == "soma-workflow":
            ours, theirs, info = soma_route(args)
        else:
            ours, theirs = worker_route(route, args)
        met, row = table_row(route, ours, theirs)
        rows.append(row)
        if met and not args.breakdown:
            continue
        if route == "slurm":
            explain_slurm(ours)
            continue
        split = split or run_task_breakdown(args.tasks)
        if route == "soma-workflow":
            explain_soma(ours, theirs, info, split)
        else:
            explain_workers(route, sorted(ours, key=lambda o: o["rate"])[len(ours) // 2], split)
    print(f"\n| route | mempamal tasks/s, median (min-max) | reference tasks/s | ratio | target | met? |\n"
          f"|---|---|---|---|---|---|\n" + "\n".join(rows))
    print(f"(load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())})")


if __name__ == "__main__":  # Dask's workers are spawned: they re-import this file
    main()
