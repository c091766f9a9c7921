"""What the site allows: Slurm's limits on arrays and queued jobs, and the plan that respects them.

Read once per submission:

``MaxArraySize`` (``scontrol show config``)
    array indices must stay below it: a level of more bundles is split into
    several arrays of at most ``MaxArraySize`` elements, and a level above
    waits (``afterok``) for every piece.
``MaxJobCount`` (``scontrol show config``)
    slurmctld's whole queue (every user); we keep well under it.
``MaxSubmitJobs`` (``sacctmgr``, only where accounting runs)
    how many jobs (array elements count one each) this user may have queued.

The number of queued elements we allow ourselves is the smallest of these
and of ``max_queued_jobs=``; a submission larger than that goes in waves
(the next array is submitted once enough of ours have left the queue).
"""

import getpass
import math
import re
import shutil
import subprocess
from dataclasses import dataclass, replace

#: Share of the cluster-wide MaxJobCount one run may fill (other users need room too).
JOB_COUNT_SHARE = 0.5
#: ``--time`` when none is given: this many times the array's longest bundle, plus the margin below.
TIME_FACTOR = 3.0
#: Seconds added to every ``--time`` we set (interpreter start, imports, a loaded node).
TIME_MARGIN_SECONDS = 300


@dataclass(frozen=True)
class SiteLimits:
    """Slurm's limits that shape a submission (None: no such limit known).

    Examples
    --------
    >>> SiteLimits(max_array_size=4).queue_limit(None)
    >>> SiteLimits(max_job_count=1000, max_submit_jobs=300).queue_limit(200)
    200
    """

    max_array_size: int = None
    max_job_count: int = None
    max_submit_jobs: int = None

    def queue_limit(self, max_queued_jobs):
        """How many of our array elements may be queued at once (None: no limit)."""
        share = None if self.max_job_count is None else max(1, int(self.max_job_count * JOB_COUNT_SHARE))
        limits = [value for value in (share, self.max_submit_jobs, max_queued_jobs) if value is not None]
        return min(limits) if limits else None


def _config_value(text, name):
    match = re.search(rf"^{name}\s*=\s*(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def read_limits(run):
    """The :class:`SiteLimits` of the cluster the Slurm commands reach; ``run(command)`` runs one.

    Examples
    --------
    >>> read_limits(_run)   # needs a Slurm cluster  # doctest: +SKIP
    SiteLimits(max_array_size=1001, max_job_count=10000, max_submit_jobs=None)
    """
    return replace(read_config_limits(run), max_submit_jobs=_max_submit_jobs(run))


def read_config_limits(run):
    """``MaxArraySize`` and ``MaxJobCount`` from ``scontrol show config`` (None each without an answer).

    Examples
    --------
    >>> read_config_limits(_run)   # needs a Slurm cluster  # doctest: +SKIP
    SiteLimits(max_array_size=1001, max_job_count=10000, max_submit_jobs=None)
    """
    try:
        config = run(["scontrol", "show", "config"])
    except (OSError, subprocess.TimeoutExpired):
        return SiteLimits()  # no answer: submit as if unlimited, sbatch says what it refuses
    if config.returncode != 0:
        return SiteLimits()
    return SiteLimits(max_array_size=_config_value(config.stdout, "MaxArraySize"),
                      max_job_count=_config_value(config.stdout, "MaxJobCount"))


def _max_submit_jobs(run):
    """This user's MaxSubmitJobs over their associations (the smallest set), or None."""
    if shutil.which("sacctmgr") is None:
        return None
    try:
        answer = run(["sacctmgr", "-n", "-P", "show", "assoc", f"user={getpass.getuser()}",
                      "format=MaxSubmitJobs,GrpSubmitJobs"])
    except (OSError, subprocess.TimeoutExpired):
        return None
    if answer.returncode != 0:
        return None  # accounting not running: no such limit enforced
    values = [int(value) for line in answer.stdout.splitlines() for value in line.split("|") if value.isdigit()]
    return min(values) if values else None


def piece_size(limits, queue_limit):
    """Largest array we may submit: indices below MaxArraySize, and not more than the queue allows.

    Examples
    --------
    >>> piece_size(SiteLimits(max_array_size=4), None), piece_size(SiteLimits(), 3), piece_size(SiteLimits(), None)
    (4, 3, None)
    """
    sizes = [value for value in (limits.max_array_size, queue_limit) if value is not None]
    return max(1, min(sizes)) if sizes else None


def time_limit(seconds):
    """``--time`` value (minutes, rounded up) for an array whose longest bundle should take ``seconds``.

    Examples
    --------
    >>> time_limit(60), time_limit(1000)
    ('8', '55')
    """
    return str(math.ceil((TIME_FACTOR * seconds + TIME_MARGIN_SECONDS) / 60))


def has_time_option(options):
    """True when ``sbatch`` options already set a time limit (``--time``, ``-t``).

    Examples
    --------
    >>> has_time_option(["--mem=2G", "--time=10"]), has_time_option(["-t", "5"]), has_time_option([])
    (True, True, False)
    """
    return any(option == "-t" or option.startswith(("--time", "-t")) and not option.startswith("--time-min")
               for option in options)
