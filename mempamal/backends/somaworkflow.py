"""Soma-Workflow: export the graph as a soma-workflow file, or submit it.

Every task becomes a ``Job`` whose command is ``python -m mempamal task
WORKDIR ID``; dependencies are the graph's; jobs are grouped per outer fold
(and per permutation), with the ``final`` job at the root.  The exported
file is what ``Helper.serialize`` writes, so ``Helper.unserialize``, the
soma-workflow GUI and ``soma_submit_workflow`` read it.

Running submits through a real ``WorkflowController``.  Without a
``resource_id`` it uses soma-workflow's *isolated light mode* with its state
inside the workdir (``WORKDIR/soma-workflow/``): the user's
``~/.soma-workflow*`` is never read or written, and no server process is
started.  With a ``resource_id`` it uses the user's configured resource
(Slurm, PBS, DRMAA, ...), which needs the workdir on a shared filesystem.
"""

import contextlib
import io
import os
import time
from pathlib import Path

from .. import store
from .base import Backend, DependencyTracker, effective_n_jobs, make_progress

INSTALL_HINT = "The 'soma-workflow' backend needs soma-workflow: pip install soma-workflow"
STATE_DIR = "soma-workflow"


def _import_soma():
    try:
        import soma_workflow.client as client
        import soma_workflow.constants as constants
        import soma_workflow.engine as engine
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return client, constants, engine


def _job_name(entry):
    if entry["split_set"] not in (None, "main") and entry["kind"] != "final":
        return f"{entry['split_set']} / {entry['id'][len(entry['split_set']) + 1:]}"
    return entry["id"]


def build_soma_workflow(entries, name):
    """A ``soma_workflow.client.Workflow`` for command ``entries``.

    ``entries`` are :func:`mempamal.backends.export.command_entries` rows;
    dependencies on tasks not in ``entries`` (already finished) are dropped.

    Examples
    --------
    >>> from mempamal.backends.export import command_entries
    >>> swf = build_soma_workflow(command_entries(wf), "iris")   # doctest: +SKIP
    >>> len(swf.jobs) == len(wf.tasks)                          # doctest: +SKIP
    True
    """
    client, _, _ = _import_soma()
    jobs = {e["id"]: client.Job(command=list(e["cmd"]), name=_job_name(e)) for e in entries}
    dependencies = [(jobs[dep], jobs[e["id"]]) for e in entries for dep in e["deps"] if dep in jobs]
    folds = {}
    loose = []
    for entry in entries:
        if entry["outer"] is None:
            loose.append(jobs[entry["id"]])
        else:
            folds.setdefault(entry["split_set"], {}).setdefault(entry["outer"], []).append(jobs[entry["id"]])
    root = []
    for split_set, by_fold in folds.items():
        label = "" if split_set == "main" else f"{split_set} / "
        groups = [client.Group(elements=members, name=f"{label}fold {fold}") for fold, members in sorted(by_fold.items())]
        if split_set == "main":
            root.extend(groups)
        else:
            root.append(client.Group(elements=groups, name=split_set))
    return client.Workflow(jobs=list(jobs.values()), dependencies=dependencies,
                           root_group=root + loose, name=name, env={})


def export_soma_workflow(workflow, path, entries, name=None):
    """Write the soma-workflow file of ``workflow`` (atomically) and return its path."""
    client, _, _ = _import_soma()
    path = Path(path)
    swf = build_soma_workflow(entries, name or f"mempamal {workflow.workdir.name}")
    tmp = path.with_name(f".{path.name}.tmp")
    client.Helper.serialize(str(tmp), swf)
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def _quiet():
    """soma-workflow prints start-up chatter on stdout; keep the user's output clean."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class SomaWorkflowBackend(Backend):
    """Submit tasks through a soma-workflow ``WorkflowController``.

    Parameters
    ----------
    resource_id : str, optional
        A resource of the user's soma-workflow configuration (a cluster).
        None (default): isolated light mode, state in ``WORKDIR/soma-workflow``.
    poll_interval : float
        Seconds between status polls (the progress bar's refresh).
    queue : str, optional
        Queue to submit to on a configured resource.

    Examples
    --------
    >>> res = wf.run(backend="soma-workflow", n_jobs=2)                      # doctest: +SKIP
    >>> res = wf.run(backend="soma-workflow", resource_id="my-slurm")        # doctest: +SKIP
    """

    name = "soma-workflow"

    def __init__(self, resource_id=None, poll_interval=0.2, queue=None):
        self.resource_id = resource_id
        self.poll_interval = poll_interval
        self.queue = queue

    def run(self, workflow, task_ids, n_jobs=None, progress=True):
        from .export import command_entries

        client, constants, engine = _import_soma()
        wanted = set(task_ids)
        entries = [e for e in command_entries(workflow) if e["id"] in wanted]
        swf = build_soma_workflow(entries, f"mempamal {workflow.workdir.name}")
        bar = make_progress(len(entries), progress)
        saved = (engine.refreshment_interval, os.environ.get("SOMA_WORKFLOW_CONFIG"))
        engine.refreshment_interval = min(engine.refreshment_interval, 0.1)  # job latency, not CPU
        try:
            controller = self._controller(client, workflow, n_jobs)
            try:
                return self._submit_and_wait(controller, constants, swf, entries, workflow, bar)
            finally:
                with _quiet():
                    _stop_controller(controller)
        finally:
            bar.close()
            engine.refreshment_interval = saved[0]
            if saved[1] is None:
                os.environ.pop("SOMA_WORKFLOW_CONFIG", None)
            else:
                os.environ["SOMA_WORKFLOW_CONFIG"] = saved[1]

    def _controller(self, client, workflow, n_jobs):
        with _quiet():
            if self.resource_id is not None:
                return client.WorkflowController(self.resource_id)
            state = store.make_private_dir(workflow.workdir / STATE_DIR)
            controller = client.WorkflowController(isolated_light_mode=str(state))
            config = controller.scheduler_config
            if config is not None:
                # Point the scheduler config at the workdir first: set_proc_nb
                # saves it, by default into ~/.soma-workflow-scheduler.cfg.
                config._config_path = str(state / "scheduler.cfg")
                workers = effective_n_jobs(-1 if n_jobs is None else n_jobs)
                config.set_proc_nb(workers)
                config.set_max_proc_nb(workers)
        return controller

    def _submit_and_wait(self, controller, constants, swf, entries, workflow, bar):
        with _quiet():
            workflow_id = controller.submit_workflow(swf, name=swf.name, queue=self.queue)
        finished = False
        try:
            job_ids = _job_ids(controller, workflow_id, swf, entries)
            seen = 0
            while controller.workflow_status(workflow_id) != constants.WORKFLOW_DONE:
                seen = _update_progress(controller, constants, workflow_id, bar, seen)
                time.sleep(self.poll_interval)
            _update_progress(controller, constants, workflow_id, bar, seen)
            finished = True
            return self._failures(controller, constants, workflow_id, job_ids, entries, workflow)
        finally:
            with _quiet():
                if not finished:
                    # Ctrl-C or an error: kill running jobs, they would outlive us.
                    controller.stop_workflow(workflow_id)
                controller.delete_workflow(workflow_id, force=True)

    def _failures(self, controller, constants, workflow_id, job_ids, entries, workflow):
        """Files are the truth: a task failed if its output is missing."""
        done = store.finished_task_ids(workflow.workdir)
        tracker = DependencyTracker(workflow, [e["id"] for e in entries])
        failed = {}
        for entry in entries:
            task_id = entry["id"]
            if task_id in done or task_id in failed:
                continue
            status = controller.job_termination_status(job_ids[task_id])
            if status[0] == constants.EXIT_NOTRUN:
                continue  # reported through the task it depends on
            message = _stderr_tail(controller, job_ids[task_id], workflow.workdir / STATE_DIR)
            tracker.record(task_id, f"soma-workflow job exited with {status[:2]}: {message}", failed)
        for entry in entries:
            if entry["id"] not in done and entry["id"] not in failed:
                failed[entry["id"]] = "not run: a task it depends on failed"
        return failed


def _job_ids(controller, workflow_id, swf, entries):
    """Map task ids to soma-workflow job ids (submission order is kept)."""
    submitted = controller.workflow(workflow_id)
    ids = {}
    for entry, ours, theirs in zip(entries, swf.jobs, submitted.jobs):
        assert ours.name == theirs.name, (ours.name, theirs.name)
        ids[entry["id"]] = submitted.job_mapping[theirs].job_id
    return ids


def _update_progress(controller, constants, workflow_id, bar, seen):
    statuses = controller.workflow_elements_status(workflow_id)[0]
    over = sum(1 for job in statuses if job[1] in (constants.DONE, constants.FAILED))
    if over > seen:
        bar.update(over - seen)
    return max(over, seen)


def _stderr_tail(controller, job_id, state_dir, limit=2000):
    out_path, err_path = state_dir / f"job{job_id}.out", state_dir / f"job{job_id}.err"
    try:
        controller.retrieve_job_stdouterr(job_id, str(out_path), str(err_path))
        text = err_path.read_text(errors="replace").strip()
    except Exception as exc:  # no stderr file (never started), transfer error...
        return f"(no stderr: {exc})"
    finally:
        for path in (out_path, err_path):
            if path.exists():
                path.unlink()
    return text[-limit:] or "(empty stderr)"


def _stop_controller(controller):
    scheduler = getattr(getattr(getattr(controller, "_engine_proxy", None), "engine_loop", None), "_scheduler", None)
    controller.stop_engine()
    if scheduler is not None and hasattr(scheduler, "end_scheduler_thread"):
        # Light mode's scheduler threads otherwise live until interpreter exit.
        scheduler.end_scheduler_thread()
