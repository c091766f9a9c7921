"""Detect a usable Slurm for the cluster tests; skip with the reason when there is none.

``ci/slurm/start.sh`` (run by ``.ci/run`` as root) brings one up on this machine.
Under ``.ci/run`` ``MEMPAMAL_REQUIRE_SLURM=1`` is set, and a missing Slurm then
fails the tests instead of silently skipping them.
"""

import functools
import os
import shutil
import subprocess
import time

import pytest


#: Node states (substrings of sinfo's %T) in which a node takes no jobs.
UNUSABLE_STATES = ("down", "drain", "fail", "unknown", "not_responding", "future", "maint", "inval", "power")


@functools.lru_cache(maxsize=None)
def slurm_problem():
    """Why Slurm cannot be used here (a sentence), or None when it answers.

    Asked a few times before concluding: a busy slurmctld (or a node passing
    through ``completing``) must not skip a whole session's cluster tests.
    """
    for command in ("sinfo", "sbatch", "squeue", "scancel"):
        if shutil.which(command) is None:
            return f"no Slurm here: `{command}` is not on PATH (start one with `sudo bash ci/slurm/start.sh`)"
    problem = None
    for attempt in range(5):
        if attempt:
            time.sleep(1)
        problem = _sinfo_problem()
        if problem is None:
            return None
    return problem


def _sinfo_problem():
    try:
        answer = subprocess.run(["sinfo", "-h", "-o", "%a %T"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "Slurm does not answer: `sinfo` timed out after 30 s"
    if answer.returncode != 0:
        return f"Slurm does not answer: `sinfo` failed ({answer.stderr.strip() or answer.returncode})"
    words = answer.stdout.split()
    usable = [state for availability, state in zip(words[::2], words[1::2])
              if availability == "up" and not any(bad in state for bad in UNUSABLE_STATES)]
    if not usable:
        return f"Slurm answers but has no usable node (sinfo: {' '.join(words) or 'empty'})"
    return None


@functools.lru_cache(maxsize=None)
def sacct_problem():
    """Why ``sacct`` (Slurm accounting) is unusable, or None when it answers."""
    if shutil.which("sacct") is None:
        return "`sacct` is not on PATH"
    answer = subprocess.run(["sacct", "-n", "-X", "-S", "now-1minutes", "-o", "jobid"],
                            capture_output=True, text=True, timeout=30)
    if answer.returncode != 0:
        return f"Slurm accounting is off: `sacct` failed ({answer.stderr.strip()})"
    return None


def require_slurm(accounting=False):
    """Skip the calling test (or fail it under ``MEMPAMAL_REQUIRE_SLURM=1``) without Slurm."""
    problem = slurm_problem() or (sacct_problem() if accounting else None)
    if problem is None:
        return
    if os.environ.get("MEMPAMAL_REQUIRE_SLURM") == "1":
        pytest.fail(f"MEMPAMAL_REQUIRE_SLURM=1 but {problem}")
    pytest.skip(problem)



SOMA_RESOURCE = "mempamal-ci-slurm"


def write_soma_slurm_config(folder):
    """A soma-workflow configuration file with one Slurm resource; returns its path.

    Written under the test's temporary folder: the user's ~/.soma-workflow.cfg
    is never read or written.
    """
    import socket
    from pathlib import Path

    path = Path(folder) / "soma-workflow.cfg"
    path.write_text(f"[{SOMA_RESOURCE}]\nSCHEDULER_TYPE = slurm\nSUBMITTING_MACHINES = {socket.gethostname()}\n")
    return path


def sacct_job_names(since_epoch):
    """Names of the jobs sacct knows that started after ``since_epoch`` (seconds)."""
    import time

    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since_epoch - 1))
    answer = subprocess.run(["sacct", "-n", "-X", "-P", "-S", start, "-o", "JobName"],
                            capture_output=True, text=True, timeout=30)
    return answer.stdout.split()
