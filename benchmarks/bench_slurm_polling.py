"""Issue 25, part 5 - polite polling: scheduler calls per minute of a 1,000-bundle Slurm run.

A nested CV of 100 grid points x 5 outer x 2 inner folds with
``chunk_size=1`` and ``tasks_per_job=1``: 1,000 ``fit`` bundles in one job
array (plus the selects and the final).  Slurm's commands are wrapped by
logging scripts on ``PATH`` (time, calling process, command, then ``exec``
of the real one); the driver runs in its own process, and this process plays
a notebook refreshing ``status()`` twice a second.  Printed: the calls of
each minute, by command, and the most calls in any 60-s window after the
first minute (issue 25 target: <= 10, attaching not doubling it).  The run is
cancelled after ``--minutes`` (the rate is what is measured; on a 2-CPU
node the whole run takes ~15 minutes).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_slurm_polling.py [--bundles 1000] [--minutes 4] [--n-jobs K]

Needs a Slurm (``ci/slurm/start.sh``).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import mempamal as mp

COMMANDS = ("squeue", "sacct", "sbatch", "scancel", "sinfo", "scontrol")
TARGET = 10


def wrappers(folder):
    log = folder / "calls.log"
    bin_dir = folder / "slurm-bin"
    bin_dir.mkdir()
    for command in COMMANDS:
        real = shutil.which(command)
        if real:
            (bin_dir / command).write_text(f'#!/bin/sh\necho "$(date +%s.%N) $PPID {command}" >> "{log}"\n'
                                           f'exec "{real}" "$@"\n')
            (bin_dir / command).chmod(0o755)
    return bin_dir, log


def calls_of(log):
    rows = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    return [(float(t), int(pid), command) for t, pid, command in rows]


def most_in_a_minute(times, after):
    later = [t for t in times if t >= after]
    return max((sum(1 for t in later if s <= t < s + 60) for s in later), default=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=1000, help="fit bundles (multiple of 10)")
    parser.add_argument("--minutes", type=float, default=4.0, help="measure this long, then cancel")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="array throttle (on a shared test cluster, 1 leaves the other CPUs to others)")
    args = parser.parse_args()
    if shutil.which("sbatch") is None:
        sys.exit("no Slurm here: start one with ci/slurm/start.sh")
    folder = Path(tempfile.mkdtemp(prefix="bench-slurm-polling-"))
    bin_dir, log = wrappers(folder)
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    X, y = make_classification(n_samples=200, random_state=0)
    grid = {"C": [10.0 ** (k / 10) for k in range(args.bundles // 10)]}
    workflow = mp.Experiment(LogisticRegression(), param_grid=grid, cv=5, inner_cv=2).build(
        X, y, workdir=folder / "wd", chunk_size=1)
    code = (f"import mempamal as mp; mp.Workflow.open({str(workflow.workdir)!r}).run(backend='slurm', "
            f"tasks_per_job=1, n_jobs={args.n_jobs!r}, progress=False)")
    driver = subprocess.Popen([sys.executable, "-c", code])
    start = time.time()
    try:
        while driver.poll() is None and time.time() - start < 60 * args.minutes:
            workflow.status()  # what a notebook panel does: reads the driver's view
            time.sleep(0.5)
    finally:
        if driver.poll() is None:
            driver.send_signal(signal.SIGINT)  # Ctrl-C: the driver cancels its jobs
            driver.wait(timeout=120)
        from mempamal.backends.slurm.backend import SlurmBackend

        SlurmBackend().cancel(workflow)
    calls = [(t - start, pid, command) for t, pid, command in calls_of(log) if t - start <= 60 * args.minutes]
    print(f"{args.bundles} bundles, {len(workflow.tasks)} tasks; {len(calls)} scheduler calls in "
          f"{args.minutes:g} min (driver pid {driver.pid}, this process {os.getpid()})")
    for minute in range(int(args.minutes + 0.999)):
        these = [c for t, _, c in calls if minute * 60 <= t < (minute + 1) * 60]
        print(f"  minute {minute + 1}: {len(these):3d} calls", {c: these.count(c) for c in COMMANDS if c in these})
    worst = most_in_a_minute([t for t, _, _ in calls], after=60)
    mine = [t for t, pid, _ in calls if pid == os.getpid() and t >= 60]
    print(f"most calls in a 60-s window after the first minute: {worst} (target <= {TARGET}); "
          f"calls of the status-reading process after its first minute: {len(mine)}")
    print(f"workdir and call log kept in {folder}")


if __name__ == "__main__":
    main()
