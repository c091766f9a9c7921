"""A soma-workflow *resource* (Slurm, PBS, ...) from a configuration file of the user's choosing.

``wf.run(backend="soma-workflow", resource_id="cluster", config="swf.cfg")``
reads section ``[cluster]`` of ``swf.cfg`` (``~/.soma-workflow.cfg`` only
when ``config`` is None).  A resource submitted to from this machine runs
with soma-workflow's engine inside this process ("light mode" with the
resource's scheduler): no server process is left behind, and the engine's
database and the jobs' stdout/stderr live in ``WORKDIR/soma-workflow/``,
which the nodes see as they see the workdir.  A remote resource
(``CLUSTER_ADDRESS``) goes through soma-workflow's own remote connection.
"""

import configparser
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from ... import store
from ..._constraints import invalid, raise_invalid

#: sacct wrapper for Slurm < 24.05: soma-workflow 6 asks sacct for the
#: StdOut field (new in 24.05) and older sacct then exits 1, so soma-workflow
#: never sees a job end.  It only logs that column: ask for WorkDir instead.
SACCT_WRAPPER = """#!/usr/bin/env bash
# written by mempamal for soma-workflow on Slurm < 24.05 (no StdOut field in sacct)
fixed=()
for arg in "$@"; do
  case "$arg" in
    *,*|*=*|stdout|stderr|stdin)
      for _ in 1 2; do  # twice: one match consumes the comma its neighbour needs
        arg=$(sed -E 's/(^|,|=)(stdout|stderr|stdin)(%[0-9]+)?(,|$)/\\1workdir\\3\\4/Ig' <<<"$arg")
      done ;;
  esac
  fixed+=("$arg")
done
exec {real} "${{fixed[@]}}"
"""


def load_resource(resource_id, config_path, state_dir):
    """``(configuration, light)`` for ``resource_id``: a soma-workflow ``Configuration`` to connect with.

    ``light`` is True when the resource submits from this machine: the
    configuration is then rebuilt in light mode, with its database and
    transfer folder in ``state_dir``.

    Examples
    --------
    >>> config, light = load_resource("ci-slurm", "swf.cfg", wf.workdir / "soma-workflow")   # needs a soma-workflow resource  # doctest: +SKIP
    >>> config.get_scheduler_type(), light                                                  # needs a soma-workflow resource  # doctest: +SKIP
    ('slurm', True)
    """
    from soma_workflow import configuration

    if config_path is not None:
        config_path = str(Path(config_path).expanduser().absolute())
        if not os.path.isfile(config_path):
            raise_invalid("config", "the soma-workflow backend", "an existing soma-workflow configuration file",
                          config_path)
    # soma-workflow quietly falls back to this machine for an unknown
    # resource: check the section ourselves.
    source = config_path or configuration.Configuration.search_config_path()
    sections = configparser.ConfigParser(interpolation=None)
    if source is not None:
        sections.read(source)
    if not sections.has_section(resource_id):
        raise invalid(f"The 'resource_id' parameter of the soma-workflow backend must name a section of "
                      f"{source or 'a soma-workflow configuration file (none found)'} "
                      f"{sorted(sections.sections())}; got {resource_id!r} instead.")
    try:
        loaded = configuration.Configuration.load_from_file(resource_id, source)
    except configuration.ConfigurationError as exc:
        raise invalid(f"The soma-workflow resource {resource_id!r} of {source} is unusable: {exc}") from None
    if loaded.get_mode() == configuration.REMOTE_MODE:
        return loaded, False
    light = configuration.Configuration(
        resource_id, configuration.LIGHT_MODE, loaded.get_scheduler_type(),
        str(state_dir / "soma_workflow.db"), str(store.make_private_dir(state_dir / "transfered_files")))
    # The scheduler reads its options (native specification, parallel job
    # settings) from the section of the user's file; soma-workflow's own
    # folder (engine logs) defaults to ~/.soma-workflow: the workdir's instead.
    parser = configparser.ConfigParser(interpolation=None)  # copied raw: '%' in log formats
    for section in loaded._config_parser.sections():
        parser[section] = dict(loaded._config_parser.items(section, raw=True))
    if not parser.has_option(resource_id, configuration.OCFG_SWF_DIR):
        parser.set(resource_id, configuration.OCFG_SWF_DIR, str(state_dir))
    light._config_parser = parser
    light._config_path = config_path
    return light, True


def slurm_environment(state_dir):
    """``PATH`` with a sacct wrapper first when this Slurm's sacct lacks ``StdOut`` (else unchanged).

    Examples
    --------
    >>> path = slurm_environment(wf.workdir / "soma-workflow")      # needs a soma-workflow resource  # doctest: +SKIP
    """
    path = os.environ.get("PATH", "")
    sacct = shutil.which("sacct")
    if sacct is None:
        return path
    try:
        fields = subprocess.run([sacct, "--helpformat"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return path
    if "stdout" in fields.lower():
        return path
    folder = store.make_private_dir(state_dir / "bin")
    wrapper = folder / "sacct"
    store.atomic_write_bytes(wrapper, SACCT_WRAPPER.format(real=shlex.quote(sacct)).encode())
    wrapper.chmod(0o700)
    return f"{folder}{os.pathsep}{path}"
