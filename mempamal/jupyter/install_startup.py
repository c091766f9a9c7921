"""Install (or ``--remove``) mempamal's Jupyter configuration files in an environment.

- ``etc/ipython/startup/50-mempamal.py``: loads ``%mempamal`` in every kernel
  (IPython runs every file there at kernel start);
- ``share/jupyter/lab/settings/overrides.d/mempamal.json``: JupyterLab saves
  widget state with the notebook by default (``saveState``), so a builder form
  reopened without its kernel is drawn from the saved state instead of
  "Error displaying widget: model not found".  A user setting still wins.

A regular ``pip install mempamal`` puts both files from ``jupyter-config/``
into ``{sys.prefix}``.  Editable installs (``pip install -e``) do not install
data files, so ``make install`` runs this module instead::

    python -m mempamal.jupyter.install_startup [--remove]
"""

import argparse
import sys
from pathlib import Path

FILE_NAME = "50-mempamal.py"
#: JupyterLab settings defaults, relative to the environment prefix.
LAB_OVERRIDES = Path("share") / "jupyter" / "lab" / "settings" / "overrides.d" / "mempamal.json"


def startup_dir(prefix=None):
    """Where IPython looks for environment-wide start-up files."""
    return Path(prefix or sys.prefix) / "etc" / "ipython" / "startup"


def startup_source():
    """The start-up file shipped in ``jupyter-config/``."""
    here = Path(__file__).resolve().parents[2] / "jupyter-config" / "etc" / "ipython" / "startup" / FILE_NAME
    return here.read_text()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remove", action="store_true")
    parser.add_argument("--prefix", default=None, help="environment prefix (default: sys.prefix)")
    args = parser.parse_args(argv)
    config = Path(__file__).resolve().parents[2] / "jupyter-config"
    files = {startup_dir(args.prefix) / FILE_NAME: startup_source(),
             Path(args.prefix or sys.prefix) / LAB_OVERRIDES: (config / LAB_OVERRIDES).read_text()}
    for target, content in files.items():
        if args.remove:
            target.unlink(missing_ok=True)
            print(f"removed {target}")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        print(f"installed {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
