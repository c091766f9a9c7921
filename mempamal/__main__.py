"""``python -m mempamal``: the command line (see :mod:`mempamal.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
