"""Who runs a workdir: a job submission recorded by a backend, or a live process holding the run lock.

Read from the workdir alone, so a restarted kernel, the command line and the
displays all see the same thing.  (Graph layer: imports nothing of the api.)
"""

#: Folder of a workdir where job-based backends record their submissions.
SUBMISSIONS_DIR = "submissions"


def recorded_submission(workdir):
    """The newest job submission a backend recorded in ``WORKDIR/submissions/``, or None.

    A job-based backend writes ``submissions/<backend name>.json`` when it
    submits, so that the jobs can be found again after a restart (callers
    ignore the record once no task is pending).  Returns the file's content
    with ``"backend"`` set to that name.

    Examples
    --------
    >>> import tempfile
    >>> recorded_submission(tempfile.mkdtemp()) is None
    True
    """
    import json
    from pathlib import Path

    folder = Path(workdir) / SUBMISSIONS_DIR
    records = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    for path in reversed(records):
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # half-removed or foreign: not a submission we can follow
        return {**(content if isinstance(content, dict) else {}), "backend": path.stem}
    return None


def live_runner(workdir):
    """Who holds the workdir's run lock (``host``, ``pid``...), if alive; else None.

    Examples
    --------
    >>> import tempfile
    >>> live_runner(tempfile.mkdtemp()) is None
    True
    """
    try:
        from ..store import lock
    except ImportError:  # a mempamal without run locks: nobody can be seen running
        return None
    holder = lock.read_holder(workdir)
    if holder is None or lock.is_stale(holder):
        return None
    return holder


def scheduler_view(workdir, submission):
    """What the scheduler says of a recorded submission's jobs, e.g. ``{"pending": 2, "running": 3, "finished": 7}``.

    Asked of the backend that recorded it (its ``JobBackend.jobs_status``:
    one ``squeue`` call for slurm, soma-workflow's database for
    soma-workflow), with ``"backend"`` added.  Never raises: when the
    scheduler cannot be reached ``"error"`` says so; None when the backend
    has no such view.

    Examples
    --------
    >>> scheduler_view("runs/bc", {"backend": "no-such-backend"})["error"][:51]
    "cannot ask backend 'no-such-backend' about its jobs"
    """
    name = submission.get("backend")
    try:
        from ..backends.base import JobBackend, get_backend

        runner = get_backend(name)
        if not isinstance(runner, JobBackend):
            return None
        answer = dict(runner.jobs_status(workdir, submission))
    except Exception as exc:  # a status display must never fail because a cluster is away
        return {"backend": name, "error": f"cannot ask backend {name!r} about its jobs: {type(exc).__name__}: {exc}"}
    return {"backend": name, **answer}


def recorded_jobs(workdir):
    """The scheduler's view of the job submission recorded in ``workdir``, or None when there is none.

    See :func:`scheduler_view`; one ``squeue`` call at most.

    Examples
    --------
    >>> import tempfile
    >>> recorded_jobs(tempfile.mkdtemp()) is None
    True
    """
    submission = recorded_submission(workdir)
    return None if submission is None else scheduler_view(workdir, submission)


def describe_jobs(jobs):
    """One line for a :func:`recorded_jobs` value: ``'slurm jobs: 3 pending, 2 running, 4 finished'``.

    Examples
    --------
    >>> describe_jobs({"backend": "slurm", "pending": 3, "running": 2, "finished": 4})
    'slurm jobs: 3 pending, 2 running, 4 finished'
    >>> describe_jobs({"backend": "slurm", "error": "squeue did not answer"})
    'slurm jobs: unknown (squeue did not answer)'
    """
    label = f"{jobs.get('backend') or 'recorded'} jobs"
    counts = ", ".join(f"{jobs[key]} {key}" for key in ("pending", "running", "finished") if key in jobs)
    if "error" in jobs:
        return f"{label}: {counts or 'unknown'} ({jobs['error']})"
    return f"{label}: {counts}"
