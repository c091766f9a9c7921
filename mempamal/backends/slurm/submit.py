"""Submitting the planned job arrays under the site's limits: pieces, waves, time limits.

:func:`submit_arrays` is what :meth:`SlurmBackend._submit
<mempamal.backends.slurm.backend.SlurmBackend>` does: it reads the limits
(:mod:`mempamal.backends.slurm.limits`), cuts arrays larger than
``MaxArraySize`` or the queue allows into pieces (a dependent level waits
for every piece), and calls ``sbatch`` once per piece, recording each job id
in ``WORKDIR/submissions/slurm.json`` at once.  When the pieces would queue
more elements than allowed (``max_queued_jobs=``, ``MaxSubmitJobs``, a share
of ``MaxJobCount``), it submits in **waves**: before each sbatch it waits
until enough of our elements have left the queue.  A wave that can never
come (the queued elements wait on an array that failed) ends the
submission: what was not submitted is left pending, and the run reports it.
"""

import os
import sys
import time
from dataclasses import replace

from ... import store
from ...exceptions import BackendError
from ..base import allow_version_mismatch
from .limits import has_time_option, piece_size, read_limits, time_limit
from .script import array_script, sbatch_arguments, split_arrays

#: squeue states of an element still occupying the queue.
QUEUED_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
                 "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}


#: Seconds an array must have left the queue before its missing outputs mean it failed.
OUTPUT_GRACE = 10


class SubmissionRefused(BackendError):
    """sbatch refused an array (its message says why); a :class:`~mempamal.exceptions.BackendError`."""


def submit_arrays(backend, workflow, arrays, throttle, run, record_path, stop=None, job_ids=None, extra=None):
    """Submit ``arrays`` (:func:`~mempamal.backends.slurm.script.plan_arrays`) within the site's limits.

    ``backend`` gives the options (partition, sbatch_options, python,
    remote_workdir, max_queued_jobs, poll_seconds); ``run(command)`` runs a
    Slurm command.  Returns the submission record; the job ids are also
    appended to ``job_ids`` as sbatch answers, so that a caller can cancel
    what was submitted when this fails half-way.  ``extra`` adds fields to
    the record (a retry round's attempt number, the jobs it replaces).

    Examples
    --------
    >>> record = submit_arrays(backend, wf, plan_arrays(bundles), None, _run, _record_path(wf))  # needs a Slurm cluster  # doctest: +SKIP
    """
    limits = read_limits(run)
    queue_limit = limits.queue_limit(backend.max_queued_jobs)
    arrays = split_arrays(arrays, piece_size(limits, queue_limit))
    folder = store.make_private_dir(workflow.workdir / "submissions"
                                    / f"slurm-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    log_dir = store.make_private_dir(folder / "logs")
    python = str(backend.python or workflow.manifest.get("python") or sys.executable)
    workdir = str(backend.remote_workdir or workflow.workdir)
    record = {
        "backend": "slurm", "submitted": time.time(), "folder": str(folder),
        "options": {"partition": backend.partition, "sbatch_options": backend.sbatch_options,
                    "job_seconds": backend.job_seconds, "tasks_per_job": backend.tasks_per_job,
                    "throttle": throttle, "python": python, "workdir": workdir,
                    "max_queued_jobs": backend.max_queued_jobs},
        "limits": {"max_array_size": limits.max_array_size, "max_job_count": limits.max_job_count,
                   "max_submit_jobs": limits.max_submit_jobs, "queue_limit": queue_limit},
        "arrays": [], **(extra or {}),
    }
    job_ids = [] if job_ids is None else job_ids
    queued_total, in_waves = 0, False
    for array in arrays:
        queued_total += array.size
        # Until the first wave, every array fits and what it needs was just submitted: no squeue call.
        in_waves = in_waves or (queue_limit is not None and queued_total > queue_limit)
        if in_waves:
            waiting = _wait_for_room(job_ids, array.size, queue_limit, run, backend, stop)
            array = _live_dependencies(array, arrays, job_ids, run, workflow.workdir) if waiting else None
            if array is None:
                record["unsubmitted"] = [t for a in arrays[len(job_ids):] for b in a.bundles for t in b.task_ids]
                break
        script = folder / f"{array.name}.sh"
        store.atomic_write_bytes(script, array_script(array, python, workdir,
                                                      allow_version_mismatch(workflow)).encode())
        limit = _array_time(array, backend.sbatch_options)
        arguments = sbatch_arguments(array, job_ids, log_dir, backend.partition, backend.sbatch_options,
                                     throttle, prefix=f"mempamal-{workflow.workdir.name}", time=limit)
        done = run(["sbatch", *arguments, str(script)])
        if done.returncode != 0:
            raise SubmissionRefused(f"sbatch refused job array {array.name} of {workflow.workdir}: "
                                    f"{done.stderr.strip() or done.stdout.strip()}")
        job_ids.append(done.stdout.strip().split(";")[0])
        record["arrays"].append({"job_id": job_ids[-1], "name": array.name, "size": array.size,
                                 "level": array.level, "after": list(array.after), "time": limit,
                                 "bundles": [list(bundle.task_ids) for bundle in array.bundles]})
        # Recorded after every sbatch: a driver killed half-way still
        # leaves the ids of what it submitted (for attach/cancel).
        store.write_json(record_path, record)
    return record


def _array_time(array, sbatch_options):
    """``--time`` for ``array`` when the user set none and every bundle's cost was measured, else None.

    From guesses no limit is set: a guessed minute must not kill a real hour.
    """
    if has_time_option(sbatch_options) or not all(bundle.measured for bundle in array.bundles):
        return None
    return time_limit(max(bundle.seconds for bundle in array.bundles))


def _live_dependencies(array, arrays, job_ids, run, workdir):
    """``array`` waiting only for the arrays still queued, or None when one it needs failed.

    In waves an array is submitted late: an array it needs may have left the
    queue, and one that left long ago is unknown to Slurm (purged after
    ``MinJobAge``), so ``afterok`` on it would be refused.  One that left
    with every output written succeeded (dropped); one that left without
    them failed, and nothing waiting for it may run.
    """
    if not array.after:
        return array
    queued = _queued(job_ids, run)
    if queued is None:
        return array  # no answer: keep every dependency (sbatch judges)
    still = {element.split("_")[0] for element in queued}
    done, after = None, []
    for index in array.after:
        if job_ids[index] in still:
            after.append(index)
            continue
        needed = [t for bundle in arrays[index].bundles for t in bundle.task_ids]
        deadline = time.monotonic() + OUTPUT_GRACE
        done = store.finished_task_ids(workdir) if done is None else done
        while any(t not in done for t in needed):
            if time.monotonic() >= deadline:
                return None
            time.sleep(1)  # a shared filesystem may show a node's outputs late
            done = store.finished_task_ids(workdir)
    return replace(array, after=tuple(after))


def _wait_for_room(job_ids, size, limit, run, backend, stop):
    """Wait until ``size`` more elements fit under ``limit``; False when that can never happen."""
    while True:
        if stop is not None and stop.is_set():
            from ..base import RunCancelled

            raise RunCancelled("the Slurm submission was cancelled while waiting for room in the queue")
        queued = _queued(job_ids, run)
        if queued is not None:
            if len(queued) + size <= limit or not queued:
                return True
            if all("DependencyNeverSatisfied" in reason for reason in queued.values()):
                return False  # they will never run: neither will what would wait for them
        if stop is None:
            time.sleep(backend.poll_seconds)
        else:
            stop.wait(backend.poll_seconds)


def _queued(job_ids, run):
    """``{element: reason}`` of our elements still queued, or None when squeue did not answer."""
    if not job_ids:
        return {}
    try:
        answer = run(["squeue", "-h", "-r", "-o", "%i|%T|%r", "-j", ",".join(job_ids)])
    except OSError:
        return None
    if answer.returncode != 0:
        return {} if "Invalid job id" in answer.stderr else None
    queued = {}
    for line in answer.stdout.splitlines():
        element, state, reason = (line.split("|") + ["", ""])[:3]
        if state in QUEUED_STATES:
            queued[element] = reason
    return queued
