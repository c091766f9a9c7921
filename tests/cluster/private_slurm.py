"""A private Slurm cluster of several nodes for one test module (``ci/slurm/start-private.sh``).

Each node ``n1``, ``n2``... is a ``slurmd`` in its own UTS namespace with its
own host name, all on loopback and sharing this machine's filesystem; the
cluster has its own slurm.conf, ports, state and logs, reached through
``SLURM_CONF``, so the default CI Slurm (``ci/slurm/start.sh``) is never
touched.  Root only; without Slurm's daemons, ``unshare`` or root the tests
skip with the reason (fail under ``MEMPAMAL_REQUIRE_SLURM=1``, as in CI).

Use in a test module::

    from private_slurm import private_slurm_fixture
    private_slurm = private_slurm_fixture(nodes=2, conf=("MaxArraySize=4",))

    def test_x(private_slurm, monkeypatch):
        monkeypatch.setenv("SLURM_CONF", private_slurm.conf)
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
START = REPO / "ci" / "slurm" / "start-private.sh"
STOP = REPO / "ci" / "slurm" / "stop-private.sh"
NEEDED = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "sbatch", "squeue", "scancel", "sinfo", "unshare", "munge")


def private_slurm_problem():
    """Why no private cluster can be started here (a sentence), or None."""
    if os.geteuid() != 0:
        return "a private Slurm cluster needs root (slurmd runs jobs as their users)"
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        return (f"no Slurm daemons here ({', '.join(missing)} missing): "
                "apt-get install slurmctld slurmd slurm-client munge, or run .ci/run")
    return None


def _free_port_base(nodes, first=6917, step=10, tries=30):
    """A port P with P..P+nodes free on this machine (another session may run a cluster too)."""
    for base in range(first, first + step * tries, step):
        try:
            for port in range(base, base + nodes + 1):
                with socket.socket() as probe:
                    probe.bind(("0.0.0.0", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {nodes + 1} free ports from {first}")


class PrivateSlurm:
    """A started private cluster: ``conf`` (its SLURM_CONF), ``env``, ``folder``, node helpers."""

    def __init__(self, folder, nodes):
        self.folder = Path(folder)
        self.conf = str(self.folder / "slurm.conf")
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        self.nodes = [f"n{k}" for k in range(1, nodes + 1)]

    def run(self, *command, timeout=30):
        """A Slurm client command against this cluster."""
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=self.env)

    def node_state(self, node):
        """``sinfo``'s state of ``node``, e.g. ``idle``, ``mixed``, ``down*``."""
        return self.run("sinfo", "-h", "-N", "-n", node, "-o", "%T").stdout.strip()

    def node_pids(self, node):
        """Pids of every process of ``node``: its slurmd and all in its UTS namespace (job steps)."""
        manifest = (self.folder / "started").read_text().splitlines()
        uts = next(line.split()[3] for line in manifest if line.startswith("slurmd ") and f"slurmd-{node}." in line)
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and os.readlink(entry / "ns" / "uts") == uts:
                    pids.append(int(entry.name))
            except OSError:
                continue  # exited meanwhile
        return pids

    def kill_node(self, node):
        """SIGKILL ``node``'s slurmd and every process on it: the node dies as in a power cut."""
        pids = self.node_pids(node)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def wait_node(self, node, words, timeout=90):
        """Wait until ``node``'s state contains one of ``words``; returns the state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.node_state(node)
            if any(word in state for word in words):
                return state
            time.sleep(0.5)
        raise AssertionError(f"node {node} still {self.node_state(node)!r} after {timeout} s, wanted {words}")

    def cancel_all(self):
        """Cancel every job of this cluster and wait until the queue is empty."""
        jobs = self.run("squeue", "-h", "-o", "%A").stdout.split()
        if jobs:
            self.run("scancel", *sorted(set(jobs)))
        deadline = time.monotonic() + 60
        while self.run("squeue", "-h", "-o", "%A").stdout.strip() and time.monotonic() < deadline:
            time.sleep(0.5)


def start_private_slurm(folder, nodes=2, conf=()):
    """Start a cluster in ``folder``; raises with the script's output when it fails."""
    arguments = ["bash", str(START), str(folder), "--nodes", str(nodes),
                 "--port", str(_free_port_base(nodes)), "--name", f"mp-{os.getpid()}"]
    for line in conf:
        arguments += ["--conf", line]
    done = subprocess.run(arguments, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        raise RuntimeError(f"start-private.sh failed:\n{done.stdout}\n{done.stderr}")
    return PrivateSlurm(folder, nodes)


def stop_private_slurm(folder):
    """Stop exactly what ``start_private_slurm(folder)`` started."""
    return subprocess.run(["bash", str(STOP), str(folder)], capture_output=True, text=True, timeout=180)


def private_slurm_fixture(nodes=2, conf=()):
    """A module-scoped fixture starting a private cluster and stopping it afterwards (also on failure)."""

    @pytest.fixture(scope="module")
    def private_slurm():
        problem = private_slurm_problem()
        if problem is not None:
            if os.environ.get("MEMPAMAL_REQUIRE_SLURM") == "1":
                pytest.fail(f"MEMPAMAL_REQUIRE_SLURM=1 but {problem}")
            pytest.skip(problem)
        # Under /tmp, not the test's tmp_path: slurmd's spool and socket paths stay short.
        folder = Path(tempfile.mkdtemp(prefix="mp-slurm-"))
        try:
            cluster = start_private_slurm(folder, nodes, conf)
            yield cluster
        finally:
            stop_private_slurm(folder)
            shutil.rmtree(folder, ignore_errors=True)

    return private_slurm
