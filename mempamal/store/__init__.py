"""The store layer: workdir files, written atomically and user-only, read back verified.

============================  ==================================================
module                        job
============================  ==================================================
:mod:`~.workdir`              the layout (file and folder names, output shards)
:mod:`~.files`                atomic user-only writes, JSON reads, private folders
:mod:`~.safety`               refuse files others could have written; checked unpickling
:mod:`~.arrays`               the data: memory-mapped arrays, sparse, pandas, lists
:mod:`~.tasktable`            the compact task table (the graph as generators)
:mod:`~.taskfile`             ``tasks.json``: reading it, its digest, what changed
:mod:`~.integrity`            manifest digests, output validation
:mod:`~.records`              the typed, versioned record of each kind of task output
:mod:`~.doneindex`            the cached scan of finished outputs
:mod:`~.lock`                 the workdir lock (one live runner)
:mod:`~.fingerprint`          what makes two experiments the same
============================  ==================================================

The task table sits here, not with the graph's state above, because a task
(the engine, below the backends) reads its own definition from it.

This package re-exports the names a workdir reader uses most, so that
``from mempamal import store; store.read_json(...)`` reads naturally.

Examples
--------
>>> from mempamal import store
>>> store.output_path("runs/iris", "final").name
'final.json'
"""

from ..exceptions import DiskFullError, WorkdirError  # noqa: F401
from .arrays import load_array_like, save_array_like, save_npy  # noqa: F401
from .files import (  # noqa: F401
    DISK_FULL_ERRNOS, DISK_FULL_NOT_RUN, atomic_write, atomic_write_bytes, make_private_dir, read_json, write_json,
)
from .safety import check_workdir_is_safe, load_pickle  # noqa: F401
from .workdir import (  # noqa: F401
    DATA_DIR, DESCRIPTION, EXPERIMENT, LOGS_DIR, MANIFEST, MARKER, MODELS_DIR, OUTPUTS_DIR, RESULTS, SHARD_CHUNKS, SPLITS_DIR,
    TASKS, finished_task_ids, is_workdir, log_path, output_path, output_shard,
)
