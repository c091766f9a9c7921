"""Following a Slurm submission to its end: rounds of arrays, lost jobs submitted again.

:func:`follow` is what ``SlurmBackend.run`` and ``attach`` do after
submitting: :func:`wait_round` until every array of the round has left the
queue (reading the process's :data:`~mempamal.backends.slurm.watcher.WATCHER`,
never squeue itself), then :func:`~mempamal.backends.slurm.retry.judge`
the unfinished tasks and, when jobs were lost (walltime, preemption, a dead
node, a kill), submit them again as a new round, at most ``max_retries``
times.  The output files stay the truth: progress counts them, and a task
without an output when its job is gone has failed (``logs/<id>.err``) or was
not run.
"""

import subprocess
import time

from ... import store
from ..base import RunCancelled, RunObserver, make_progress
from . import retry
from .watcher import ACTIVE_STATES, WATCHER, element_array, run_command

#: Seconds an array must have left the queue before missing outputs (not
#: yet visible on a shared filesystem?) count as failed tasks.
OUTPUT_GRACE = 10
#: States of an element that ended without exiting 0.
FAILED_STATES = frozenset({"FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
                           "DEADLINE", "PREEMPTED"})


def follow(backend, workflow, record, progress=False, stop=None, observer=None, watcher=WATCHER):
    """Wait for the submission ``record`` and its retry rounds; ``{task_id: message}`` of the failures.

    Examples
    --------
    >>> failed = follow(SlurmBackend(), wf, read_submission(wf.workdir))   # needs a Slurm cluster  # doctest: +SKIP
    """
    observer = RunObserver() if observer is None else observer
    raised = {}  # tasks that raised in earlier rounds: failures for good
    while True:
        states, cancelled = wait_round(workflow, record, progress, stop, observer, backend.poll_seconds, watcher)
        verdict = retry.judge(workflow, record, states, cancelled, watcher)
        raised.update(verdict.raised)
        attempt = int(record.get("attempt", 0))
        limit = int(record.get("max_retries", backend.max_retries))  # the run's own, also when attached
        if not verdict.resubmit or attempt >= limit or _cancelled_elsewhere(workflow, record):
            return {**raised, **verdict.failures(attempt)}
        if stop is not None and stop.is_set():
            raise RunCancelled(f"the Slurm run of {workflow.workdir} was cancelled")
        record = backend._resubmit(workflow, verdict, attempt + 1)


def _cancelled_elsewhere(workflow, record):
    """True when ``SlurmBackend.cancel`` (another process) marked this round cancelled: no retry."""
    path = workflow.workdir / "submissions" / "slurm.json"  # backend.read_submission (which imports us)
    try:
        current = store.read_json(path)
    except (OSError, ValueError, store.WorkdirError):
        return False
    return bool(current.get("cancelled")) and current.get("submitted") == record.get("submitted")


def wait_round(workflow, record, progress, stop, observer, poll_seconds=1.0, watcher=WATCHER):
    """Wait until every array of ``record`` has left the queue; returns (last states, arrays we cancelled).

    Outputs are listed every ``poll_seconds`` (progress; new ones nudge the
    watcher); the queue is whatever the watcher last saw.  Arrays that wait
    on a failed or lost array are cancelled (they would pend forever).
    Ctrl-C, an error or ``stop`` cancels every job of the round.

    Examples
    --------
    >>> states, cancelled = wait_round(wf, record, False, None, RunObserver())   # needs a Slurm cluster  # doctest: +SKIP
    """
    job_ids = [array["job_id"] for array in record["arrays"]]
    wanted = {task_id for array in record["arrays"] for bundle in array["bundles"] for task_id in bundle}
    bar = make_progress(len(wanted), progress, desc="mempamal slurm")
    token = watcher.watch(workflow.workdir, job_ids, poll_seconds)
    ended_at, cancelled, finished, n_done, states = {}, set(), False, -1, {}
    try:
        while True:
            if stop is not None and stop.is_set():
                raise RunCancelled(f"the Slurm run of {workflow.workdir} was cancelled (jobs {job_ids})")
            # listdir every loop: an output written on another node appears here.
            done = store.finished_task_ids(workflow.workdir) & wanted
            if len(done) != n_done:
                watcher.nudge()  # tasks finish: the queue changes too, look again soon
                n_done = len(done)
                bar.update(n_done - bar.n)
            watcher.poll()
            seen = watcher.states(job_ids)
            if seen is not None:
                states = seen
                active = {e: s for e, s in states.items() if s[0] in ACTIVE_STATES}
                observer.now_executing(running_bundles(record, active))
                stuck = set(never_startable(record, states, active, done, ended_at, watcher)) - cancelled
                cancel_jobs(sorted(stuck))  # waits on a failed array: would stay pending forever
                cancelled |= stuck
                bar.set_postfix(jobs=len(active), refresh=False)
                if not {element_array(e) for e in active} - cancelled:
                    break
            pause = min(poll_seconds, max(0.05, watcher.next_in()))
            if stop is None:
                time.sleep(pause)
            else:
                stop.wait(pause)  # a cancel is taken at once, not at the next poll
        finished = True
    finally:
        watcher.unwatch(token)
        if not finished:
            cancel_jobs(job_ids, wait=True)
        observer.now_executing([])
        bar.close()
    return states, cancelled


def never_startable(record, states, active, done, ended_at, watcher=WATCHER):
    """Queued arrays whose ``afterok`` can no longer be met: an array they wait for failed or was lost.

    Slurm notices this only at its next dependency check (tens of
    seconds).  The watcher's states say at once (squeue ``-t all`` keeps
    ended elements with their state), else sacct, else the outputs: an
    array gone from the queue for ``OUTPUT_GRACE`` seconds (time for a
    shared filesystem to show its files) with a task output missing did
    not exit 0 everywhere.  ``ended_at`` maps array job ids to when they
    left the queue.

    Examples
    --------
    >>> never_startable({"arrays": []}, {}, {}, set(), {})
    []
    """
    arrays = record["arrays"]
    queued = {element_array(e) for e in active}
    now = time.monotonic()
    for array in arrays:
        if array["job_id"] not in queued:
            ended_at.setdefault(array["job_id"], now)
    stuck = []
    for array in arrays:
        if array["job_id"] not in queued:
            continue
        reasons = [reason for e, (_, reason) in active.items() if element_array(e) == array["job_id"]]
        needed = [arrays[index] for index in array.get("after", ())]
        if any("DependencyNeverSatisfied" in reason for reason in reasons):
            stuck.append(array["job_id"])
        elif needed and not any(dep["job_id"] in queued for dep in needed):
            if any(_ended_badly(dep, states, done, now - ended_at[dep["job_id"]], watcher) for dep in needed):
                stuck.append(array["job_id"])
    return stuck


def _ended_badly(array, states, done, gone_for, watcher):
    """Did an array that left the queue not exit 0 in every element?"""
    unfinished = [f"{array['job_id']}_{position}" for position, bundle in enumerate(array["bundles"])
                  if any(task_id not in done for task_id in bundle)]
    if not unfinished:
        return False  # every output is there: every element exited 0
    known = {e: states[e][0] for e in unfinished if e in states}
    if any(state.split()[0] in FAILED_STATES for state in known.values() if state):
        return True
    unknown = [e for e in unfinished if e not in known]
    if unknown:
        final = watcher.final_states(unknown, wait=False)  # not now: the outputs' grace decides
        if any(fields["State"].split()[0] in FAILED_STATES for fields in final.values()):
            return True
        if len(final) == len(unknown):
            return False
    return gone_for >= OUTPUT_GRACE  # outputs still missing after the grace: not exit 0


def running_bundles(record, active):
    """The bundles of the array elements Slurm runs now (state RUNNING in ``active``).

    Examples
    --------
    >>> record = {"arrays": [{"job_id": "41", "bundles": [["fit-o0-i0-c0"], ["fit-o0-i1-c0"]]}]}
    >>> running_bundles(record, {"41_1": ("RUNNING", "None"), "41_0": ("PENDING", "Resources")})
    [['fit-o0-i1-c0']]
    """
    bundles = {array["job_id"]: array["bundles"] for array in record["arrays"]}
    running = []
    for job, (state, _) in active.items():
        array_id, _, index = job.partition("_")
        if state == "RUNNING" and index.isdigit() and int(index) < len(bundles.get(array_id, ())):
            running.append(bundles[array_id][int(index)])
    return running


def cancel_jobs(job_ids, wait=False, timeout=60):
    """``scancel`` the jobs; with ``wait``, until they have left the queue (or ``timeout``).

    Examples
    --------
    >>> cancel_jobs([])   # nothing to cancel: no scheduler call
    """
    if not job_ids:
        return
    try:
        run_command(["scancel", *job_ids])
        deadline, pause = time.monotonic() + timeout, 0.25
        while wait and time.monotonic() < deadline:
            answer = run_command(["squeue", "-h", "-j", ",".join(job_ids)])
            if answer.returncode != 0 or not answer.stdout.strip():
                break  # gone (or purged: "Invalid job id")
            time.sleep(pause)
            pause = min(4.0, pause * 2)  # polite even while cancelling
    except (OSError, subprocess.TimeoutExpired):
        pass  # best effort: the caller is already failing or cancelling
