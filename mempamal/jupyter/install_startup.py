"""Install (or ``--remove``) mempamal's Jupyter configuration files in an environment.

- ``etc/ipython/startup/50-mempamal.py``: loads ``%mempamal`` in every kernel
  (IPython runs every file there at kernel start);
- ``share/jupyter/lab/settings/overrides.d/mempamal.json``: JupyterLab saves
  widget state with the notebook by default (``saveState``), so a builder form
  reopened without its kernel is drawn from the saved state instead of
  "Error displaying widget: model not found".  A user setting still wins.

A regular ``pip install mempamal`` (a wheel) puts both files from
``jupyter-config/`` into ``{sys.prefix}``: running this module then only
says they are in place (or copies them into another ``--prefix``).  Editable
installs (``pip install -e``) do not install data files, so ``make install``
runs this module instead::

    python -m mempamal.jupyter.install_startup [--remove]
"""

import argparse
import sys
from pathlib import Path

FILE_NAME = "50-mempamal.py"
#: JupyterLab settings defaults, relative to the environment prefix.
LAB_OVERRIDES = Path("share") / "jupyter" / "lab" / "settings" / "overrides.d" / "mempamal.json"
#: The start-up file, relative to the environment prefix (where the wheel puts it).
STARTUP_FILE = Path("etc") / "ipython" / "startup" / FILE_NAME


def startup_dir(prefix=None):
    """Where IPython looks for environment-wide start-up files.

    Examples
    --------
    >>> startup_dir("/opt/env").as_posix()
    '/opt/env/etc/ipython/startup'
    """
    return Path(prefix or sys.prefix) / "etc" / "ipython" / "startup"


def source_roots():
    """Folders that may hold the shipped files, each laid out like a prefix.

    A source checkout (editable install, ``make``) has them in
    ``jupyter-config/`` next to the package; a wheel has installed them into
    the environment prefix itself (``{sys.prefix}`` and, for ``pip install
    --user``, the user base), so those are searched too.

    Examples
    --------
    >>> all(isinstance(root, Path) for root in source_roots())
    True
    """
    import site

    roots = [Path(__file__).resolve().parents[2] / "jupyter-config", Path(sys.prefix), Path(sys.base_prefix)]
    user_base = getattr(site, "USER_BASE", None)
    if user_base:
        roots.append(Path(user_base))
    return roots


def shipped_file(relative):
    """The first copy of the shipped file ``relative`` found in :func:`source_roots`.

    Examples
    --------
    >>> shipped_file(LAB_OVERRIDES).name
    'mempamal.json'
    """
    for root in source_roots():
        if (root / relative).is_file():
            return root / relative
    searched = ", ".join(str(root / relative) for root in source_roots())
    raise FileNotFoundError(f"mempamal's {relative.name} was not found (searched {searched}); "
                            "reinstall mempamal (pip install mempamal) or run from a source checkout.")


def startup_source():
    """The text of the start-up file shipped with mempamal.

    Examples
    --------
    >>> "load_extension" in startup_source()
    True
    """
    return shipped_file(STARTUP_FILE).read_text()


def main(argv=None):
    """Install (or remove) the start-up file and the JupyterLab default; returns the exit code.

    After a wheel install both files are already in place: this says so and
    changes nothing.

    Examples
    --------
    >>> main(["--prefix", str(tmp / "env")])
    installed ...env/etc/ipython/startup/50-mempamal.py
    installed ...env/share/jupyter/lab/settings/overrides.d/mempamal.json
    0
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remove", action="store_true")
    parser.add_argument("--prefix", default=None, help="environment prefix (default: sys.prefix)")
    args = parser.parse_args(argv)
    prefix = Path(args.prefix or sys.prefix)
    for relative in (STARTUP_FILE, LAB_OVERRIDES):
        target = prefix / relative
        if args.remove:
            target.unlink(missing_ok=True)
            print(f"removed {target}")
            continue
        source = shipped_file(relative)
        if target.exists() and target.resolve() == source.resolve():
            print(f"already installed (by pip): {target}")
            continue
        content = source.read_text()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        print(f"installed {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
