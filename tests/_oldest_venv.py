"""The second virtualenv of the test suite: the oldest releases pyproject.toml accepts.

``.venv-oldest/<key>`` at the top of the clone holds the pins of
``ci/oldest-deps.txt`` (scikit-learn at the floor of ``pyproject.toml``,
with a NumPy, SciPy, joblib and cloudpickle of its time) and mempamal itself
installed *editable* from this clone: a process there runs the same
mempamal code on other libraries.  The key is a digest of the pins,
``pyproject.toml`` and the Python version, so the venv is built once (about
half a minute from the package index) and shared by every test using the
``oldest_python`` fixture (``tests/test_oldest_sklearn.py``: the exactness
subset; ``tests/test_one_environment.py``: a task of a workdir built here
run there).  Offline the fixture skips, saying so;
``MEMPAMAL_SKIP_OLDEST=1`` skips it on purpose.
"""

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / "ci" / "oldest-deps.txt"
VENVS = ROOT / ".venv-oldest"
COMPLETE = ".complete"  # written last: a venv without it is rebuilt

# What pip prints when it cannot reach the package index.
OFFLINE = re.compile(r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
                     r"resolution|Network is unreachable|ConnectTimeout|Max retries exceeded|ProxyError|"
                     r"Could not fetch URL")


def pinned():
    """The ``name==version`` lines of ci/oldest-deps.txt."""
    lines = (line.split("#")[0].strip() for line in PINS.read_text().splitlines())
    return [line for line in lines if line]


def venv_key():
    digest = hashlib.sha256()
    for part in (PINS.read_bytes(), (ROOT / "pyproject.toml").read_bytes(), sys.version.encode()):
        digest.update(part)
    return digest.hexdigest()[:12]


def clean_environment():
    """This process's environment, minus what would make the venv import another mempamal."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def build_venv(venv):
    """Create ``venv`` with the pinned releases and mempamal (editable); skip when offline."""
    shutil.rmtree(venv, ignore_errors=True)  # an interrupted build is never reused
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                              "--disable-pip-version-check", "-e", str(ROOT), *pinned(), "pytest>=7",
                              "pytest-timeout"], capture_output=True, text=True, timeout=1200, env=clean_environment())
    if install.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        output = install.stdout + install.stderr
        if OFFLINE.search(output):
            pytest.skip("the package index is unreachable (offline?), so the oldest scikit-learn "
                        "cannot be installed: " + output.strip().splitlines()[-1])
        pytest.fail("pip could not install the oldest supported releases:\n" + output[-3000:])
    (venv / COMPLETE).touch()
    # Builds under other keys are stale (other pins or pyproject.toml): one venv at a time.
    for old in VENVS.iterdir():
        if old != venv and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


@pytest.fixture(scope="module")
def oldest_python():
    if os.environ.get("MEMPAMAL_SKIP_OLDEST") == "1":
        pytest.skip("MEMPAMAL_SKIP_OLDEST=1: the oldest-scikit-learn run was skipped on purpose")
    venv = VENVS / venv_key()
    if not (venv / COMPLETE).exists():
        VENVS.mkdir(exist_ok=True)
        # make test runs pytest processes side by side: the first to get here
        # builds, the others wait for it and then find the venv complete.
        with open(VENVS / ".building", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (venv / COMPLETE).exists():
                started = time.monotonic()
                build_venv(venv)
                print(f"built {venv} in {time.monotonic() - started:.0f} s")
    return venv / "bin" / "python"


def installed_versions(python):
    script = ("from importlib.metadata import version; import sys\n"
              "for name in sys.argv[1:]: print(name + '==' + version(name))")
    names = [line.split("==")[0] for line in pinned()]
    out = subprocess.run([str(python), "-c", script, *names], capture_output=True, text=True, check=True,
                         env=clean_environment(), cwd=ROOT)
    return out.stdout.split()
