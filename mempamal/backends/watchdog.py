"""A watchdog that ends a private cluster when the process that started it dies.

The driver starts it with a pipe on its stdin, before the cluster.  A
driver that stops its cluster itself writes ``stop``; a driver that dies
(SIGKILL, out of memory, a crash) just closes the pipe -- the kernel does
that for it -- and the watchdog then kills every process that carries the
cluster's marker in its environment (controller, engines, their nannies,
whatever they started), cancels the Slurm jobs it was told about, removes the
cluster's folder and exits.  Blocking on a pipe costs nothing and needs no
polling; it works the same whichever thread of the driver started it.

Run as ``python -m mempamal.backends.watchdog MARKER_VARIABLE MARKER_VALUE [FOLDER]``.
"""

import contextlib
import os
import shutil
import subprocess
import sys

#: Seconds between SIGTERM and SIGKILL for the cluster's processes.
GRACE_SECONDS = 2


def start_watchdog(variable, value, folder=None):
    """Start a watchdog for the processes whose environment has ``variable`` starting with ``value``.

    Returns the :class:`subprocess.Popen`; write ``slurm-job ID`` lines to
    its stdin for jobs to cancel, and call :func:`stop_watchdog` once the
    cluster is stopped.

    Examples
    --------
    >>> watchdog = start_watchdog("IPYTHONDIR", str(tmp / "ipython"))
    >>> stop_watchdog(watchdog)
    """
    command = [sys.executable, "-m", "mempamal.backends.watchdog", variable, value]
    if folder is not None:
        command.append(str(folder))
    # Its own session: a Ctrl-C in the terminal is for the driver, which
    # stops the cluster itself; the watchdog must outlive a killed driver.
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env={**os.environ, variable: value}, start_new_session=True)


def tell_watchdog(watchdog, line):
    """Send one line (e.g. ``slurm-job 1234``) to a running watchdog.

    Examples
    --------
    >>> watchdog = start_watchdog("IPYTHONDIR", str(tmp / "ipython"))
    >>> tell_watchdog(watchdog, "slurm-job 1234")
    >>> stop_watchdog(watchdog)
    """
    with contextlib.suppress(OSError, ValueError):
        watchdog.stdin.write(line + "\n")
        watchdog.stdin.flush()


def stop_watchdog(watchdog, sweep=False):
    """Tell the watchdog that the cluster was stopped normally, and wait for it to exit.

    With ``sweep=True`` (a cluster that failed to start or stop cleanly) it
    does what it does for a dead driver first: kill what is left.

    Examples
    --------
    >>> watchdog = start_watchdog("IPYTHONDIR", str(tmp / "ipython"))
    >>> stop_watchdog(watchdog)
    """
    if not sweep:
        tell_watchdog(watchdog, "stop")
    with contextlib.suppress(OSError, ValueError):
        watchdog.stdin.close()
    try:
        watchdog.wait(timeout=10 + 2 * GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait()


def _marked_processes(variable, value):
    import psutil

    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error):
            if process.environ().get(variable, "").startswith(value):
                found.append(process)
    return found


def _end(processes):
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=GRACE_SECONDS)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()


def main(argv=None):
    """Block until the driver says ``stop`` or disappears; clean up in the second case."""
    variable, value, *folder = sys.argv[1:] if argv is None else argv
    slurm_jobs = []
    for line in sys.stdin:
        words = line.split()
        if words == ["stop"]:
            return 0
        if len(words) == 2 and words[0] == "slurm-job":
            slurm_jobs.append(words[1])
    # End of input without "stop": the driver is gone.
    if slurm_jobs and shutil.which("scancel"):
        subprocess.run(["scancel", *slurm_jobs], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _end(_marked_processes(variable, value))
    for path in folder:
        shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
