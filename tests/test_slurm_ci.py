"""ci/slurm/start.sh and stop.sh: what .ci/run relies on, checked against the running Slurm.

Only the harmless path is exercised (Slurm already up): start.sh must reuse
it and record nothing, and stop.sh with that run's manifest must stop
nothing.  Starting a Slurm from scratch is what `.ci/run` itself does.
"""

import os
import subprocess
from pathlib import Path

import pytest

from slurm_cluster import require_slurm

CI = Path(__file__).resolve().parent.parent / "ci" / "slurm"


def test_scripts_are_valid_bash():
    for script in ("start.sh", "stop.sh"):
        assert subprocess.run(["bash", "-n", str(CI / script)]).returncode == 0, script


def test_start_reuses_a_running_slurm_and_stop_then_leaves_it_running(tmp_path):
    require_slurm()
    if os.geteuid() != 0:
        pytest.skip("ci/slurm/start.sh runs as root")
    manifest = tmp_path / "started"
    env = dict(os.environ, MEMPAMAL_SLURM_MANIFEST=str(manifest))
    started = subprocess.run(["bash", str(CI / "start.sh")], capture_output=True, text=True, env=env, timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "Slurm is up" in started.stdout
    assert manifest.read_text() == ""  # nothing new started: nothing for this run to stop
    stopped = subprocess.run(["bash", str(CI / "stop.sh")], capture_output=True, text=True, env=env, timeout=300)
    assert stopped.returncode == 0 and "nothing to stop" in stopped.stdout
    assert subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0  # still up
