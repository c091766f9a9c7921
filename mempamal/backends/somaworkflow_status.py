"""Reading a submitted soma-workflow workflow back: job ids, progress, failures by task.

Jobs run bundles (several tasks each, see :mod:`mempamal.backends.bundles`); the
output files say which tasks are done, soma-workflow's job statuses and
stderr (or the task's ``logs/<id>.err``) explain the others.
"""

import contextlib

from .. import store
from .base import DependencyTracker


def job_ids_of(controller, workflow_id, swf, entries):
    """Bundle id -> soma-workflow job id (the engine keeps the submission order).

    Examples
    --------
    >>> job_ids_of(controller, workflow_id, swf, entries)     # doctest: +SKIP
    {'bundle-0-0': 12, 'bundle-0-1': 13, 'bundle-1-0': 14}
    """
    submitted = controller.workflow(workflow_id)
    ids = {}
    for entry, ours, theirs in zip(entries, swf.jobs, submitted.jobs, strict=True):
        if ours.name != theirs.name:
            raise RuntimeError(f"soma-workflow reordered the jobs: {ours.name!r} != {theirs.name!r}")
        ids[entry["id"]] = submitted.job_mapping[theirs].job_id
    return ids


def _ended(constants, job):
    return job[1] in (constants.DONE, constants.FAILED)


def _exit_failed(constants, job):
    """soma-workflow reports a job that exited with 1 as 'done': read its exit value."""
    exit_status, exit_value = (job[3] or (None, None))[:2]
    return job[1] == constants.FAILED or exit_status != constants.FINISHED_REGULARLY or exit_value != 0


def show_progress(bar, constants, jobs, workdir, wanted):
    """Move ``bar`` to the number of ``wanted`` tasks with an output; jobs running/failed as postfix.

    Examples
    --------
    >>> show_progress(bar, constants, jobs, wf.workdir, set(wf.pending_ids()))   # doctest: +SKIP
    """
    # Tasks, not jobs: a bundle's outputs appear one by one (one listdir,
    # so outputs written on other nodes are seen as soon as the FS shows them).
    done = len(store.finished_task_ids(workdir) & wanted)
    if done > bar.n:
        bar.update(done - bar.n)
    running = sum(job[1] == constants.RUNNING for job in jobs)
    failed = sum(_ended(constants, job) and _exit_failed(constants, job) for job in jobs)
    bar.set_postfix(running=running, failed=failed, refresh=False)


def failures(controller, constants, workflow, entries, job_ids, jobs, state_dir):
    """``{task_id: message}``: tasks that failed (with their traceback) and what they blocked.

    A task succeeded iff its output exists (files are the truth); its
    bundle's exit value, the task's ``logs/<id>.err`` or else the job's
    stderr explain a failure.

    Examples
    --------
    >>> failures(controller, constants, wf, entries, job_ids, jobs, wf.workdir / "soma-workflow")  # doctest: +SKIP
    {'fit-o0-i0-c1': "soma-workflow job 12 done (finished_regularly, exit value 1): ...", ...}
    """
    done = store.finished_task_ids(workflow.workdir)
    tracker = DependencyTracker(workflow, [t for entry in entries for t in entry["tasks"]])
    failed = {}
    for entry in entries:
        job = jobs[entry["id"]]
        if job[3] and job[3][0] == constants.EXIT_NOTRUN:
            continue  # aborted because a dependency failed: reported below
        exit_status, exit_value = (job[3] or (None, None))[:2]
        stderr = None
        for task_id in entry["tasks"]:
            if task_id in done or task_id in failed:
                continue
            task_log = store.log_path(workflow.workdir, task_id)
            if task_log.exists():
                detail = task_log.read_text(errors="replace").strip()[-2000:]
            else:
                if stderr is None:
                    stderr = _stderr_tail(controller, job_ids[entry["id"]], state_dir)
                detail = stderr
            tracker.record(task_id, f"soma-workflow job {job_ids[entry['id']]} {job[1]} "
                                    f"({exit_status}, exit value {exit_value}): {detail}", failed)
    for entry in entries:
        for task_id in entry["tasks"]:
            if task_id not in done and task_id not in failed:
                failed[task_id] = f"not run (soma-workflow status {jobs[entry['id']][1]!r})"
    return failed


def _stderr_tail(controller, job_id, state_dir, limit=2000):
    """The end of a job's stderr (the task's error message comes last)."""
    out_path, err_path = state_dir / f"job{job_id}.out", state_dir / f"job{job_id}.err"
    try:
        controller.retrieve_job_stdouterr(job_id, str(out_path), str(err_path))
        text = err_path.read_text(errors="replace").strip()
    except Exception as exc:  # no stderr file (never started), transfer error...
        return f"(no stderr: {exc})"
    finally:
        for path in (out_path, err_path):
            with contextlib.suppress(OSError):
                path.unlink()
    return text[-limit:] or "(empty stderr)"
