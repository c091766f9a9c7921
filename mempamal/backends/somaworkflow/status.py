"""Reading a submitted soma-workflow workflow back: job ids, progress, failures by task.

Jobs run bundles (several tasks each, see :mod:`mempamal.backends.bundles`); the
output files say which tasks are done, soma-workflow's job statuses and
stderr (or the task's ``logs/<id>.err``) explain the others.
"""

import contextlib

from ... import store
from ..tracker import DependencyTracker


def job_ids_of(controller, workflow_id, swf, entries):
    """Bundle id -> soma-workflow job id (the engine keeps the submission order).

    Examples
    --------
    >>> job_ids_of(controller, workflow_id, swf, entries)     # needs a soma-workflow resource  # doctest: +SKIP
    {'bundle-0-0': 12, 'bundle-0-1': 13, 'bundle-1-0': 14}
    """
    submitted = controller.workflow(workflow_id)
    ids = {}
    for entry, ours, theirs in zip(entries, swf.jobs, submitted.jobs, strict=True):
        if ours.name != theirs.name:
            from ...exceptions import BackendError

            raise BackendError(f"soma-workflow reordered the jobs: {ours.name!r} != {theirs.name!r}")
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
    >>> show_progress(bar, constants, jobs, wf.workdir, set(wf.pending_ids()))   # needs a soma-workflow resource  # doctest: +SKIP
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
    >>> failures(controller, constants, wf, entries, job_ids, jobs, wf.workdir / "soma-workflow")  # needs a soma-workflow resource  # doctest: +SKIP
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


# ------------------------------------------------------------ the record
#: Where a soma-workflow submission to a cluster resource is recorded.
RECORD = "soma-workflow.json"


def record_path(workdir):
    """``WORKDIR/submissions/soma-workflow.json``.

    Examples
    --------
    >>> record_path("runs/iris").name
    'soma-workflow.json'
    """
    from pathlib import Path

    return Path(workdir) / "submissions" / RECORD


def write_record(workdir, record):
    """Record a submission (workflow id, resource, configuration, bundles and their job ids, time).

    Examples
    --------
    >>> write_record(wf.workdir, {"workflow_id": 3, "bundles": []})
    >>> read_record(wf.workdir)["workflow_id"]
    3
    """
    path = record_path(workdir)
    store.make_private_dir(path.parent)
    store.write_json(path, record)


def read_record(workdir):
    """The recorded soma-workflow submission of ``workdir`` (a dict), or None.

    Examples
    --------
    >>> import tempfile
    >>> read_record(tempfile.mkdtemp()) is None
    True
    """
    path = record_path(workdir)
    if not path.exists():
        return None
    record = store.read_json(path)
    return record if isinstance(record, dict) and "workflow_id" in record else None


def mark_record_ended(workdir, workflow_id):
    """The driver saw workflow ``workflow_id`` to its end (and deleted it from the engine): say so.

    Examples
    --------
    >>> write_record(wf.workdir, {"workflow_id": 3, "bundles": []})
    >>> mark_record_ended(wf.workdir, 3)
    >>> sorted(read_record(wf.workdir))
    ['bundles', 'ended', 'workflow_id']
    """
    import time

    record = read_record(workdir)
    if record is not None and record["workflow_id"] == workflow_id:
        write_record(workdir, {**record, "ended": time.time()})


def unfinished(workflow, record):
    """``{task_id: message}`` for the recorded tasks without an output (a submission that has ended).

    Examples
    --------
    >>> write_record(wf.workdir, {"workflow_id": 3, "bundles": []})
    >>> unfinished(wf, read_record(wf.workdir))
    {}
    """
    done = store.finished_task_ids(workflow.workdir)
    failed = {}
    for entry in record["bundles"]:
        for task_id in entry["tasks"]:
            if task_id not in done:
                log = store.log_path(workflow.workdir, task_id)
                failed[task_id] = (log.read_text(errors="replace").strip()[-2000:] if log.exists()
                                   else f"not run by soma-workflow job {entry['job_id']}")
    return failed


# ------------------------------------------------------------ the view
#: soma-workflow job statuses of jobs that have ended, and of jobs executing.
_ENDED, _RUNNING = ("done", "failed"), ("running",)


def engine_view(workdir, record, timeout=5.0):
    """Jobs of the recorded workflow: ``{"pending": n, "running": n, "finished": n}``.

    Read from soma-workflow's database (the recorded one, in
    ``WORKDIR/soma-workflow/``, opened read-only: no engine is started).  When the resource is Slurm the
    jobs the database calls queued or running are looked up with one
    ``squeue`` call, which is right even when no engine is alive to update
    the database (its driver died).  Never raises: ``"error"`` says what
    could not be read.

    Examples
    --------
    >>> engine_view(wf.workdir, read_record(wf.workdir))     # needs a soma-workflow resource  # doctest: +SKIP
    {'pending': 2, 'running': 2, 'finished': 1}
    """
    import sqlite3

    if record.get("ended"):
        return {"pending": 0, "running": 0, "finished": len(record["bundles"])}
    try:
        rows = [(status, drmaa_id) for _, status, drmaa_id in _job_rows(workdir, record, timeout)]
    except sqlite3.Error as exc:
        return {"error": f"soma-workflow's database cannot be read: {exc}"}
    view = {"pending": 0, "running": 0, "finished": 0}
    live = [drmaa_id for status, drmaa_id in rows if status not in _ENDED and drmaa_id]
    queue = _slurm_states(live) if record.get("scheduler") == "slurm" and live else None
    if queue is not None and "error" in queue:
        view["error"] = queue["error"]
        queue = None
    for status, drmaa_id in rows:
        if queue is not None and drmaa_id in live:
            state = queue.get(str(drmaa_id))
            kind = "finished" if state is None else "running" if state == "RUNNING" else "pending"
        else:
            kind = "finished" if status in _ENDED else "running" if status in _RUNNING else "pending"
        view[kind] += 1
    return view


def _job_rows(workdir, record, timeout=5.0):
    """``(soma job id, status, scheduler job id)`` of the recorded workflow's jobs, from soma-workflow's database.

    The ``jobs`` table of soma-workflow's schema (``database_server.create_database``),
    opened read-only: an engine may be writing it.
    """
    import sqlite3
    from pathlib import Path

    database = record.get("database") or Path(workdir) / "soma-workflow" / "soma_workflow.db"
    if not Path(database).exists():
        raise sqlite3.OperationalError(f"no database file {database}")
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=timeout)
    try:
        return connection.execute("SELECT id, status, drmaa_id FROM jobs WHERE workflow_id = ?",
                                  (record["workflow_id"],)).fetchall()
    finally:
        connection.close()


def surviving_jobs(workdir, record):
    """``{scheduler job id: tasks}``: jobs of the recorded workflow submitted and not ended, per soma-workflow's database.

    What a dead driver's engine leaves running on the cluster.

    Examples
    --------
    >>> surviving_jobs(wf.workdir, read_record(wf.workdir))     # needs a soma-workflow resource  # doctest: +SKIP
    {'41': ['fit-o1-i0-c0', 'fit-o1-i0-c1']}
    """
    tasks_of = {entry["job_id"]: entry["tasks"] for entry in record["bundles"]}
    return {str(drmaa_id): tasks_of[job_id] for job_id, status, drmaa_id in _job_rows(workdir, record, 30.0)
            if drmaa_id and status not in _ENDED and job_id in tasks_of}


def _slurm_states(job_ids, timeout=10):
    """``{job id: squeue state}`` of the jobs still queued; ``{"error": ...}`` when squeue does not answer."""
    import subprocess

    try:
        answer = subprocess.run(["squeue", "-h", "-o", "%i|%T", "-j", ",".join(map(str, job_ids))],
                                capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"squeue did not answer ({exc})"}
    if answer.returncode != 0 and "Invalid job id" not in answer.stderr:
        return {"error": f"squeue failed: {answer.stderr.strip() or answer.returncode}"}
    return dict(line.split("|", 1) for line in answer.stdout.splitlines() if "|" in line)


def wait_for_slurm_jobs(workflow, survivors, interrupts, poll_interval, observer=None):
    """Wait until the Slurm jobs ``{job id: tasks}`` left the queue; cancel them on Ctrl-C or ``stop``.

    ``interrupts.check()`` raises when the wait must end (Ctrl-C, the
    run's ``stop`` event).  Jobs in state R are told to ``observer`` (the
    run's :class:`~mempamal.backends.base.RunObserver`) as executing.

    Examples
    --------
    >>> wait_for_slurm_jobs(wf, {"41": ["fit-o0-i0-c0"]}, interrupts, 1.0)   # needs a soma-workflow resource  # doctest: +SKIP
    """
    import time

    from ..base import RunObserver
    from ..slurm.backend import _cancel, _queue_states

    job_ids = sorted(survivors)
    observer = RunObserver() if observer is None else observer
    finished = False
    try:
        while job_ids:
            active = _queue_states(job_ids)
            if active is not None:
                observer.now_executing([survivors[job] for job, (state, _) in active.items()
                                        if state == "RUNNING" and job in survivors])
                if not active:
                    break
            interrupts.check()
            time.sleep(max(poll_interval, 0.5))
        finished = True
    finally:
        if not finished:
            _cancel(job_ids, wait=True)  # a cancelled attach stops what it was following
        observer.now_executing([])
