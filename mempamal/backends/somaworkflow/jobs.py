"""The soma-workflow ``Workflow`` of a task graph: what the soma-workflow run submits and ``export`` writes.

Every task (or bundle of tasks) becomes a ``Job`` whose command is ``python
-m mempamal task WORKDIR ID``, named after where it sits (``fold 2 /
fit-o2-i1-c0``, ``perm 3 / fold 0 / select-o0``); dependencies are the
graph's; there is one ``Group`` per outer fold, the folds of each
permutation grouped under ``perm <m>`` and all permutations under
``permutations``; ``final`` sits at the root.  The exported file is what
``Helper.serialize`` writes, so ``Helper.unserialize``, the soma-workflow
GUI and ``soma_submit_workflow`` read it.  The run is
:mod:`mempamal.backends.somaworkflow.backend`.
"""

import contextlib
import os
import tempfile
from pathlib import Path

from ...store.tasktable import MAIN

INSTALL_HINT = "The 'soma-workflow' backend needs soma-workflow: pip install soma-workflow"


def import_soma():
    """soma-workflow's ``client``, ``constants`` and ``engine`` modules, or an ImportError with the install hint.

    soma-workflow is optional: it is imported only when a soma-workflow run
    or export needs it.

    Examples
    --------
    >>> client, constants, engine = import_soma()
    >>> constants.WORKFLOW_DONE
    'workflow_done'
    """
    try:
        import soma_workflow.client as client
        import soma_workflow.constants as constants
        import soma_workflow.engine as engine
    except ImportError as exc:
        from ...exceptions import MissingDependency

        raise MissingDependency(INSTALL_HINT) from exc
    return client, constants, engine


#: The group of the search on all the data (final_fit=True), beside the folds.
FINAL_SEARCH_GROUP = "final search"
FINAL_SEARCH_KINDS = ("fit-all", "select-all")


def _group_path(entry):
    """Labels of the groups holding a task, outermost first: ``["perm 3", "perm 3 / fold 0"]``."""
    if entry.get("kind") in FINAL_SEARCH_KINDS:
        return [FINAL_SEARCH_GROUP]
    if entry["outer"] is None:
        return []
    fold = f"fold {entry['outer']}"
    if entry["split_set"] in (None, MAIN):
        return [fold]
    permutation = entry["split_set"].replace("-", " ", 1)
    return [permutation, f"{permutation} / {fold}"]


def job_name(entry):
    """Readable, unique name of a task's job.

    Examples
    --------
    >>> job_name({"id": "fit-o2-i1-c0", "split_set": "main", "outer": 2})
    'fold 2 / fit-o2-i1-c0'
    >>> job_name({"id": "perm-3-select-o0", "split_set": "perm-3", "outer": 0})
    'perm 3 / fold 0 / select-o0'
    >>> job_name({"id": "final", "split_set": None, "outer": None})
    'final'
    >>> job_name({"id": "bundle-0-1", "split_set": "main", "outer": 1, "tasks": ["fit-o1-i0-c0", "fit-o1-i1-c0"]})
    'fold 1 / bundle-0-1 (fit-o1-i0-c0 .. fit-o1-i1-c0, 2 tasks)'
    """
    path = _group_path(entry)
    if "tasks" in entry:  # a bundle: say which tasks it runs
        tasks = entry["tasks"]
        short_id = f"{entry['id']} ({tasks[0]}" + (f" .. {tasks[-1]}, {len(tasks)} tasks)" if len(tasks) > 1 else ")")
        return f"{path[-1]} / {short_id}" if path else short_id
    if not path:
        return entry["id"]
    short_id = entry["id"]
    if entry["split_set"] not in (None, MAIN):
        short_id = short_id[len(entry["split_set"]) + 1:]
    return f"{path[-1]} / {short_id}"


def build_soma_workflow(entries, name, env=None):
    """A ``soma_workflow.client.Workflow`` with one job per command entry.

    ``entries`` are :func:`mempamal.backends.export.command_entries` rows;
    dependencies on tasks not in ``entries`` (already finished) are dropped.
    ``env`` (a dict) is added to every job's environment.

    Examples
    --------
    >>> from mempamal.backends.export import command_entries
    >>> swf = build_soma_workflow(command_entries(wf), "iris")
    >>> len(swf.jobs) == len(wf.tasks)
    True
    """
    client, _, _ = import_soma()
    jobs = {e["id"]: client.Job(command=list(e["cmd"]), name=job_name(e), env=env) for e in entries}
    dependencies = [(jobs[dep], jobs[e["id"]]) for e in entries for dep in e["deps"] if dep in jobs]
    return client.Workflow(jobs=list(jobs.values()), dependencies=dependencies,
                           root_group=_root_group(client, entries, jobs), name=name, env={})


def _root_group(client, entries, jobs):
    """Fold groups at the root, permutation folds under ``permutations / perm <m>``."""
    members, loose = {}, []  # group path -> jobs, in task order
    for entry in entries:
        path = tuple(_group_path(entry))
        if path:
            members.setdefault(path, []).append(jobs[entry["id"]])
        else:
            loose.append(jobs[entry["id"]])
    root, permutations = [], {}
    for path, elements in members.items():
        group = client.Group(elements=elements, name=path[-1])
        if len(path) == 1:
            root.append(group)
        else:
            permutations.setdefault(path[0], []).append(group)
    if permutations:
        root.append(client.Group(
            elements=[client.Group(elements=folds, name=label) for label, folds in permutations.items()],
            name="permutations"))
    return root + loose


def export_soma_workflow(workflow, path, entries, name=None):
    """Write the soma-workflow file of ``workflow`` atomically; returns its path.

    Called by ``workflow.export(path, format="soma-workflow")``, which builds
    ``entries`` (and honours ``python=`` / ``workdir=``).

    Examples
    --------
    >>> wf.export("wf.json", format="soma-workflow", python="/cluster/venv/bin/python")
    PosixPath('wf.json')
    >>> from soma_workflow.client import Helper
    >>> len(Helper.unserialize("wf.json").jobs) == len(wf.tasks)
    True
    """
    client, _, _ = import_soma()
    path = Path(path)
    swf = build_soma_workflow(entries, name or f"mempamal {workflow.workdir.name}")
    # Helper.serialize only takes a file name: serialize next to the target, then rename.
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        client.Helper.serialize(tmp, swf)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
