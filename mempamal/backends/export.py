"""Portable exports of a workflow: the graph as plain commands.

``commands``  JSON list of ``{"id", "cmd", "deps"}`` (the original tool's format)
``shell``     a bash script running the tasks in dependency order
``makefile``  one target per task: ``make -j N`` runs the graph in parallel
``soma-workflow``  a file ``soma_workflow.client.Helper.unserialize`` reads
``slurm``     a bash script submitting the graph as Slurm job arrays (``sbatch``)

Modes: the two scripts (``shell``, ``slurm``) are written 0700, the other
formats 0600 (:data:`EXPORT_MODES`): user-only, as the workdir itself.

Every command is ``python -m mempamal task WORKDIR ID``; ``python=`` and
``workdir=`` rewrite the interpreter and workdir paths for machines that
mount them elsewhere (a cluster's nodes, say).

``job_seconds=`` or ``tasks_per_job=`` (with ``n_jobs=``, the workers the
runner will have) turn each line into a *bundle*: ``python -m mempamal task
WORKDIR ID [ID ...]`` running several tasks of one dependency level in one
interpreter (see :mod:`mempamal.backends.bundles`).  Without them every task keeps its
own line, except in the ``slurm`` format, which bundles to 60 s jobs by default.
"""

import json
import numbers
import os
import shlex
from pathlib import Path

from .. import store
from .._constraints import Interval, Predicate, StrOptions, invalid, raise_invalid, validate_params
from ..store.tasktable import task_command

FORMATS = ("commands", "shell", "makefile", "soma-workflow", "slurm")
#: File mode of each export, whatever the umask.  User-only like every file
#: of the workdir: an export names the workdir and runs its pickled code, so
#: it is as private as the workdir (``chmod`` it yourself to share it).  The
#: scripts one executes (``bash run.sh`` or ``./run.sh``) are 0700, the files
#: another program reads (``make -f``, ``soma_submit_workflow``, a JSON
#: reader) 0600.
EXPORT_MODES = {"commands": 0o600, "shell": 0o700, "makefile": 0o600, "soma-workflow": 0o600, "slurm": 0o700}
#: Job length the ``slurm`` export aims at when no sizing is given.
SLURM_EXPORT_JOB_SECONDS = 60
#: Slurm's own default ``MaxArraySize``: the ``slurm`` export's arrays stay within it when no Slurm answers here.
SLURM_DEFAULT_MAX_ARRAY_SIZE = 1001

#: The arguments of export, each alone (the sizing options: bundles.BUNDLE_CONSTRAINTS).
EXPORT_CONSTRAINTS = {
    "format": [StrOptions(FORMATS)],
    "n_jobs": [Interval(numbers.Integral, 1, None, closed="left")],
    "path": [Predicate(lambda p: isinstance(p, os.PathLike) or (isinstance(p, str) and bool(p.strip())),
                       "a file path (str or os.PathLike)")],
}


def export_workflow(workflow, path, format="commands", python=None, workdir=None,
                    job_seconds=None, tasks_per_job=None, n_jobs=1, **options):
    """Write ``workflow`` to ``path`` in ``format``; returns the path.

    Examples
    --------
    >>> wf.export("wf.json", format="commands")
    PosixPath('wf.json')
    >>> wf.export("Makefile", format="makefile", python="/opt/py/bin/python")
    PosixPath('Makefile')
    >>> wf.export("run.sh", format="shell", tasks_per_job=20)
    PosixPath('run.sh')
    >>> wf.export("submit.sh", format="slurm", job_seconds=300)
    PosixPath('submit.sh')
    >>> wf.export("submit.sh", format="slurm", tasks_per_job=1, max_array_size=4)   # the site's MaxArraySize
    PosixPath('submit.sh')

    The ``slurm`` script's arrays stay within the site's ``MaxArraySize``:
    ``max_array_size=``, else what ``scontrol show config`` says here, else
    Slurm's default (1001); a wider level becomes several arrays, and the
    level above waits for every one of them.
    """
    from .bundles import bundle_entries, check_bundle_options, make_bundles

    validate_params({"format": format, "n_jobs": n_jobs}, EXPORT_CONSTRAINTS, "export")
    check_bundle_options(job_seconds, tasks_per_job, "export")
    path = _check_export_path(path)
    if format == "slurm":
        path = _export_slurm(workflow, path, python, workdir, job_seconds, tasks_per_job, n_jobs, options)
        path.chmod(EXPORT_MODES[format])
        return path
    if job_seconds is None and tasks_per_job is None:
        entries = command_entries(workflow, python=python, workdir=workdir)
    else:
        bundles = make_bundles(workflow, [t.id for t in workflow.tasks], n_jobs, job_seconds, tasks_per_job)
        entries = bundle_entries(workflow, bundles, python=python, workdir=workdir)
    if format == "soma-workflow":
        from .somaworkflow.jobs import export_soma_workflow

        path = export_soma_workflow(workflow, path, entries, **options)
        path.chmod(EXPORT_MODES[format])  # soma-workflow's serializer may create its own file
        return path
    if options:
        raise invalid(f"Unknown options for the {format!r} export: {sorted(options)}.")
    writer = {"commands": _commands_text, "shell": _shell_text, "makefile": _makefile_text}[format]
    text = writer(entries, workdir or workflow.workdir)
    store.atomic_write_bytes(path, text.encode("utf-8"))
    path.chmod(EXPORT_MODES[format])
    return path


def _check_export_path(path):
    """The file an export writes: a path whose folder exists, not a folder itself."""
    validate_params({"path": path}, EXPORT_CONSTRAINTS, "export")
    path = Path(path)
    if path.is_dir():
        raise_invalid("path", "export", "a file, not a folder", str(path))
    if not path.absolute().parent.is_dir():
        raise invalid(
            f"The 'path' parameter of export must be in an existing folder; {str(path.parent)!r} does not exist."
        )
    return path


def command_entries(workflow, python=None, workdir=None):
    """``[{"id", "cmd" (argv list), "deps", "kind", "outer", "split_set"}]`` in dependency order."""
    target = workdir or workflow.workdir
    python = python or workflow.manifest.get("python")
    return [
        {"id": t.id, "cmd": list(task_command(target, t.id, python)), "deps": list(t.deps),
         "kind": t.kind, "outer": t.outer, "split_set": t.split_set}
        for t in workflow.tasks
    ]


def _export_slurm(workflow, path, python, workdir, job_seconds, tasks_per_job, n_jobs, options):
    from .bundles import make_bundles
    from .slurm.script import export_text, plan_arrays, split_arrays

    max_array_size = options.pop("max_array_size", None)
    if options:
        raise invalid(f"Unknown options for the 'slurm' export: {sorted(options)}.")
    validate_params({"max_array_size": max_array_size},
                    {"max_array_size": [Interval(numbers.Integral, 1, None, closed="left"), None]},
                    "the 'slurm' export")
    if max_array_size is None:
        max_array_size = site_max_array_size()
    if job_seconds is None and tasks_per_job is None:
        job_seconds = SLURM_EXPORT_JOB_SECONDS
    bundles = make_bundles(workflow, [t.id for t in workflow.tasks], n_jobs, job_seconds, tasks_per_job)
    target = Path(workdir or workflow.workdir)
    text = export_text(split_arrays(plan_arrays(bundles), max_array_size), python or workflow.manifest.get("python"),
                       target, target / "submissions" / "slurm-export-logs", max_array_size)
    store.atomic_write_bytes(path, text.encode("utf-8"))
    return path


def site_max_array_size():
    """``MaxArraySize`` of the Slurm this machine reaches (``scontrol show config``), else Slurm's default.

    The script is usually written on the cluster's login node, where the
    limit can be read; elsewhere the default (1001) is what most sites keep.

    Examples
    --------
    >>> site_max_array_size() >= 1
    True
    """
    from .slurm.limits import read_config_limits
    from .slurm.watcher import run_command

    return read_config_limits(run_command).max_array_size or SLURM_DEFAULT_MAX_ARRAY_SIZE


def _commands_text(entries, workdir):
    rows = [{"id": e["id"], "cmd": shlex.join(e["cmd"]), "deps": e["deps"]} for e in entries]
    for row, entry in zip(rows, entries):
        if "tasks" in entry:
            row["tasks"] = entry["tasks"]
    return json.dumps(rows, indent=1) + "\n"


def _output_name(task_id):
    """``<shard>/<id>.json``: where the output of ``task_id`` is, relative to ``outputs/``."""
    return store.output_path("", task_id).relative_to(store.OUTPUTS_DIR).as_posix()


def _shell_text(entries, workdir):
    outputs = shlex.quote(str(Path(workdir) / store.OUTPUTS_DIR))
    lines = [
        "#!/usr/bin/env bash",
        "# mempamal workflow: tasks in dependency order; finished ones are skipped.",
        "set -euo pipefail",
        f"OUTPUTS={outputs}",
        "run() {",
        '  local output="$1"; shift',
        '  if [ -e "$OUTPUTS/$output" ]; then return 0; fi',
        '  echo "mempamal: running ${output##*/}" >&2',
        '  "$@"',
        "}",
    ]
    # A bundle line has no single output to test: the command itself skips
    # the tasks already done.
    lines += [f"run {shlex.quote(_output_name(e['id']))} {shlex.join(e['cmd'])}" if "tasks" not in e
              else f"{shlex.join(e['cmd'])}  # {e['id']}" for e in entries]
    return "\n".join(lines) + "\n"


# Characters make reads specially in a rule line, escaped with a backslash:
# blanks split names, '#' starts a comment, ':' and ';' end the target list
# and the prerequisites, '*', '?' and '[' are wildcards. Two more differ
# between targets and prerequisites (GNU make 4): '%' makes a *target* a
# pattern rule and '|' starts order-only *prerequisites*; each is escaped
# only where it is special, since elsewhere make keeps the backslash as part
# of the name. '$' is doubled.
_MAKE_SPECIAL = " #:;*?["
_MAKE_SPECIAL_IN_TARGETS = "%"
_MAKE_SPECIAL_IN_PREREQUISITES = "|"


def _check_makefile_path(text, argument):
    # make has no escape for a newline or a tab in a file name, and
    # backslashes before the characters above would change meaning: refuse
    # rather than mis-run.
    if any(char in text for char in "\n\r\t\\"):
        raise invalid(
            f"The makefile export cannot express {argument} {text!r}: make cannot quote newlines, "
            "tabs or backslashes in file names. Use the 'shell' or 'commands' format, or a path "
            "without them."
        )


def make_escape(text, target=False, argument="the path"):
    r"""Escape a file name for a make rule line (a target when ``target=True``).

    Examples
    --------
    >>> make_escape("/runs/a b#1/outputs")
    '/runs/a\\ b\\#1/outputs'
    >>> make_escape("/runs/100%|x", target=True), make_escape("/runs/100%|x")
    ('/runs/100\\%|x', '/runs/100%\\|x')
    """
    _check_makefile_path(text, argument)
    special = _MAKE_SPECIAL + (_MAKE_SPECIAL_IN_TARGETS if target else _MAKE_SPECIAL_IN_PREREQUISITES)
    escaped = "".join("\\" + char if char in special else char for char in text)
    return escaped.replace("$", "$$")


def make_recipe(argv):
    """A recipe line running ``argv``: quoted for the shell, then ``$`` doubled for make.

    Examples
    --------
    >>> make_recipe(["python", "-m", "mempamal", "task", "/runs/$HOME x", "final"])
    "python -m mempamal task '/runs/$$HOME x' final"
    """
    for arg in argv:
        _check_makefile_path(arg, "the command argument")
    return shlex.join(argv).replace("$", "$$")


def _makefile_text(entries, workdir):
    _check_makefile_path(str(workdir), "the 'workdir' path")
    _check_makefile_path(entries[0]["cmd"][0], "the 'python' path")
    outputs = str(Path(workdir) / store.OUTPUTS_DIR)
    lines = [
        "# mempamal workflow: `make -j N` runs the task graph with N parallel tasks.",
        "# Paths are escaped for make (targets and prerequisites differ for '%' and '|').",
        f"TARGETS := {make_escape(outputs, target=True)}",
        f"OUTPUTS := {make_escape(outputs)}",
        ".PHONY: all",
        f"all: $(OUTPUTS)/{_output_name('final')}",
        "",
    ]
    tasks_of = {e["id"]: e.get("tasks", [e["id"]]) for e in entries}
    for entry in entries:
        deps = " ".join(f"$(OUTPUTS)/{_output_name(task)}" for dep in entry["deps"] for task in tasks_of[dep])
        targets = " ".join(f"$(TARGETS)/{_output_name(task)}" for task in tasks_of[entry["id"]])
        # A bundle makes all its outputs at once: a grouped target (GNU make
        # >= 4.3) runs its recipe once, when any of them is missing.
        separator = " &:" if "tasks" in entry else ":"
        lines.append(f"{targets}{separator} {deps}".rstrip())
        lines.append("\t" + make_recipe(entry["cmd"]))
    return "\n".join(lines) + "\n"
