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
        from . import lock
    except ImportError:  # a mempamal without run locks: nobody can be seen running
        return None
    holder = lock.read_holder(workdir)
    if holder is None or lock.is_stale(holder):
        return None
    return holder
