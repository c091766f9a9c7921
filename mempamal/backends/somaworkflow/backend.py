"""Soma-Workflow: submit the graph through a soma-workflow ``WorkflowController`` and wait.

Running submits the unfinished tasks, bundled into jobs, as the
``Workflow`` of :mod:`mempamal.backends.somaworkflow.jobs` (the same one
``export(format="soma-workflow")`` writes) through a real
``WorkflowController``.  Without a ``resource_id`` it uses soma-workflow's
*isolated light mode* with all its state inside the workdir
(``WORKDIR/soma-workflow/``): the user's ``~/.soma-workflow*`` files are
neither read nor written, and no server process is started (engine and
scheduler are threads of this process, run as
:mod:`mempamal.backends.somaworkflow.engine` sets them up).  With a
``resource_id`` it uses that resource of the user's soma-workflow
configuration (Slurm, PBS, DRMAA, ...), which needs the workdir on a
filesystem the nodes share (:mod:`mempamal.backends.somaworkflow.resource`);
:mod:`mempamal.backends.somaworkflow.status` reads statuses and failures
back per task.
"""

import contextlib
import numbers
import os
import time
from pathlib import Path

from ... import store
from ..._constraints import Interval, invalid, validate_params
from ...engine.first_fit import check_first_fit
from ..base import JobBackend, RunObserver, allow_version_mismatch, effective_n_jobs, make_progress, temporary_environment
from .engine import Interrupts, engine_settings, quiet, shutdown, temporary_directory
from .jobs import build_soma_workflow, import_soma
from .status import failures, job_ids_of, mark_record_ended, read_record, record_path, show_progress, surviving_jobs, unfinished, wait_for_slurm_jobs, write_record

#: Default target duration of one job: tasks are bundled to fill it.
DEFAULT_JOB_SECONDS = 60
#: Folder of the workdir holding soma-workflow's state in isolated light mode.
STATE_DIR = "soma-workflow"


#: The options of the soma-workflow backend (job_seconds, tasks_per_job: bundles.BUNDLE_CONSTRAINTS).
SOMA_WORKFLOW_CONSTRAINTS = {
    "resource_id": [str, None],
    "isolated": ["boolean", "path", None],
    "poll_interval": [Interval(numbers.Real, 0, None, closed="neither")],
    "config": ["path", None],
    "python": ["path", None],
    "remote_workdir": ["path", None],
    "check_first": ["boolean"],
}


class SomaWorkflowBackend(JobBackend):
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
        this process (see :mod:`mempamal.backends.somaworkflow.resource`).
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
    check_first : bool
        Fit one representative grid point in this process before submitting
        and refuse when every task would fail the same way
        (:mod:`mempamal.engine.first_fit`); ``False`` skips it.

    ``n_jobs`` of ``run`` sets how many jobs run at once on this machine
    (None: all cores); a cluster resource applies its own limits.  Bundling
    keeps at least ``n_jobs`` jobs per level when there are enough tasks.

    Examples
    --------
    >>> res = wf.run(backend="soma-workflow", n_jobs=2)                  # needs a soma-workflow resource  # doctest: +SKIP
    >>> res = wf.run(backend="soma-workflow", resource_id="my-slurm", config="swf.cfg")   # needs a soma-workflow resource  # doctest: +SKIP
    """

    supports_stop = True
    supports_observer = True

    name = "soma-workflow"

    def __init__(self, resource_id=None, isolated=None, queue=None, poll_interval=0.1, config=None,
                 job_seconds=None, tasks_per_job=None, python=None, remote_workdir=None, check_first=True):
        from ..bundles import check_bundle_options

        owner = "the soma-workflow backend"
        validate_params({"resource_id": resource_id, "isolated": isolated, "poll_interval": poll_interval,
                         "config": config, "python": python, "remote_workdir": remote_workdir,
                         "check_first": check_first},
                        SOMA_WORKFLOW_CONSTRAINTS, owner)
        if isolated not in (None, False) and resource_id is not None:
            raise invalid("The 'isolated' parameter of the soma-workflow backend runs in light mode "
                             f"on this machine; it cannot be used with resource_id={resource_id!r}.")
        if config is not None and resource_id is None:
            raise invalid("The 'config' parameter of the soma-workflow backend needs a 'resource_id' "
                             f"(a section of that file); got config={config!r} without one.")
        check_bundle_options(job_seconds, tasks_per_job, owner)
        self.resource_id = resource_id
        self.isolated = resource_id is None if isolated is None else isolated
        self.queue = queue
        self.poll_interval = poll_interval
        self.config = config
        self.job_seconds = DEFAULT_JOB_SECONDS if job_seconds is None and tasks_per_job is None else job_seconds
        self.tasks_per_job = tasks_per_job
        self.python = None if python is None else str(python)
        self.remote_workdir = None if remote_workdir is None else str(remote_workdir)
        self.check_first = check_first

    def run(self, workflow, task_ids, n_jobs=None, progress=True, stop=None, observer=None):
        """Submit ``task_ids`` as one soma-workflow workflow and wait for it.

        Examples
        --------
        >>> failed = SomaWorkflowBackend().run(wf, wf.pending_ids(), n_jobs=2)   # needs a soma-workflow resource  # doctest: +SKIP
        """
        from ..bundles import bundle_entries, make_bundles

        client, constants, _ = import_soma()
        if self.check_first:  # fail fast: nothing is submitted when every task would fail at fit
            check_first_fit(workflow.workdir, workflow.table, task_ids,
                            allow_version_mismatch=allow_version_mismatch(workflow), backend=self.name)
        state = store.make_private_dir(workflow.workdir / STATE_DIR)
        light = None
        if self.isolated is not False:
            light = state if self.isolated is True else store.make_private_dir(Path(self.isolated).absolute())
        bundles = make_bundles(workflow, task_ids, effective_n_jobs(-1 if n_jobs is None else n_jobs),
                               self.job_seconds, self.tasks_per_job)
        entries = bundle_entries(workflow, bundles, python=self.python, workdir=self.remote_workdir)
        bar = make_progress(len(task_ids), progress)
        try:
            with Interrupts(stop) as interrupts, engine_settings(), self._resource_environment(state):
                with quiet():
                    controller = self._controller(client, light, state, n_jobs)
                try:
                    env = _thread_limits(n_jobs, controller)
                    swf = build_soma_workflow(entries, f"mempamal {workflow.workdir.name}", env)
                    return self._submit_and_wait(controller, constants, swf, entries, workflow, bar, interrupts,
                                                 n_jobs, observer)
                finally:
                    with quiet():
                        shutdown(controller)
        finally:
            bar.close()

    @contextlib.contextmanager
    def _resource_environment(self, state):
        """With a resource: its config file for soma-workflow, a sacct wrapper for old Slurm."""
        if self.resource_id is None:
            yield
            return
        from .resource import slurm_environment

        values = {"PATH": slurm_environment(state)}
        if self.config is not None:
            values["SOMA_WORKFLOW_CONFIG"] = str(Path(self.config).absolute())
        with temporary_environment(**values):
            yield

    def _controller(self, client, light, state, n_jobs):
        if light is None and self.resource_id is not None:
            from .resource import load_resource

            config, _ = load_resource(self.resource_id, self.config, state)
            controller = client.WorkflowController(self.resource_id, config=config)
        elif light is None:
            controller = client.WorkflowController(self.resource_id)
        else:
            with temporary_directory(light):
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

    def _submit_and_wait(self, controller, constants, swf, entries, workflow, bar, interrupts, n_jobs=None,
                         observer=None):
        with quiet():
            workflow_id = controller.submit_workflow(swf, name=swf.name, queue=self.queue)
        finished = False
        try:
            job_ids = job_ids_of(controller, workflow_id, swf, entries)
            if self.resource_id is not None:
                # Jobs on a cluster outlive this process: say where to find them again.
                write_record(workflow.workdir, self._record(controller, workflow_id, entries, job_ids, n_jobs))
            failed = self._follow(controller, constants, workflow_id, entries, job_ids, workflow, bar, interrupts,
                                  observer)
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

    def _follow(self, controller, constants, workflow_id, entries, job_ids, workflow, bar, interrupts, observer=None):
        """Poll the engine until the workflow is done; the failures by task id."""
        bundle_of = {job_id: bundle_id for bundle_id, job_id in job_ids.items()}
        tasks_of = {entry["id"]: entry["tasks"] for entry in entries}
        wanted = {task_id for entry in entries for task_id in entry["tasks"]}
        observer = RunObserver() if observer is None else observer
        try:
            while True:
                jobs, _, status, *_ = controller.workflow_elements_status(workflow_id)
                observer.now_executing([tasks_of[bundle_of[job[0]]] for job in jobs
                                        if job[1] == constants.RUNNING and job[0] in bundle_of])
                show_progress(bar, constants, jobs, workflow.workdir, wanted)
                if status == constants.WORKFLOW_DONE:
                    break
                interrupts.check()
                time.sleep(self.poll_interval)
        finally:
            observer.now_executing([])
        jobs = {bundle_of[job[0]]: job for job in jobs}
        return failures(controller, constants, workflow, entries, job_ids, jobs, workflow.workdir / STATE_DIR)

    def _forget(self, controller, workflow_id, workflow, finished):
        """The run is over for this driver: kill what still runs unless it finished, drop it from the engine."""
        with quiet():
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

    def jobs_status(self, workdir, record):
        """The recorded workflow's jobs: ``{"pending": n, "running": n, "finished": n}``.

        From soma-workflow's database, and from ``squeue`` on a Slurm
        resource (:func:`mempamal.backends.somaworkflow.status.engine_view`).

        Examples
        --------
        >>> SomaWorkflowBackend().jobs_status(wf.workdir, read_record(wf.workdir))   # needs a soma-workflow resource  # doctest: +SKIP
        {'pending': 2, 'running': 2, 'finished': 1}
        """
        from .status import engine_view

        return engine_view(workdir, record)

    def attach(self, workflow, stop=None, progress=True, observer=None):
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
        >>> failed = SomaWorkflowBackend().attach(wf)      # needs a soma-workflow resource  # doctest: +SKIP
        """
        record = read_record(workflow.workdir)
        if record is None:
            raise store.WorkdirError(f"No soma-workflow submission recorded in {workflow.workdir} "
                                     f"(no {record_path(workflow.workdir)}).")
        if record.get("ended"):
            return unfinished(workflow, record)  # its driver saw it to the end: nothing runs any more
        if record.get("scheduler") != "slurm":
            from ...exceptions import SetupError

            raise SetupError(f"Cannot follow the soma-workflow jobs of {workflow.workdir} on a "
                               f"{record.get('scheduler')!r} resource after their driver died; run the "
                               "workdir again to resume (finished tasks are kept).")
        survivors = surviving_jobs(workflow.workdir, record)
        with Interrupts(stop) as interrupts:
            wait_for_slurm_jobs(workflow, survivors, interrupts, self.poll_interval, observer)
        done = store.finished_task_ids(workflow.workdir)
        rest = [task_id for entry in record["bundles"] for task_id in entry["tasks"] if task_id not in done]
        if not rest:
            mark_record_ended(workflow.workdir, record["workflow_id"])
            return {}
        follower = SomaWorkflowBackend(resource_id=record["resource_id"], config=record["config"],
                                       queue=record["queue"], poll_interval=self.poll_interval,
                                       python=record.get("python"), remote_workdir=record.get("remote_workdir"),
                                       job_seconds=self.job_seconds, tasks_per_job=self.tasks_per_job)
        return follower.run(workflow, rest, n_jobs=record["n_jobs"], progress=progress, stop=stop, observer=observer)


def _thread_limits(n_jobs, controller):
    """BLAS/OpenMP threads per job so that parallel jobs do not oversubscribe the cores.

    On this machine: its cores shared among ``n_jobs``.  On Slurm: the CPUs
    the job was given (soma-workflow writes ``export NAME=VALUE`` unquoted
    into the batch script, so the variable expands on the node).  Other
    schedulers: left to them (None).
    """
    from ..local import THREAD_VARIABLES

    if controller.config.get_scheduler_type() == "slurm":
        return {name: "${SLURM_CPUS_PER_TASK:-1}" for name in THREAD_VARIABLES}
    if controller.scheduler_config is not None:  # soma-workflow's local scheduler
        n_threads = max(1, (os.cpu_count() or 1) // effective_n_jobs(-1 if n_jobs is None else n_jobs))
        return {name: str(n_threads) for name in THREAD_VARIABLES}
    return None
