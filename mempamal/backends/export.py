"""Portable exports of a workflow: the graph as plain commands.

``commands``  JSON list of ``{"id", "cmd", "deps"}`` (the original tool's format)
``shell``     a bash script running the tasks in dependency order
``makefile``  one target per task: ``make -j N`` runs the graph in parallel
``soma-workflow``  a file ``soma_workflow.client.Helper.unserialize`` reads

Every command is ``python -m mempamal task WORKDIR ID``; ``python=`` and
``workdir=`` rewrite the interpreter and workdir paths for machines that
mount them elsewhere (a cluster's nodes, say).
"""

import json
import shlex
from pathlib import Path

from .. import store
from ..workflow import task_command

FORMATS = ("commands", "shell", "makefile", "soma-workflow")


def export_workflow(workflow, path, format="commands", python=None, workdir=None, **options):
    """Write ``workflow`` to ``path`` in ``format``; returns the path.

    Examples
    --------
    >>> wf.export("wf.json", format="commands")                     # doctest: +SKIP
    >>> wf.export("Makefile", format="makefile", python="/opt/py/bin/python")  # doctest: +SKIP
    """
    if format not in FORMATS:
        raise ValueError(f"The 'format' parameter of export must be one of {list(FORMATS)}; got {format!r} instead.")
    path = Path(path)
    entries = command_entries(workflow, python=python, workdir=workdir)
    if format == "soma-workflow":
        from .somaworkflow import export_soma_workflow

        return export_soma_workflow(workflow, path, entries, **options)
    if options:
        raise TypeError(f"Unknown options for the {format!r} export: {sorted(options)}.")
    writer = {"commands": _commands_text, "shell": _shell_text, "makefile": _makefile_text}[format]
    text = writer(entries, workdir or workflow.workdir)
    store.atomic_write_bytes(path, text.encode("utf-8"))
    if format == "shell":
        path.chmod(0o755)
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


def _commands_text(entries, workdir):
    rows = [{"id": e["id"], "cmd": shlex.join(e["cmd"]), "deps": e["deps"]} for e in entries]
    return json.dumps(rows, indent=1) + "\n"


def _shell_text(entries, workdir):
    outputs = shlex.quote(str(Path(workdir) / store.OUTPUTS_DIR))
    lines = [
        "#!/usr/bin/env bash",
        "# mempamal workflow: tasks in dependency order; finished ones are skipped.",
        "set -euo pipefail",
        f"OUTPUTS={outputs}",
        "run() {",
        '  local id="$1"; shift',
        '  if [ -e "$OUTPUTS/$id.json" ]; then return 0; fi',
        '  echo "mempamal: running $id" >&2',
        '  "$@"',
        "}",
    ]
    lines += [f"run {shlex.quote(e['id'])} {shlex.join(e['cmd'])}" for e in entries]
    return "\n".join(lines) + "\n"


def _makefile_text(entries, workdir):
    outputs = str(Path(workdir) / store.OUTPUTS_DIR).replace(" ", "\\ ")
    lines = [
        "# mempamal workflow: `make -j N` runs the task graph with N parallel tasks.",
        f"OUTPUTS := {outputs}",
        ".PHONY: all",
        "all: $(OUTPUTS)/final.json",
        "",
    ]
    for entry in entries:
        deps = " ".join(f"$(OUTPUTS)/{dep}.json" for dep in entry["deps"])
        lines.append(f"$(OUTPUTS)/{entry['id']}.json: {deps}".rstrip())
        lines.append("\t" + shlex.join(entry["cmd"]).replace("$", "$$"))
    return "\n".join(lines) + "\n"
