"""The native ``slurm`` backend: job arrays of task bundles, no server.

``wf.run(backend="slurm", partition="debug")`` groups the unfinished tasks
into bundles (:mod:`mempamal.backends.bundles`), submits one job array per dependency
level with ``sbatch`` (``--dependency=afterok`` between levels, see
:mod:`mempamal.backends.slurm.script`), then polls ``squeue`` until every job
has left the queue.  The output files are the truth: progress counts them,
and a task without an output when its job is gone has failed (its traceback
is ``logs/<id>.err``) or was not run.

What was submitted is recorded in ``WORKDIR/submissions/slurm.json`` (job
ids, array sizes, bundles, options, time), so :meth:`SlurmBackend.attach`
can resume waiting for a submission after the driver itself was restarted.
Ctrl-C or the ``stop`` event cancels every job of the submission
(``scancel``).

The workdir must be on a filesystem the nodes share with the driver, at the
same path unless ``remote_workdir=`` says where the nodes see it.
"""

import json
import numbers
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ... import store
from ..._constraints import Interval, Predicate, validate_params
from ..bundles import check_bundle_options, make_bundles
from ..base import JobBackend, RunCancelled, RunObserver, allow_version_mismatch, effective_n_jobs, make_progress
from .script import array_script, plan_arrays, sbatch_arguments
from ..tracker import DependencyTracker
from ...engine.first_fit import check_first_fit

#: Default target duration of a job (seconds): long against the ~1 s an
#: interpreter needs to start, short enough to keep every worker busy.
DEFAULT_JOB_SECONDS = 60
#: Without ``n_jobs``, each level is split into at most this many jobs
#: (or the partition's CPU count when smaller).
DEFAULT_MAX_WORKERS = 100
#: Seconds an array must have left the queue before missing outputs (not
#: yet visible on a shared filesystem?) count as failed tasks.
OUTPUT_GRACE = 10
SUBMISSIONS_DIR = "submissions"
RECORD = "slurm.json"
#: Queue states of a job that has not finished yet (squeue's long names).
ACTIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
                 "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}
#: sacct states of a job that ended without exiting 0.
FAILED_STATES = {"FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE",
                 "PREEMPTED"}
INSTALL_HINT = ("The 'slurm' backend needs Slurm's client commands (sbatch, squeue, scancel) on PATH; "
                "run from a Slurm login node (Debian/Ubuntu: apt-get install slurm-client).")


def _run(command, timeout=60):
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


#: The options of the slurm backend (job_seconds, tasks_per_job: bundles.BUNDLE_CONSTRAINTS).
SLURM_CONSTRAINTS = {
    "partition": [Predicate(lambda p: isinstance(p, str) and bool(p), "a non-empty str"), None],
    "sbatch_options": [Predicate(lambda o: not isinstance(o, str) and hasattr(o, "__iter__")
                                 and all(isinstance(item, str) for item in o), "a list of str (one option each)")],
    "python": ["path", None],
    "remote_workdir": ["path", None],
    "poll_seconds": [Interval(numbers.Real, 0, None, closed="neither")],
    "check_first": ["boolean"],
}


class SlurmBackend(JobBackend):
    """Run tasks as Slurm job arrays of bundles.

    Parameters
    ----------
    partition : str, optional
        ``sbatch --partition``; None: the cluster's default partition.
    sbatch_options : list of str
        More ``sbatch`` options for every job, e.g. ``["--time=30", "--mem=2G"]``.
    job_seconds : float, optional
        Target duration of one job (default 60 s); tasks are bundled to fill it.
    tasks_per_job : int, optional
        Fixed bundle size instead of ``job_seconds``.
    python : str, optional
        Interpreter on the nodes (default: the workflow's, i.e. this one).
    remote_workdir : str, optional
        The workdir's path on the nodes, when they mount it elsewhere.
    poll_seconds : float
        Seconds between two ``squeue`` polls.
    check_first : bool
        Before submitting, fit one representative grid point in this
        process (:mod:`mempamal.engine.first_fit`): when it fails the way
        every task would (a 3-D ``X``, a single-class ``y``...), the run is
        refused with scikit-learn's error and nothing is submitted.
        ``False`` skips that fit.

    ``n_jobs`` of ``run`` is how many jobs may run at once (the arrays'
    ``%`` throttle, and the bundling's minimum number of jobs per level);
    None: no throttle, and bundles for the partition's CPU count, at most
    :data:`DEFAULT_MAX_WORKERS` (a shared cluster rarely gives one user more).

    Examples
    --------
    >>> res = wf.run(backend="slurm", partition="debug", sbatch_options=["--time=10"])  # needs a Slurm cluster  # doctest: +SKIP
    >>> res = wf.run(backend="slurm", tasks_per_job=50, n_jobs=8)                       # needs a Slurm cluster  # doctest: +SKIP
    """

    supports_stop = True
    supports_observer = True

    name = "slurm"

    def __init__(self, partition=None, sbatch_options=(), job_seconds=None, tasks_per_job=None,
                 python=None, remote_workdir=None, poll_seconds=1.0, check_first=True):
        owner = "the 'slurm' backend"
        validate_params({"partition": partition, "sbatch_options": sbatch_options, "python": python,
                         "remote_workdir": remote_workdir, "poll_seconds": poll_seconds, "check_first": check_first},
                        SLURM_CONSTRAINTS, owner)
        check_bundle_options(job_seconds, tasks_per_job, owner)
        self.partition = partition
        self.sbatch_options = list(sbatch_options)
        self.job_seconds = DEFAULT_JOB_SECONDS if job_seconds is None and tasks_per_job is None else job_seconds
        self.tasks_per_job = tasks_per_job
        self.python = python
        self.remote_workdir = remote_workdir
        self.poll_seconds = poll_seconds
        self.check_first = check_first

    # ------------------------------------------------------------ submit
    def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None, observer=None):
        """Submit ``task_ids`` as job arrays and wait; returns ``{task_id: message}`` of failures.

        Examples
        --------
        >>> failed = SlurmBackend(partition="debug").run(wf, wf.pending_ids(), n_jobs=4)   # needs a Slurm cluster  # doctest: +SKIP
        """
        _check_commands()
        if self.check_first:  # fail fast: nothing is submitted when every task would fail at fit
            check_first_fit(workflow.workdir, workflow.table, task_ids,
                            allow_version_mismatch=allow_version_mismatch(workflow), backend=self.name)
        throttle = None if n_jobs is None else effective_n_jobs(n_jobs)
        workers = throttle or min(DEFAULT_MAX_WORKERS, _partition_cpus(self.partition))
        bundles = make_bundles(workflow, task_ids, workers, self.job_seconds, self.tasks_per_job)
        record = self._submit(workflow, plan_arrays(bundles), throttle)
        return self._wait(workflow, record, progress, stop, observer)

    def _submit(self, workflow, arrays, throttle):
        folder = store.make_private_dir(workflow.workdir / SUBMISSIONS_DIR
                                        / f"slurm-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        log_dir = store.make_private_dir(folder / "logs")
        python = str(self.python or workflow.manifest.get("python") or sys.executable)
        workdir = str(self.remote_workdir or workflow.workdir)
        record = {
            "backend": "slurm", "submitted": time.time(), "folder": str(folder),
            "options": {"partition": self.partition, "sbatch_options": self.sbatch_options,
                        "job_seconds": self.job_seconds, "tasks_per_job": self.tasks_per_job,
                        "throttle": throttle, "python": python, "workdir": workdir},
            "arrays": [],
        }
        job_ids = []
        try:
            for array in arrays:
                script = folder / f"{array.name}.sh"
                store.atomic_write_bytes(script, array_script(array, python, workdir,
                                                              allow_version_mismatch(workflow)).encode())
                arguments = sbatch_arguments(array, job_ids, log_dir, self.partition, self.sbatch_options,
                                             throttle, prefix=f"mempamal-{workflow.workdir.name}")
                done = _run(["sbatch", *arguments, str(script)])
                if done.returncode != 0:
                    raise RuntimeError(f"sbatch refused job array {array.name} of {workflow.workdir}: "
                                       f"{done.stderr.strip() or done.stdout.strip()}")
                job_ids.append(done.stdout.strip().split(";")[0])
                record["arrays"].append({"job_id": job_ids[-1], "name": array.name, "size": array.size,
                                         "level": array.level, "after": list(array.after),
                                         "bundles": [list(bundle.task_ids) for bundle in array.bundles]})
                # Recorded after every sbatch: a driver killed half-way still
                # leaves the ids of what it submitted (for attach/cancel).
                store.write_json(_record_path(workflow), record)
        except BaseException:
            # Half a submission must not keep running on its own.
            _cancel(job_ids)
            raise
        return record

    # -------------------------------------------------------------- wait
    def attach(self, workflow, stop=None, progress=True, observer=None):
        """Wait for the submission recorded in ``WORKDIR/submissions/slurm.json``, as :meth:`run` does.

        For a driver restarted while its jobs kept running (``wf.attach()``).

        Examples
        --------
        >>> failed = SlurmBackend().attach(wf)      # needs a Slurm cluster  # doctest: +SKIP
        """
        path = _record_path(workflow)
        if not path.exists():
            raise store.WorkdirError(f"No Slurm submission recorded in {workflow.workdir} (no {path}).")
        return self._wait(workflow, store.read_json(path), progress, stop, observer)

    def cancel(self, workflow):
        """``scancel`` every job of the recorded submission and wait until they left the queue.

        For a submission whose driver is gone (killed, or an asynchronous
        run); a running driver is cancelled with Ctrl-C or its ``stop`` event.
        Returns the job ids cancelled.

        Examples
        --------
        >>> SlurmBackend().cancel(wf)      # needs a Slurm cluster  # doctest: +SKIP
        ['41', '42', '43']
        """
        record = read_submission(workflow.workdir)
        job_ids = [array["job_id"] for array in record["arrays"]] if record else []
        _cancel(job_ids, wait=True)
        return job_ids

    def jobs_status(self, workdir, record):
        """The recorded arrays' elements as Slurm sees them: ``{"pending": n, "running": n, "finished": n}``.

        One ``squeue`` call; never raises (``"error"`` says why squeue did
        not answer).

        Examples
        --------
        >>> SlurmBackend().jobs_status(wf.workdir, read_submission(wf.workdir))   # needs a Slurm cluster  # doctest: +SKIP
        {'pending': 3, 'running': 2, 'finished': 4}
        """
        total = sum(array["size"] for array in record["arrays"])
        job_ids = [array["job_id"] for array in record["arrays"]]
        try:
            answer = _run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(job_ids)], timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"error": f"squeue did not answer ({exc})"}
        if answer.returncode != 0 and "Invalid job id" not in answer.stderr:
            return {"error": f"squeue failed: {answer.stderr.strip() or answer.returncode}"}
        states = [line.split("|", 1)[1] for line in answer.stdout.splitlines() if "|" in line]
        running = sum(state in ("RUNNING", "COMPLETING") for state in states)
        queued = sum(state in ACTIVE_STATES for state in states)
        return {"pending": queued - running, "running": running, "finished": max(0, total - queued)}

    def _wait(self, workflow, record, progress, stop, observer=None):
        job_ids = [array["job_id"] for array in record["arrays"]]
        wanted = {task_id for array in record["arrays"] for bundle in array["bundles"] for task_id in bundle}
        bar = make_progress(len(wanted), progress, desc="mempamal slurm")
        finished, ended_at = False, {}
        observer = RunObserver() if observer is None else observer
        try:
            while True:
                if stop is not None and stop.is_set():
                    raise RunCancelled(f"the Slurm run of {workflow.workdir} was cancelled (jobs {job_ids})")
                # listdir every poll: an output written on another node appears here.
                done = len(store.finished_task_ids(workflow.workdir) & wanted)
                bar.update(done - bar.n)
                active = _queue_states(job_ids)
                if active is not None:
                    observer.now_executing(_running_bundles(record, active))
                    stuck = _never_startable(record, active, workflow.workdir, ended_at)
                    _cancel(stuck)  # waits on a failed array: would stay pending forever
                    bar.set_postfix(jobs=len(active), refresh=False)
                    if not {job.split("_")[0] for job in active} - set(stuck):
                        break
                if stop is None:
                    time.sleep(self.poll_seconds)
                else:
                    stop.wait(self.poll_seconds)  # a cancel is taken at once, not at the next poll
            finished = True
        finally:
            if not finished:
                _cancel(job_ids, wait=True)
            observer.now_executing([])
            bar.close()
        return _failures(workflow, record)


def _never_startable(record, active, workdir, ended_at):
    """Queued arrays whose ``afterok`` can no longer be met: an array they wait for failed.

    Slurm notices this only at its next dependency check (tens of seconds).
    sacct says at once when accounting is on; otherwise the outputs tell: an
    array gone from the queue for ``OUTPUT_GRACE`` seconds (time for a shared
    filesystem to show its files) with a task output missing did not exit 0
    everywhere.  ``ended_at`` maps array job ids to when they left the queue.
    """
    arrays = record["arrays"]
    queued = {job.split("_")[0] for job in active}
    now = time.monotonic()
    for array in arrays:
        if array["job_id"] not in queued:
            ended_at.setdefault(array["job_id"], now)
    stuck, done, states = [], None, None
    for array in arrays:
        if array["job_id"] not in queued:
            continue
        reasons = [reason for job, (_, reason) in active.items() if job.split("_")[0] == array["job_id"]]
        needed = [arrays[index] for index in array.get("after", ())]
        if any("DependencyNeverSatisfied" in reason for reason in reasons):
            stuck.append(array["job_id"])
        elif needed and not any(dep["job_id"] in queued for dep in needed):
            states = _sacct_states([dep["job_id"] for dep in needed]) if states is None else states
            if states:
                # only final states count: sacct may still say RUNNING for a job just ended
                failed = any(state.split()[0] in FAILED_STATES for job, state in states.items()
                             if job.split("_")[0] in {dep["job_id"] for dep in needed})
            elif all(now - ended_at[dep["job_id"]] >= OUTPUT_GRACE for dep in needed):
                done = store.finished_task_ids(workdir) if done is None else done
                failed = any(t not in done for dep in needed for bundle in dep["bundles"] for t in bundle)
            else:
                failed = False
            if failed:
                stuck.append(array["job_id"])
    return stuck


def _running_bundles(record, active):
    """The bundles of the array elements Slurm runs now (state RUNNING in ``active``)."""
    bundles = {array["job_id"]: array["bundles"] for array in record["arrays"]}
    running = []
    for job, (state, _) in active.items():
        array_id, _, index = job.partition("_")
        if state == "RUNNING" and index.isdigit() and int(index) < len(bundles.get(array_id, ())):
            running.append(bundles[array_id][int(index)])
    return running


def _record_path(workflow):
    return workflow.workdir / SUBMISSIONS_DIR / RECORD


def _check_commands():
    missing = [command for command in ("sbatch", "squeue", "scancel") if shutil.which(command) is None]
    if missing:
        raise RuntimeError(f"{INSTALL_HINT} Missing: {', '.join(missing)}.")


def _partition_cpus(partition):
    """Total CPUs of ``partition`` (or of the cluster), at least 1."""
    command = ["sinfo", "-h", "-o", "%C"] + ([f"--partition={partition}"] if partition else [])
    try:
        answer = _run(command)
        return max(1, sum(int(line.split("/")[-1]) for line in answer.stdout.split()))
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return 1


def _queue_states(job_ids):
    """``{job: (state, reason)}`` of our jobs still queued, or None when squeue did not answer."""
    if not job_ids:
        return {}
    try:
        answer = _run(["squeue", "-h", "-r", "-o", "%i|%T|%r", "-j", ",".join(job_ids)])
    except subprocess.TimeoutExpired:
        return None
    if answer.returncode != 0:
        # Jobs purged from slurmctld's memory are "invalid": they are long finished.
        return {} if "Invalid job id" in answer.stderr else None
    states = {}
    for line in answer.stdout.splitlines():
        job, state, reason = (line.split("|") + ["", ""])[:3]
        if state in ACTIVE_STATES:
            states[job] = (state, reason)
    return states


def _cancel(job_ids, wait=False, timeout=60):
    """``scancel`` the jobs; with ``wait``, until they have left the queue (or ``timeout``)."""
    if not job_ids:
        return
    try:
        _run(["scancel", *job_ids])
        deadline = time.monotonic() + timeout
        while wait and time.monotonic() < deadline and _queue_states(job_ids) != {}:
            time.sleep(0.5)
    except (OSError, subprocess.TimeoutExpired):
        pass  # best effort: the caller is already failing or cancelling


def _sacct_states(job_ids):
    """``{"<job>_<index>": state}`` from sacct, or {} when accounting is unavailable."""
    if not job_ids or shutil.which("sacct") is None:
        return {}
    try:
        answer = _run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)])
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return dict(line.split("|", 1) for line in answer.stdout.splitlines() if "|" in line)


def _failures(workflow, record):
    """``{task_id: message}`` for the recorded tasks without an output, dependency order."""
    done = store.finished_task_ids(workflow.workdir)
    job_of = {}
    for array in record["arrays"]:
        for position, bundle in enumerate(array["bundles"]):
            for task_id in bundle:
                job_of[task_id] = f"{array['job_id']}_{position}"
    missing = [task.id for task in workflow.tasks if task.id in job_of and task.id not in done]
    if not missing:
        return {}
    tracker, failed = DependencyTracker(workflow, list(job_of)), {}
    states = _sacct_states([array["job_id"] for array in record["arrays"]])
    log_dir = Path(record["folder"]) / "logs"
    for task_id in missing:
        if task_id in failed:
            continue  # already reported as blocked by a failed dependency
        task_log = store.log_path(workflow.workdir, task_id)
        job = job_of[task_id]
        if task_log.exists() and task_log.stat().st_mtime >= record["submitted"] - 1:
            tracker.record(task_id, f"Slurm job {job}: {_tail(task_log)}", failed)
        else:
            # No traceback of its own: the task could not even start (unreadable
            # or refused workdir, wrong interpreter...); the job's stderr says why.
            job_log = log_dir / f"{job}.err"
            state = states.get(job, "state unknown")
            detail = _tail(job_log) if job_log.exists() and job_log.stat().st_size else ""
            tracker.record(task_id, f"Slurm job {job} ended ({state}) without its output: {detail}" if detail
                           else f"not run: Slurm job {job} ended ({state}) without running it", failed)
    return failed


def _tail(path, limit=2000):
    return Path(path).read_text(errors="replace").strip()[-limit:]


def read_submission(workdir):
    """The Slurm submission record of ``workdir`` (a dict), or None.

    Examples
    --------
    >>> [a["job_id"] for a in read_submission("runs/iris")["arrays"]]   # needs a Slurm cluster  # doctest: +SKIP
    ['41', '42']
    """
    path = Path(workdir) / SUBMISSIONS_DIR / RECORD
    return json.loads(path.read_text()) if path.exists() else None
