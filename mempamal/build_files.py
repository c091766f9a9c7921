"""Writing a build into its workdir: refuse what may not be replaced, write every file, the manifest last.

What ``Experiment.build`` decides (the identity, the splits, the task table)
is written here; a build that fails half-way removes what it wrote.

Examples
--------
>>> reusable(tmp / "new-folder", "some-identity", overwrite=False)
False
"""

import shutil
import sys
import time
import uuid
import warnings

from . import store
from .description import write_description
from .engine.environment import build_environment
from .engine.splits import save_split_set
from .store import integrity
from .store.lock import LOCK_NAME
from .store.taskfile import changed_task_ids, read_table, table_digest
from .store.tasktable import TaskTable


def reusable(workdir, identity, overwrite, reuse=False):
    """True to reuse an existing build; refuses a workdir it may not replace.

    Nothing is changed on disk: an old build is cleared only by
    :func:`write_new_workdir`, once every argument has been checked.
    ``reuse=True`` accepts a different experiment (False: it is built
    anew, keeping what :mod:`mempamal.reuse` proves unchanged).
    """
    if not workdir.exists() or not any(workdir.iterdir()):
        return False
    if not store.is_workdir(workdir):
        raise FileExistsError(
            f"The 'workdir' parameter of build must be a new or empty folder, or a mempamal "
            f"workdir; {workdir} holds other files. Choose another workdir."
        )
    manifest_path = workdir / store.MANIFEST
    if manifest_path.exists() and not overwrite:
        try:
            manifest = store.read_json(manifest_path)
        except store.WorkdirError as exc:
            raise store.WorkdirError(f"{exc}. Pass overwrite=True to build it again.") from None
        if manifest.get("fingerprint") == identity:
            problem = _build_problem(workdir, manifest)
            if problem is None:
                return True
            warnings.warn(f"{problem} Building {workdir} again from scratch.", stacklevel=3)
        elif not reuse:
            raise FileExistsError(
                f"{workdir} already holds a different experiment or data (built "
                f"{manifest.get('created', '?')}). Pass overwrite=True to replace it, reuse=True "
                f"to grow it (keeping the finished tasks whose definition is unchanged), or choose another workdir."
            )
    return False


def write_new_workdir(experiment, workdir, identity, X, y, groups, split_sets, table, metadata=None,
                      data_digest=None, metadata_digest=None, harvested=None):
    """Write a new build into ``workdir`` (cleared first, the lock kept); on any failure remove what was written.

    ``harvested`` (:func:`mempamal.reuse.harvest`, read before the old build
    is cleared): what this build keeps of the old one (``reuse=True``).
    """
    created = not workdir.exists()
    if not created:
        # Replaced with overwrite=True, or an incomplete build (marker
        # without manifest), which is never trusted; the lock stays.
        _clear_workdir(workdir)
    try:
        _write_files(experiment, workdir, identity, X, y, groups, split_sets, table, metadata=metadata,
                     digests=(data_digest, metadata_digest), harvested=harvested)
    except BaseException:
        # A full disk, a kill signal turned into an exception, Ctrl-C:
        # leave nothing half-written behind (no manifest means never
        # trusted anyway, but a half workdir still fills the disk).
        _discard_incomplete_build(workdir, created)
        raise

def _write_files(experiment, workdir, identity, X, y, groups, split_sets, table, metadata=None, digests=(None, None),
                 harvested=None):
    import cloudpickle

    store.make_private_dir(workdir)
    store.atomic_write_bytes(workdir / store.MARKER, b"mempamal workdir\n")
    store.atomic_write_bytes(workdir / store.EXPERIMENT, cloudpickle.dumps(experiment))
    data_dir = store.make_private_dir(workdir / store.DATA_DIR)
    kinds = {name: store.save_array_like(data_dir, name, value)
             for name, value in (("X", X), ("y", y), ("groups", groups))}
    metadata = metadata or {"params": {}, "routing": False}
    # Files param-<k> (names like "logisticregression__sample_weight" stay out of file names).
    stored_params = [[name, f"param-{index}", store.save_array_like(data_dir, f"param-{index}", value)]
                     for index, (name, value) in enumerate(metadata["params"].items())]
    store.make_private_dir(workdir / store.SPLITS_DIR)
    for name, (split_set, order) in split_sets.items():
        save_split_set(workdir, name, split_set, order)
    for folder in (store.OUTPUTS_DIR, store.LOGS_DIR):
        store.make_private_dir(workdir / folder)
    store.write_json(workdir / store.TASKS, table)
    # The versions every task checks (manifest) and people read (experiment.json): computed once.
    environment = build_environment(experiment.estimator, experiment.param_grid, experiment.param_distributions)
    write_description(workdir, experiment, (X, y, groups), table, metadata, environment)  # for people
    build_id, files, kept = uuid.uuid4().hex, integrity.build_file_digests(workdir), None
    if harvested is not None:
        # Outputs kept from the old build, stamped for this one, before the manifest: a build
        # failing here leaves no manifest, so nothing of it is trusted.
        from .reuse import graft

        kept = graft(experiment, workdir, table, build_id, harvested, *digests)
        if kept["file"]:
            files[kept["file"]] = integrity.file_digest(workdir / kept["file"])
    store.write_json(workdir / store.MANIFEST, {
        "fingerprint": identity, "build_id": build_id,
        "tasks_digest": table_digest(table), "files": files,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": sys.executable, "mempamal_version": _version(), "data": kinds,
        "metrics": experiment.metrics, "n_tasks": len(TaskTable(table)),
        "metadata": {"routing": metadata["routing"], "params": stored_params},
        # What another build compares before sharing this one's splits (splits_from=), and what
        # a later build with reuse=True compares before keeping results of this one.
        "data_digest": digests[0], "metadata_digest": digests[1],
        # What was kept of the previous build (reuse=True): Workflow.status()["kept"].
        "reuse": kept,
        # Python and library versions of the build (engine/environment.py): a task run under others refuses.
        "environment": environment,
    })


def split_set_info(split_set):
    """The task table's summary of one split set: fold counts (and the final search's)."""
    info = {"n_outer": len(split_set["outer"]), "n_inner": [len(f) for f in split_set["inner"]]}
    if "all" in split_set:
        info["n_inner_all"] = len(split_set["all"])
    return info


def update_task_table(workdir, table):
    """Rebuild of the same experiment: keep outputs of tasks that did not change."""
    old = read_table(workdir)
    if old == table:
        return
    for task_id in changed_task_ids(old, table):
        path = store.output_path(workdir, task_id)
        if path.exists():
            path.unlink()
    store.write_json(workdir / store.TASKS, table)
    manifest = store.read_json(workdir / store.MANIFEST)
    manifest["tasks_digest"] = table_digest(table)
    manifest["n_tasks"] = len(TaskTable(table))
    store.write_json(workdir / store.MANIFEST, manifest)


def _build_problem(workdir, manifest):
    """Why the files of an existing build cannot be reused (None if they can)."""
    try:
        integrity.verify_build_files(workdir, manifest)
        read_table(workdir, manifest)
    except store.WorkdirError as exc:
        return str(exc)
    return None


def _clear_workdir(workdir):
    """Empty ``workdir`` for a new build, keeping the lock this build holds.

    The manifest goes first: if this is interrupted, what is left is an
    incomplete build, which is never trusted.
    """
    (workdir / store.MANIFEST).unlink(missing_ok=True)
    for entry in workdir.iterdir():
        if entry.name.startswith((LOCK_NAME, f".{LOCK_NAME}")):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _discard_incomplete_build(workdir, created):
    if created:
        shutil.rmtree(workdir, ignore_errors=True)
    elif workdir.exists():
        # The folder was there before the build: keep it (and the lock), empty it.
        _clear_workdir(workdir)


def _version():
    from ._version import __version__

    return __version__


def outer_splits_of(workdir, data_digest):
    """The outer ``(train, test)`` splits of the build in ``workdir``, for ``build(..., splits_from=workdir)``.

    Refused (naming ``splits_from``) when ``workdir`` is no mempamal workdir
    or its data are not the data being built (``data_digest``).

    Examples
    --------
    >>> splits = outer_splits_of(wf.workdir, wf.manifest["data_digest"])
    >>> len(splits), sorted(map(len, splits[0]))
    (3, [50, 100])
    """
    from pathlib import Path

    from .engine.splits import given_indices
    from .exceptions import InvalidParameterError

    if not store.is_workdir(workdir) or not (Path(workdir) / store.MANIFEST).exists():
        raise InvalidParameterError(f"The 'splits_from' parameter of build must be a finished mempamal build's "
                                    f"workdir; got {str(workdir)!r} instead.")
    manifest = store.read_json(Path(workdir) / store.MANIFEST)
    if manifest.get("data_digest") != data_digest:
        raise InvalidParameterError(
            f"The 'splits_from' parameter of build names {workdir}, which was built on other data (X, y, "
            f"groups) than this build: its splits would select other rows. Build on the same data.")
    indices = given_indices(workdir)
    return [(train, test) for train, test in zip(indices["train"], indices["test"])]
