"""The exactness tests, run again on the oldest scikit-learn that pyproject.toml accepts.

The main suite runs on whatever ``make`` installed (the newest releases).
This test builds a second virtualenv with the pins of ``ci/oldest-deps.txt``
(scikit-learn at the floor of ``pyproject.toml``, with a NumPy, SciPy and
pandas of its time) and runs the parity subset below in it, so "exactly
scikit-learn" is checked at both ends of the range a user can install.

The virtualenv is ``tests/_oldest_venv.py``'s (``.venv-oldest/<key>`` at the
top of the clone, built once and shared with ``tests/test_one_environment.py``).
Without the index (offline) the test is skipped, saying so;
``MEMPAMAL_SKIP_OLDEST=1`` skips it on purpose.
"""

import re
import subprocess
import time

import pytest

from _oldest_venv import ROOT, clean_environment, installed_versions, oldest_python, pinned  # noqa: F401 (fixture)

# The tests comparing mempamal's numbers with scikit-learn's own functions on
# the same data.  Tests needing an optional backend (ipyparallel, dask) skip
# there: the oldest venv installs only the core dependencies.
SUBSET = ["tests/test_exactness.py", "tests/test_sklearn_semantics.py", "tests/test_predictions.py",
          "tests/test_metadata.py", "tests/test_shared_transforms.py", "tests/test_inner_slicing.py",
          "tests/test_randomized.py", "tests/test_train_scores.py",
          # and the fingerprints of __main__ classes, with the oldest cloudpickle
          "tests/test_fingerprint_reload.py"]


@pytest.mark.timeout(1800)
def test_exactness_subset_passes_on_the_oldest_supported_scikit_learn(oldest_python):
    assert installed_versions(oldest_python) == pinned()
    floor = re.search(r'"scikit-learn>=([0-9.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert f"scikit-learn=={floor}" in pinned(), "ci/oldest-deps.txt must pin the scikit-learn floor of pyproject.toml"
    started = time.monotonic()
    run = subprocess.run([str(oldest_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore",
                          "-rs", *SUBSET], capture_output=True, text=True, timeout=1700, env=clean_environment(),
                         cwd=ROOT)
    print(run.stdout[-3000:], f"\n{' '.join(pinned())}: subset ran in {time.monotonic() - started:.0f} s")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
