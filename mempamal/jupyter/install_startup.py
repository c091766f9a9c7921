"""Install (or ``--remove``) the start-up file loading ``%mempamal`` in every kernel.

A regular ``pip install mempamal`` puts ``jupyter-config/etc/ipython/startup/
50-mempamal.py`` into ``{sys.prefix}/etc/ipython/startup`` (IPython runs every
file there at kernel start).  Editable installs (``pip install -e``) do not
install data files, so ``make install`` runs this module instead::

    python -m mempamal.jupyter.install_startup [--remove]
"""

import argparse
import sys
from pathlib import Path

FILE_NAME = "50-mempamal.py"


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
    target = startup_dir(args.prefix) / FILE_NAME
    if args.remove:
        target.unlink(missing_ok=True)
        print(f"removed {target}")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(startup_source())
    print(f"installed {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
