"""A real wheel, installed into a fresh virtual environment, as a user gets mempamal from pip.

The wheel puts the IPython start-up file and the JupyterLab default into the
environment prefix; ``python -m mempamal.jupyter.install_startup`` then says
so (it used to crash looking for ``site-packages/jupyter-config``), copies
them into another ``--prefix``, and a new IPython of that environment has
``%%mempamal`` without ``%load_ext``.

Building needs setuptools>=77 from the package index pip is configured with;
without one (offline) the test skips, saying so.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns(".git", ".venv", ".venv-*", "runs", "build", "*.egg-info", "__pycache__",
                                 "_build", ".pytest_cache", ".pytest-tmp")


def _run(command, env, cwd, timeout=600):
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """(python of a fresh venv with the mempamal wheel installed, its prefix, a clean environment)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(ROOT, source, ignore=IGNORED)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HOME"] = str(tmp / "home")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist", source], env, tmp)
    wheels = list((tmp / "dist").glob("mempamal-*.whl"))
    if built.returncode != 0 or not wheels:
        pytest.skip(f"cannot build a wheel here (no setuptools>=77 from the package index?): {built.stderr[-500:]}")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], env, tmp).check_returncode()
    python = venv / "bin" / "python"
    # The dependencies (scikit-learn, IPython, ...) come from this interpreter's
    # site-packages through a plain .pth line: the new venv's own
    # site-packages stays first, so `import mempamal` is the wheel's.  (A
    # plain path line does not run the editable install's finder there.)
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env, tmp)
    Path(purelib.stdout.strip(), "zz-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheels[0]],
                     env, tmp)
    if installed.returncode != 0:  # pip older than 22.3 has no --python
        installed = _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--prefix", venv, wheels[0]],
                         env, tmp)
    assert installed.returncode == 0, installed.stderr
    where = _run([python, "-c", "import mempamal; print(mempamal.__file__)"], env, tmp)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # the wheel's copy, not this checkout
    return python, venv, env


def test_the_wheel_installs_the_startup_file_and_install_startup_says_so(wheel_env, tmp_path):
    python, venv, env = wheel_env
    startup = venv / "etc" / "ipython" / "startup" / "50-mempamal.py"
    settings = venv / "share" / "jupyter" / "lab" / "settings" / "overrides.d" / "mempamal.json"
    assert startup.is_file() and settings.is_file()
    again = _run([python, "-m", "mempamal.jupyter.install_startup"], env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert f"already installed (by pip): {startup}" in again.stdout, again.stdout
    assert startup.read_text() == (ROOT / "jupyter-config" / "etc" / "ipython" / "startup" /
                                   "50-mempamal.py").read_text()


def test_install_startup_from_a_wheel_copies_into_another_prefix(wheel_env, tmp_path):
    python, venv, env = wheel_env
    other = tmp_path / "other-env"
    copied = _run([python, "-m", "mempamal.jupyter.install_startup", "--prefix", other], env, tmp_path)
    assert copied.returncode == 0, copied.stderr
    target = other / "etc" / "ipython" / "startup" / "50-mempamal.py"
    assert target.read_text() == (venv / "etc" / "ipython" / "startup" / "50-mempamal.py").read_text()
    removed = _run([python, "-m", "mempamal.jupyter.install_startup", "--prefix", other, "--remove"], env,
                   tmp_path)
    assert removed.returncode == 0 and not target.exists()


def test_ipython_of_the_wheel_environment_has_the_magic(wheel_env, tmp_path):
    python, venv, env = wheel_env
    env = {**env, "IPYTHONDIR": str(tmp_path / "ipython")}
    code = "print('mempamal' in get_ipython().magics_manager.magics['cell'])"
    shell = _run([python, "-m", "IPython", "--no-banner", "-c", code], env, tmp_path)
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.strip().splitlines()[-1] == "True", shell.stdout + shell.stderr
