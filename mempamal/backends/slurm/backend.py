"""The native ``slurm`` backend: job arrays of task bundles, no server.

``wf.run(backend="slurm", partition="debug")`` groups the unfinished tasks
into bundles (:mod:`mempamal.backends.bundles`), submits one job array per dependency
level with ``sbatch`` (``--dependency=afterok`` between levels, see
:mod:`mempamal.backends.slurm.script`), then follows the jobs until every one
has left the queue (:mod:`~mempamal.backends.slurm.follow`), through the
process's one watcher, which polls ``squeue`` politely for every run
(:mod:`~mempamal.backends.slurm.watcher`).  The output files are the truth:
progress counts them, and a task without an output when its job is gone has
failed (its traceback is ``logs/<id>.err``), was not run, or was lost with
its job (walltime, preemption, a dead node): then it is submitted again, at
most ``max_retries`` times (:mod:`~mempamal.backends.slurm.retry`).

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
import shutil
import subprocess
import time
from pathlib import Path

from ... import store
from ..._constraints import Interval, Predicate, validate_params
from ...exceptions import SetupError
from ..bundles import check_bundle_options, make_bundles
from ..base import JobBackend, allow_version_mismatch, effective_n_jobs
from ...engine.first_fit import check_first_fit
from . import retry
from .follow import cancel_jobs as _cancel
from .follow import follow
from .script import plan_arrays
from .submit import submit_arrays
from .watcher import ACTIVE_STATES, WATCHER, element_array

#: Default target duration of a job (seconds): long against the ~1 s an
#: interpreter needs to start, short enough to keep every worker busy.
DEFAULT_JOB_SECONDS = 60
#: Without ``n_jobs``, each level is split into at most this many jobs
#: (or the partition's CPU count when smaller).
DEFAULT_MAX_WORKERS = 100
#: How many times the unfinished tasks of lost jobs (walltime, preemption, dead node) are submitted again.
DEFAULT_MAX_RETRIES = 2
SUBMISSIONS_DIR = "submissions"
RECORD = "slurm.json"
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
    "array_parallelism": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "max_queued_jobs": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "max_retries": [Interval(numbers.Integral, 0, None, closed="left")],
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
        Seconds between two looks at the outputs, and the shortest interval
        between two ``squeue`` calls: the process's watcher backs off from it
        to a minute while the queue does not change (see
        :mod:`~mempamal.backends.slurm.watcher`).
    max_retries : int
        How many times the unfinished tasks of jobs ended ``TIMEOUT``,
        ``PREEMPTED``, ``NODE_FAIL``, ``OUT_OF_MEMORY``, killed or cancelled
        from outside are submitted again (default 2; 0: never).  A task that
        raised is a failure, never retried.
    check_first : bool
        Before submitting, fit one representative grid point in this
        process (:mod:`mempamal.engine.first_fit`): when it fails the way
        every task would (a 3-D ``X``, a single-class ``y``...), the run is
        refused with scikit-learn's error and nothing is submitted.
        ``False`` skips that fit.
    array_parallelism : int, optional
        At most this many elements of each array run at once
        (``--array=0-N%K``; with ``n_jobs`` too, the smaller wins).
    max_queued_jobs : int, optional
        At most this many of the run's jobs (array elements) queued at
        once: larger submissions go in waves.  The site's ``MaxSubmitJobs``
        (where accounting runs) and half its ``MaxJobCount`` cap it too,
        and arrays are cut below ``MaxArraySize``
        (:mod:`mempamal.backends.slurm.limits`).

    Without ``--time`` in ``sbatch_options``, each array gets a time limit
    of three times its longest bundle plus five minutes, when the bundles'
    costs are measured (an estimate, or tasks finished earlier in the
    workdir); from mere guesses, none (the partition's default).

    ``n_jobs`` of ``run`` is how many jobs may run at once (the arrays'
    ``%`` throttle, and the bundling's minimum number of jobs per level);
    None: no throttle, and bundles for the partition's CPU count, at most
    :data:`DEFAULT_MAX_WORKERS` (a shared cluster rarely gives one user more).

    Examples
    --------
    >>> res = wf.run(backend="slurm", partition="debug", sbatch_options=["--time=10"])  # needs a Slurm cluster  # doctest: +SKIP
    >>> res = wf.run(backend="slurm", tasks_per_job=50, n_jobs=8)                       # needs a Slurm cluster  # doctest: +SKIP
    >>> res = wf.run(backend="slurm", array_parallelism=4, max_queued_jobs=500)         # needs a Slurm cluster  # doctest: +SKIP
    """

    supports_stop = True
    supports_observer = True

    name = "slurm"

    def __init__(self, partition=None, sbatch_options=(), job_seconds=None, tasks_per_job=None,
                 python=None, remote_workdir=None, poll_seconds=1.0, array_parallelism=None, max_queued_jobs=None,
                 max_retries=DEFAULT_MAX_RETRIES, check_first=True):
        owner = "the 'slurm' backend"
        validate_params({"partition": partition, "sbatch_options": sbatch_options, "python": python,
                         "remote_workdir": remote_workdir, "poll_seconds": poll_seconds,
                         "array_parallelism": array_parallelism, "max_queued_jobs": max_queued_jobs,
                         "max_retries": max_retries, "check_first": check_first}, SLURM_CONSTRAINTS, owner)
        check_bundle_options(job_seconds, tasks_per_job, owner)
        self.partition = partition
        self.sbatch_options = list(sbatch_options)
        self.job_seconds = DEFAULT_JOB_SECONDS if job_seconds is None and tasks_per_job is None else job_seconds
        self.tasks_per_job = tasks_per_job
        self.python = python
        self.remote_workdir = remote_workdir
        self.poll_seconds = poll_seconds
        self.array_parallelism = array_parallelism
        self.max_queued_jobs = max_queued_jobs
        self.max_retries = max_retries
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
        if self.array_parallelism is not None:
            throttle = min(throttle or self.array_parallelism, self.array_parallelism)
        record = self._submit_tasks(workflow, task_ids, throttle, self.job_seconds, self.tasks_per_job, stop=stop,
                                    extra={"attempt": 0, "max_retries": self.max_retries})
        failed = self._wait(workflow, record, progress, stop, observer)
        for task_id in record.get("unsubmitted", ()):  # a wave that could never come
            failed.setdefault(task_id, "not submitted: the run's queued jobs could never start "
                                       "(a task they wait for failed), so its wave never came")
        return failed

    def _submit_tasks(self, workflow, task_ids, throttle, job_seconds, tasks_per_job, stop=None, extra=None):
        """Bundle ``task_ids``, plan their arrays and submit them (a run, or a round of retries)."""
        workers = throttle or min(DEFAULT_MAX_WORKERS, _partition_cpus(self.partition))
        # A run with an estimate (or measured outputs) sizes bundles and time limits from it.
        costs = getattr(workflow, "_predicted_seconds", lambda: None)()
        bundles = make_bundles(workflow, task_ids, workers, job_seconds, tasks_per_job, costs)
        return self._submit(workflow, plan_arrays(bundles), throttle, stop, extra)

    def _resubmit(self, workflow, verdict, attempt):
        """Submit the unfinished tasks of lost jobs again (retry ``attempt``), logged; the new record."""
        current = read_submission(workflow.workdir)  # also when attached: the run's own options
        options, max_retries = current["options"], current.get("max_retries", self.max_retries)
        throttle, job_seconds, tasks_per_job = options["throttle"], options["job_seconds"], options["tasks_per_job"]
        if verdict.timed_out_sizes:  # the bundles were too long for the walltime: halve them
            job_seconds, tasks_per_job = None, max(1, max(verdict.timed_out_sizes) // 2)
        record = self._submit_tasks(workflow, verdict.resubmit, throttle, job_seconds, tasks_per_job,
                                    extra={"attempt": attempt, "max_retries": max_retries, "lost": verdict.lost})
        n_jobs = sum(array["size"] for array in record["arrays"])
        retry.log_event(workflow.workdir, retry.describe_loss(verdict, workflow, attempt, max_retries, n_jobs)
                        + f": Slurm jobs {', '.join(array['job_id'] for array in record['arrays'])}")
        return record

    def _submit(self, workflow, arrays, throttle, stop=None, extra=None):
        job_ids = []  # filled by submit_arrays as sbatch answers
        try:
            return submit_arrays(self, workflow, arrays, throttle, _run, _record_path(workflow), stop, job_ids, extra)
        except BaseException:
            # Half a submission must not keep running on its own.
            _cancel(job_ids)
            raise

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
        The record is marked cancelled first, so that a driver still
        following it does not take the cancelled jobs for lost ones and
        submit them again.  Returns the job ids cancelled.

        Examples
        --------
        >>> SlurmBackend().cancel(wf)      # needs a Slurm cluster  # doctest: +SKIP
        ['41', '42', '43']
        """
        record = read_submission(workflow.workdir)
        job_ids = [array["job_id"] for array in record["arrays"]] if record else []
        if record:
            store.write_json(_record_path(workflow), {**record, "cancelled": time.time()})
        _cancel(job_ids, wait=True)
        return job_ids

    def jobs_status(self, workdir, record):
        """The recorded arrays' elements as Slurm sees them: ``{"pending": n, "running": n, "finished": n}``.

        Read from the process's watcher: its cache when it follows these
        jobs, else the fresh view another process (the driver) wrote to the
        workdir, else one ``squeue`` call spaced by the watcher's law (see
        :mod:`~mempamal.backends.slurm.watcher`).  Never raises (``"error"``
        says why squeue did not answer).

        Examples
        --------
        >>> SlurmBackend().jobs_status(wf.workdir, read_submission(wf.workdir))   # needs a Slurm cluster  # doctest: +SKIP
        {'pending': 3, 'running': 2, 'finished': 4}
        """
        total = sum(array["size"] for array in record["arrays"])
        job_ids = [array["job_id"] for array in record["arrays"]]
        try:
            answer = WATCHER.view(workdir, job_ids)
        except Exception as exc:  # a status display must never fail because a cluster is away
            return {"error": f"squeue did not answer ({type(exc).__name__}: {exc})"}
        if answer is None:
            return {"error": "squeue did not answer"}
        states = [state for element, (state, _) in answer.items() if element_array(element) in job_ids]
        running = sum(state in ("RUNNING", "COMPLETING") for state in states)
        queued = sum(state in ACTIVE_STATES for state in states)
        return {"pending": queued - running, "running": running, "finished": max(0, total - queued)}

    def _wait(self, workflow, record, progress, stop, observer=None):
        return follow(self, workflow, record, progress, stop, observer)


def _record_path(workflow):
    return workflow.workdir / SUBMISSIONS_DIR / RECORD


def _check_commands():
    missing = [command for command in ("sbatch", "squeue", "scancel") if shutil.which(command) is None]
    if missing:
        raise SetupError(f"{INSTALL_HINT} Missing: {', '.join(missing)}.")


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


def read_submission(workdir):
    """The Slurm submission record of ``workdir`` (a dict), or None.

    Examples
    --------
    >>> [a["job_id"] for a in read_submission("runs/iris")["arrays"]]   # needs a Slurm cluster  # doctest: +SKIP
    ['41', '42']
    """
    path = Path(workdir) / SUBMISSIONS_DIR / RECORD
    return json.loads(path.read_text()) if path.exists() else None
