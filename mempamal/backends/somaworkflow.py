"""Soma-Workflow: export the graph as a soma-workflow file, or submit it.

Every task becomes a ``Job`` whose command is ``python -m mempamal task
WORKDIR ID``, named after where it sits (``fold 2 / fit-o2-i1-c0``,
``perm 3 / fold 0 / select-o0``); dependencies are the graph's; there is one
``Group`` per outer fold, the folds of each permutation grouped under
``perm <m>`` and all permutations under ``permutations``; ``final`` sits at
the root.  The exported file is what ``Helper.serialize`` writes, so
``Helper.unserialize``, the soma-workflow GUI and ``soma_submit_workflow``
read it.

Running submits the unfinished tasks through a real ``WorkflowController``.
Without a ``resource_id`` it uses soma-workflow's *isolated light mode* with
all its state inside the workdir (``WORKDIR/soma-workflow/``): the user's
``~/.soma-workflow*`` files are neither read nor written, and no server
process is started (engine and scheduler are threads of this process).  With
a ``resource_id`` it uses that resource of the user's soma-workflow
configuration (Slurm, PBS, DRMAA, ...), which needs the workdir on a
filesystem the nodes share.
"""

import contextlib
import io
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

from .. import store
from ..tasktable import MAIN
from .base import (Backend, check_stop, effective_n_jobs, make_progress, publish_executing, published_batches,
                   temporary_environment)
from .somaworkflow_status import (failures, job_ids_of, mark_record_ended, read_record, record_path,
                                  show_progress, surviving_jobs, unfinished, wait_for_slurm_jobs,
                                  write_record)

INSTALL_HINT = "The 'soma-workflow' backend needs soma-workflow: pip install soma-workflow"
#: Default target duration of one job: tasks are bundled to fill it.
DEFAULT_JOB_SECONDS = 60
#: Folder of the workdir holding soma-workflow's state in isolated light mode.
STATE_DIR = "soma-workflow"
#: Engine loop period (seconds) while we run; soma-workflow's 1 s default
#: would add up to a second of latency at every level of the graph.
ENGINE_TICK = 0.05


def _import_soma():
    try:
        import soma_workflow.client as client
        import soma_workflow.constants as constants
        import soma_workflow.engine as engine
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return client, constants, engine


# ------------------------------------------------------------------ the file
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
    >>> swf = build_soma_workflow(command_entries(wf), "iris")   # doctest: +SKIP
    >>> len(swf.jobs) == len(wf.tasks)                          # doctest: +SKIP
    True
    """
    client, _, _ = _import_soma()
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
    >>> wf.export("wf.json", format="soma-workflow", python="/cluster/venv/bin/python")  # doctest: +SKIP
    >>> from soma_workflow.client import Helper
    >>> len(Helper.unserialize("wf.json").jobs) == len(wf.tasks)   # doctest: +SKIP
    True
    """
    client, _, _ = _import_soma()
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


# ------------------------------------------------------------------ the run
@contextlib.contextmanager
def _quiet():
    """soma-workflow prints start-up and shut-down chatter on stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class _Interrupts:
    """Ctrl-C only sets a flag while soma-workflow runs; :meth:`check` raises it.

    A KeyboardInterrupt landing inside one of soma-workflow's sqlite calls
    leaves its database locked: the clean-up (``stop_workflow``) then fails
    and the running jobs are orphaned.  So interrupts are taken between polls,
    and a second Ctrl-C cannot cut the clean-up short.
    """

    def __init__(self, stop=None):
        self.received = False
        self.previous = None
        self.stop = stop  # Workflow.submit's event: a cancel from another thread

    def __enter__(self):
        # Signal handlers can only be set from the main thread (where Ctrl-C lands).
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not None:
            self.previous = signal.signal(signal.SIGINT, self._record)
        return self

    def _record(self, signum, frame):
        self.received = True

    def check(self):
        if self.received:
            raise KeyboardInterrupt
        check_stop(self.stop)

    def __exit__(self, exc_type, exc, traceback):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if exc_type is None and self.received:
            raise KeyboardInterrupt
        return False


@contextlib.contextmanager
def _engine_settings():
    """A fast engine tick while we run; process-wide settings restored afterwards.

    The tick is read when the controller starts; isolated light mode sets
    ``$SOMA_WORKFLOW_CONFIG`` for the whole process.
    """
    _, _, engine = _import_soma()
    saved = engine.refreshment_interval, os.environ.get("SOMA_WORKFLOW_CONFIG")
    engine.refreshment_interval = min(engine.refreshment_interval, ENGINE_TICK)
    try:
        yield
    finally:
        engine.refreshment_interval = saved[0]
        if saved[1] is None:
            os.environ.pop("SOMA_WORKFLOW_CONFIG", None)
        else:
            os.environ["SOMA_WORKFLOW_CONFIG"] = saved[1]


@contextlib.contextmanager
def _temporary_directory(folder):
    """Light mode makes ``<tempdir>/soma-workflow-shtmp`` at start-up: keep it in ``folder``."""
    saved = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = saved


class SomaWorkflowBackend(Backend):
    """Submit tasks through a soma-workflow ``WorkflowController`` and wait.

    Parameters
    ----------
    resource_id : str, optional
        A resource (section) of a soma-workflow configuration file, e.g. a
        Slurm cluster.  None: this machine.
    config : path, optional
        That configuration file; None: soma-workflow's own search
        (``$SOMA_WORKFLOW_CONFIG``, then ``~/.soma-workflow.cfg``).  A
        resource submitting from this machine runs with the engine inside
        this process (see :mod:`mempamal.backends.somaworkflow_resource`).
    isolated : bool or path, optional
        Isolated light mode: soma-workflow's database and job logs in this
        folder, the user's configuration untouched.  Default: True (folder
        ``WORKDIR/soma-workflow``) without ``resource_id``, False with one.
        ``isolated=False`` without ``resource_id`` uses the user's own
        light-mode setup.
    queue : str, optional
        Queue to submit to on a configured resource.
    poll_interval : float
        Seconds between status polls (the progress bar's refresh).
    job_seconds, tasks_per_job : optional
        Bundle sizing (:mod:`mempamal.backends.bundles`): each job runs several tasks
        of one level in one interpreter.  Default: ``job_seconds=60``.
    python, remote_workdir : str, optional
        Interpreter and workdir paths in the jobs' commands, for nodes that
        mount them elsewhere than this machine (as ``export`` allows).

    ``n_jobs`` of ``run`` sets how many jobs run at once on this machine
    (None: all cores); a cluster resource applies its own limits.  Bundling
    keeps at least ``n_jobs`` jobs per level when there are enough tasks.

    Examples
    --------
    >>> res = wf.run(backend="soma-workflow", n_jobs=2)                  # doctest: +SKIP
    >>> res = wf.run(backend="soma-workflow", resource_id="my-slurm", config="swf.cfg")   # doctest: +SKIP
    """

    name = "soma-workflow"

    def __init__(self, resource_id=None, isolated=None, queue=None, poll_interval=0.1, config=None,
                 job_seconds=None, tasks_per_job=None, python=None, remote_workdir=None):
        from .bundles import check_bundle_options

        if resource_id is not None and not isinstance(resource_id, str):
            raise ValueError(f"The 'resource_id' parameter of the soma-workflow backend must be a str or "
                             f"None; got {resource_id!r} instead.")
        if not (isolated is None or isinstance(isolated, (bool, str, os.PathLike))):
            raise ValueError(f"The 'isolated' parameter of the soma-workflow backend must be a bool, a "
                             f"folder or None; got {isolated!r} instead.")
        if isolated not in (None, False) and resource_id is not None:
            raise ValueError("The 'isolated' parameter of the soma-workflow backend runs in light mode "
                             f"on this machine; it cannot be used with resource_id={resource_id!r}.")
        if not isinstance(poll_interval, (int, float)) or poll_interval <= 0:
            raise ValueError(f"The 'poll_interval' parameter of the soma-workflow backend must be a "
                             f"positive number; got {poll_interval!r} instead.")
        if config is not None and resource_id is None:
            raise ValueError("The 'config' parameter of the soma-workflow backend needs a 'resource_id' "
                             f"(a section of that file); got config={config!r} without one.")
        if config is not None and not isinstance(config, (str, os.PathLike)):
            raise ValueError(f"The 'config' parameter of the soma-workflow backend must be a path or None; "
                             f"got {config!r} instead.")
        check_bundle_options(job_seconds, tasks_per_job, "the soma-workflow backend")
        for label, value in (("python", python), ("remote_workdir", remote_workdir)):
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise ValueError(f"The {label!r} parameter of the soma-workflow backend must be a path or "
                                 f"None; got {value!r} instead.")
        self.resource_id = resource_id
        self.isolated = resource_id is None if isolated is None else isolated
        self.queue = queue
        self.poll_interval = poll_interval
        self.config = config
        self.job_seconds = DEFAULT_JOB_SECONDS if job_seconds is None and tasks_per_job is None else job_seconds
        self.tasks_per_job = tasks_per_job
        self.python = None if python is None else str(python)
        self.remote_workdir = None if remote_workdir is None else str(remote_workdir)

    def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None):
        """Submit ``task_ids`` as one soma-workflow workflow and wait for it.

        Examples
        --------
        >>> failed = SomaWorkflowBackend().run(wf, wf.pending_ids(), n_jobs=2)   # doctest: +SKIP
        """
        from .bundles import bundle_entries, make_bundles

        client, constants, _ = _import_soma()
        state = store.make_private_dir(workflow.workdir / STATE_DIR)
        light = None
        if self.isolated is not False:
            light = state if self.isolated is True else store.make_private_dir(Path(self.isolated).absolute())
        bundles = make_bundles(workflow, task_ids, effective_n_jobs(-1 if n_jobs is None else n_jobs),
                               self.job_seconds, self.tasks_per_job)
        entries = bundle_entries(workflow, bundles, python=self.python, workdir=self.remote_workdir)
        bar = make_progress(len(task_ids), progress)
        try:
            with _Interrupts(stop) as interrupts, _engine_settings(), self._resource_environment(state):
                with _quiet():
                    controller = self._controller(client, light, state, n_jobs)
                try:
                    env = _thread_limits(n_jobs, controller)
                    swf = build_soma_workflow(entries, f"mempamal {workflow.workdir.name}", env)
                    return self._submit_and_wait(controller, constants, swf, entries, workflow, bar, interrupts,
                                                 n_jobs)
                finally:
                    with _quiet():
                        _shutdown(controller)
        finally:
            bar.close()

    @contextlib.contextmanager
    def _resource_environment(self, state):
        """With a resource: its config file for soma-workflow, a sacct wrapper for old Slurm."""
        if self.resource_id is None:
            yield
            return
        from .somaworkflow_resource import slurm_environment

        values = {"PATH": slurm_environment(state)}
        if self.config is not None:
            values["SOMA_WORKFLOW_CONFIG"] = str(Path(self.config).absolute())
        with temporary_environment(**values):
            yield

    def _controller(self, client, light, state, n_jobs):
        if light is None and self.resource_id is not None:
            from .somaworkflow_resource import load_resource

            config, _ = load_resource(self.resource_id, self.config, state)
            controller = client.WorkflowController(self.resource_id, config=config)
        elif light is None:
            controller = client.WorkflowController(self.resource_id)
        else:
            with _temporary_directory(light):
                controller = client.WorkflowController(isolated_light_mode=str(light))
        config = controller.scheduler_config  # None unless jobs run on this machine
        if config is not None and (n_jobs is not None or self.isolated is not False):
            # set_proc_nb saves the scheduler config, by default into
            # ~/.soma-workflow-scheduler.cfg: point it at the workdir first.
            config._config_path = str(state / "scheduler.cfg")
            workers = effective_n_jobs(-1 if n_jobs is None else n_jobs)
            config.set_proc_nb(workers)
            config.set_max_proc_nb(workers)
        return controller

    def _submit_and_wait(self, controller, constants, swf, entries, workflow, bar, interrupts, n_jobs=None):
        with _quiet():
            workflow_id = controller.submit_workflow(swf, name=swf.name, queue=self.queue)
        finished = False
        try:
            job_ids = job_ids_of(controller, workflow_id, swf, entries)
            if self.resource_id is not None:
                # Jobs on a cluster outlive this process: say where to find them again.
                write_record(workflow.workdir, self._record(controller, workflow_id, entries, job_ids, n_jobs))
            failed = self._follow(controller, constants, workflow_id, entries, job_ids, workflow, bar, interrupts)
            finished = True
            return failed
        finally:
            self._forget(controller, workflow_id, workflow, finished)

    def _record(self, controller, workflow_id, entries, job_ids, n_jobs):
        config = None if self.config is None else str(Path(self.config).absolute())
        return {"backend": self.name, "submitted": time.time(), "workflow_id": workflow_id,
                "resource_id": self.resource_id, "config": config, "queue": self.queue, "n_jobs": n_jobs,
                "scheduler": controller.config.get_scheduler_type(), "python": self.python,
                "database": controller.config.get_database_file(),
                "remote_workdir": self.remote_workdir,
                "bundles": [{"id": e["id"], "tasks": list(e["tasks"]), "job_id": job_ids[e["id"]]} for e in entries]}

    def _follow(self, controller, constants, workflow_id, entries, job_ids, workflow, bar, interrupts):
        """Poll the engine until the workflow is done; the failures by task id."""
        bundle_of = {job_id: bundle_id for bundle_id, job_id in job_ids.items()}
        tasks_of = {entry["id"]: entry["tasks"] for entry in entries}
        wanted = {task_id for entry in entries for task_id in entry["tasks"]}
        published_before = published_batches(workflow.workdir)
        try:
            while True:
                jobs, _, status, *_ = controller.workflow_elements_status(workflow_id)
                publish_executing(workflow.workdir, [tasks_of[bundle_of[job[0]]] for job in jobs
                                                     if job[1] == constants.RUNNING and job[0] in bundle_of])
                show_progress(bar, constants, jobs, workflow.workdir, wanted)
                if status == constants.WORKFLOW_DONE:
                    break
                interrupts.check()
                time.sleep(self.poll_interval)
        finally:
            publish_executing(workflow.workdir, published_before and [])
        jobs = {bundle_of[job[0]]: job for job in jobs}
        return failures(controller, constants, workflow, entries, job_ids, jobs, workflow.workdir / STATE_DIR)

    def _forget(self, controller, workflow_id, workflow, finished):
        """The run is over for this driver: kill what still runs unless it finished, drop it from the engine."""
        with _quiet():
            if not finished:
                # Ctrl-C or an error: kill the running jobs, which would
                # otherwise outlive us (and keep writing outputs).
                controller.stop_workflow(workflow_id)
            controller.delete_workflow(workflow_id, force=True)
        if self.resource_id is not None:
            mark_record_ended(workflow.workdir, workflow_id)

    # ------------------------------------------------------------ attach
    @property
    def outlives_driver(self):
        """True with a ``resource_id``: the cluster's jobs go on when this process dies.

        Examples
        --------
        >>> SomaWorkflowBackend().outlives_driver, SomaWorkflowBackend(resource_id="slurm").outlives_driver
        (False, True)
        """
        return self.resource_id is not None

    def scheduler_view(self, workdir, record):
        """The recorded workflow's jobs: ``{"pending": n, "running": n, "finished": n}``.

        From soma-workflow's database, and from ``squeue`` on a Slurm
        resource (:func:`mempamal.backends.somaworkflow_status.engine_view`).

        Examples
        --------
        >>> SomaWorkflowBackend().scheduler_view(wf.workdir, read_record(wf.workdir))   # doctest: +SKIP
        {'pending': 2, 'running': 2, 'finished': 1}
        """
        from .somaworkflow_status import engine_view

        return engine_view(workdir, record)

    def attach(self, workflow, stop=None, progress=True):
        """Follow the submission recorded in ``WORKDIR/submissions/soma-workflow.json`` to its end.

        For a driver that died while its cluster jobs kept running (a
        restarted kernel: ``wf.attach()``).  soma-workflow's engine ran in
        that driver: the jobs it had submitted to Slurm go on, the later
        levels were never submitted, and no engine can take the workflow
        over (``restart_workflow`` submits its queued and running jobs a
        second time).  So this waits for the surviving Slurm jobs (their
        ids are in soma-workflow's database), then submits the recorded
        tasks still without an output as a new soma-workflow workflow on
        the same resource.  Returns ``{task_id: message}`` of the failures,
        as :meth:`run` does.

        Examples
        --------
        >>> failed = SomaWorkflowBackend().attach(wf)      # doctest: +SKIP
        """
        record = read_record(workflow.workdir)
        if record is None:
            raise store.WorkdirError(f"No soma-workflow submission recorded in {workflow.workdir} "
                                     f"(no {record_path(workflow.workdir)}).")
        if record.get("ended"):
            return unfinished(workflow, record)  # its driver saw it to the end: nothing runs any more
        if record.get("scheduler") != "slurm":
            raise RuntimeError(f"Cannot follow the soma-workflow jobs of {workflow.workdir} on a "
                               f"{record.get('scheduler')!r} resource after their driver died; run the "
                               "workdir again to resume (finished tasks are kept).")
        survivors = surviving_jobs(workflow.workdir, record)
        with _Interrupts(stop) as interrupts:
            wait_for_slurm_jobs(workflow, survivors, interrupts, self.poll_interval)
        done = store.finished_task_ids(workflow.workdir)
        rest = [task_id for entry in record["bundles"] for task_id in entry["tasks"] if task_id not in done]
        if not rest:
            mark_record_ended(workflow.workdir, record["workflow_id"])
            return {}
        follower = SomaWorkflowBackend(resource_id=record["resource_id"], config=record["config"],
                                       queue=record["queue"], poll_interval=self.poll_interval,
                                       python=record.get("python"), remote_workdir=record.get("remote_workdir"),
                                       job_seconds=self.job_seconds, tasks_per_job=self.tasks_per_job)
        return follower.run(workflow, rest, n_jobs=record["n_jobs"], progress=progress, stop=stop)


def _thread_limits(n_jobs, controller):
    """BLAS/OpenMP threads per job so that parallel jobs do not oversubscribe the cores.

    On this machine: its cores shared among ``n_jobs``.  On Slurm: the CPUs
    the job was given (soma-workflow writes ``export NAME=VALUE`` unquoted
    into the batch script, so the variable expands on the node).  Other
    schedulers: left to them (None).
    """
    from .local import THREAD_VARIABLES

    if controller.config.get_scheduler_type() == "slurm":
        return {name: "${SLURM_CPUS_PER_TASK:-1}" for name in THREAD_VARIABLES}
    if controller.scheduler_config is not None:  # soma-workflow's local scheduler
        n_threads = max(1, (os.cpu_count() or 1) // effective_n_jobs(-1 if n_jobs is None else n_jobs))
        return {name: str(n_threads) for name in THREAD_VARIABLES}
    return None


def _shutdown(controller):
    """Stop the engine thread and, in light mode, the scheduler threads."""
    engine_loop = getattr(getattr(controller, "_engine_proxy", None), "engine_loop", None)
    scheduler = getattr(engine_loop, "_scheduler", None)
    controller.stop_engine()
    if hasattr(scheduler, "end_scheduler_thread"):
        # Daemon threads that would otherwise poll until interpreter exit.
        scheduler.end_scheduler_thread()
    # WorkflowController.__del__ prints and stops the engine again; after a
    # Ctrl-C the traceback keeps the controller alive, so it would print later.
    controller.__class__ = _stopped_class(type(controller))


_STOPPED_CLASSES = {}


def _stopped_class(cls):
    if cls not in _STOPPED_CLASSES:
        _STOPPED_CLASSES[cls] = type(f"Stopped{cls.__name__}", (cls,), {"__del__": lambda self: None})
    return _STOPPED_CLASSES[cls]
