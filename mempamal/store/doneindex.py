"""Which outputs are trusted: a scan of ``outputs/`` and the done-index that caches it.

An output is trusted when :func:`mempamal.store.integrity.output_problem` says so
(complete JSON stamped with its task id, this build, the task's
definition and record version).  Outputs are written atomically but not synced, so after a crash
of the machine one may be empty or torn: only reading it tells.  Reading a
million outputs at every ``status`` is too slow, so the result of each scan
is kept in ``outputs/.done-index.json``: per shard of ``outputs/``
(:func:`mempamal.store.output_shard`), the folder's ``mtime_ns``, a
signature of its files' names, sizes and ``mtime_ns``, the time the scan
started, the done ids, their counts per kind and the untrusted outputs with
the reason.

The index is a cache that can never lie:

- it is stamped with the kernel's boot id, the build id, the task
  table's digest and the task records' version; after a reboot (outputs not synced before a crash may be
  torn), a rebuild or a re-chunking it is ignored, and without a boot id
  (not Linux) it is never trusted;
- every change of a shard's entries (an output written, which is a rename;
  deleted; replaced by another file by rename) changes the folder's mtime,
  and a shard is taken from the index only if its mtime is the one recorded
  *and* was older than the recording scan's start by :data:`MARGIN_NS`: a
  file timestamp is coarse, so an output created in the same tick as the
  scan's listing may leave the mtime unchanged (git's "racy clean"
  problem); such a shard is scanned again next time;
- an output edited *in place* (``truncate``, an editor writing into the
  file, ``cp`` over it) leaves its folder's mtime alone but not its own
  size and mtime: a shard is taken from the index only while the name,
  size and ``mtime_ns`` of every file are the recorded ones, each older
  than the recording scan by the same margin (one ``stat`` per file, no
  read);
- it is written atomically (:func:`mempamal.store.atomic_write_bytes`) and
  never held open, so two processes scanning at once each leave a complete
  index, true when it was written; a scan that cannot write it (read-only
  workdir) still answers from the files;
- it is read only if it is a regular file of the user, not writable by
  group or others (whoever could write it could make tasks look done).

What it does not see: an in-place edit that puts back the file's size and
its old ``mtime_ns`` (``touch -d``); such an output fails the digest of its
content (:func:`mempamal.store.integrity.output_bytes`) where it is read:
``run_task`` before it skips the task, every task reading it as a
dependency (which removes it so that ``run`` runs its task again), so
results never use it.
"""

import hashlib
import json
import os
import stat
import time
from pathlib import Path

from . import integrity, lock
from .records import RECORD_VERSION
from .. import store

INDEX = ".done-index.json"
"""File name of the done-index, in ``outputs/`` (a dot file: never taken for an output)."""

VERSION = 3  # 3: per shard, the versions the outputs ran with

MARGIN_NS = 2_000_000_000
"""A shard folder changed less than this before a scan started is scanned again next time.

Two seconds: more than the timestamp granularity of Linux filesystems and of
NFS/FAT-like ones (up to 2 s), and than the usual clock difference of the
nodes of a cluster sharing the workdir.
"""


class OutputScan:
    """What a scan of ``outputs/`` found: per shard, done ids, counts per kind, untrusted outputs.

    Examples
    --------
    >>> scan = OutputScan({"other": {"done": "score-o0\\nfinal", "kinds": {"score": 1, "final": 1},
    ...                              "problems": {}}})
    >>> scan.n_done, sorted(scan.done), scan.counts_by_kind()
    (2, ['final', 'score-o0'], {'score': 1, 'final': 1})
    """

    def __init__(self, shards):
        self.shards = shards
        self._done = None
        self._shard_done = {}

    def __contains__(self, task_id):
        """Whether ``task_id`` has a trusted output, reading only its shard's ids.

        The scan records an id only in the shard where
        :func:`mempamal.store.output_shard` puts it, so one shard's ids
        answer: a question about a few tasks of a million-task graph does
        not build the set of every done id (:attr:`done`).

        Examples
        --------
        >>> scan = OutputScan({"other": {"done": "score-o0\\nfinal", "kinds": {"score": 1, "final": 1},
        ...                              "problems": {}}})
        >>> "final" in scan, "score-o1" in scan, "fit-o0-i0-c0" in scan
        (True, False, False)
        """
        if self._done is not None:
            return task_id in self._done
        shard = store.output_shard(task_id)
        ids = self._shard_done.get(shard)
        if ids is None:
            entry = self.shards.get(shard)
            ids = set(entry["done"].split("\n")) if entry is not None and entry["done"] else set()
            self._shard_done[shard] = ids
        return task_id in ids

    def fits_by_block(self, table):
        """Done fit tasks per block of ``table`` (:meth:`mempamal.store.tasktable.TaskTable.count_fits_by_block`).

        Counted on the shards' id strings as the index keeps them, without
        one Python object per done id.

        Examples
        --------
        >>> from mempamal.store.tasktable import TaskTable, make_table
        >>> table = TaskTable(make_table({"main": {"n_outer": 2, "n_inner": [1, 1]}}, [[0]], nested=True))
        >>> OutputScan({"fit-o1-i0-c0k": {"done": "fit-o1-i0-c0", "kinds": {"fit": 1}, "problems": {}}}
        ...            ).fits_by_block(table)
        [0, 1]
        """
        return table.count_fits_by_block(entry["done"] for entry in self.shards.values())

    @property
    def done(self):
        """Set of the ids whose output is trusted.

        Examples
        --------
        >>> OutputScan({}).done
        set()
        """
        if self._done is None:
            self._done = set()
            for entry in self.shards.values():
                if entry["done"]:
                    self._done.update(entry["done"].split("\n"))
        return self._done

    @property
    def n_done(self):
        """Number of trusted outputs (without building the set of ids).

        Examples
        --------
        >>> OutputScan({}).n_done
        0
        """
        return sum(sum(entry["kinds"].values()) for entry in self.shards.values())

    @property
    def problems(self):
        """``{task id: why its output is not trusted}``.

        Examples
        --------
        >>> OutputScan({"other": {"done": "", "kinds": {}, "problems": {"final": "corrupt"}}}).problems
        {'final': 'corrupt'}
        """
        problems = {}
        for entry in self.shards.values():
            problems.update(entry["problems"])
        return problems

    def versions_seen(self):
        """``{JSON of the versions an output ran with: number of trusted outputs}``.

        Examples
        --------
        >>> OutputScan({"other": {"done": "final", "kinds": {"final": 1}, "problems": {},
        ...                       "versions": {'{"numpy": "2.0"}': 1}}}).versions_seen()
        {'{"numpy": "2.0"}': 1}
        """
        seen = {}
        for entry in self.shards.values():
            for key, count in entry.get("versions", {}).items():
                seen[key] = seen.get(key, 0) + count
        return seen

    def counts_by_kind(self):
        """``{kind: number of trusted outputs}``.

        Examples
        --------
        >>> OutputScan({}).counts_by_kind()
        {}
        """
        counts = {}
        for entry in self.shards.values():
            for kind, count in entry["kinds"].items():
                counts[kind] = counts.get(kind, 0) + count
        return counts


def index_path(workdir):
    """Path of the done-index of ``workdir``.

    Examples
    --------
    >>> index_path("runs/iris").as_posix()
    'runs/iris/outputs/.done-index.json'
    """
    return Path(workdir) / store.OUTPUTS_DIR / INDEX


def _read_index(path, stamp):
    """The shards of the index at ``path`` if it carries ``stamp`` and is safe to believe, else {}."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return {}
    try:
        info = os.fstat(fd)
        if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid()
                or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
            return {}
        with os.fdopen(fd, "rb") as handle:
            fd = None
            index = json.loads(handle.read())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    finally:
        if fd is not None:
            os.close(fd)
    if not isinstance(index, dict) or index.get("stamp") != stamp or not isinstance(index.get("shards"), dict):
        return {}
    return index["shards"]


def _listing(path):
    try:
        return list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _file_stats(entries):
    """``(signature, newest mtime_ns)`` of the ``*.json`` files of a shard listing.

    The signature is a sha256 of every file's name, ``mtime_ns`` and size:
    an output edited, truncated or rewritten *in place* changes its own
    mtime and size but not its folder's, so the index keeps this and trusts
    a shard only while it is unchanged (one ``stat`` per file, no read).
    """
    files = []
    for entry in entries:
        name = entry.name
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        files.append((name, info.st_mtime_ns, info.st_size))
    files.sort()  # whatever order the folder lists them in
    newest = max((mtime for _, mtime, _ in files), default=0)
    return hashlib.sha256(repr(files).encode()).hexdigest(), newest


def _scan_shard(path, shard, mtime_ns, started_ns, build_id, table):
    """Validate every output of one shard folder; its index entry."""
    done, kinds, problems, versions = [], {}, {}, {}
    entries = _listing(path)
    # Stats before reads: a file changed while it is read no longer matches what is recorded.
    files, _ = _file_stats(entries)
    for entry in entries:
        name = entry.name
        if not name.endswith(".json") or name.startswith("."):
            continue
        task_id = name[:-5]
        position = table.position(task_id)
        if position is None or store.output_shard(task_id) != shard:
            continue  # no task's output, or not where output_path looks for it
        task = table[position]
        output, problem = integrity._checked_output(entry.path, task_id, build_id, task.definition)
        if problem is None:
            done.append(task_id)
            kinds[task.kind] = kinds.get(task.kind, 0) + 1
            if "versions" in output:  # the same few strings: one key per distinct set of versions
                key = json.dumps(output["versions"], sort_keys=True)
                versions[key] = versions.get(key, 0) + 1
        elif not problem.endswith(" is missing"):  # deleted since the listing
            problems[task_id] = problem
    return {"mtime_ns": mtime_ns, "scanned_ns": started_ns, "files": files, "done": "\n".join(done),
            "kinds": kinds, "problems": problems, "versions": versions}


def _still_true(known, path, mtime_ns, margin_ns):
    """Whether the index entry ``known`` of the shard folder ``path`` can be taken as it is.

    Its folder's mtime and every file's name, size and mtime are the ones
    recorded, and all of them were older than the recording scan's start
    by ``margin_ns`` (a write in the same timestamp tick as the recorded
    one could leave a coarse mtime unchanged).
    """
    if known is None or known.get("mtime_ns") != mtime_ns or known.get("scanned_ns", 0) - mtime_ns <= margin_ns:
        return False
    files, newest = _file_stats(_listing(path))
    return files == known.get("files") and known["scanned_ns"] - newest > margin_ns


def scan(workdir, build_id, tasks_digest, table, margin_ns=None):
    """Scan ``outputs/``, validating only the shards changed since the done-index; an :class:`OutputScan`.

    ``table`` is the workdir's :class:`~mempamal.store.tasktable.TaskTable` (which
    files are outputs, and of which definition).  The index is rewritten
    when something changed, if it can be.  ``margin_ns`` (default
    :data:`MARGIN_NS`): how much older than the recording scan a shard
    folder's mtime must be for its entry to be trusted.

    Examples
    --------
    >>> import tempfile
    >>> from mempamal.store.tasktable import TaskTable, make_table
    >>> table = TaskTable(make_table({"main": {"n_outer": 1, "n_inner": [0]}}, [], nested=False))
    >>> scan(tempfile.mkdtemp(), "b1", "d1", table).n_done
    0
    """
    margin_ns = MARGIN_NS if margin_ns is None else margin_ns
    folder = Path(workdir) / store.OUTPUTS_DIR
    # The record version too: an index written by a mempamal that reads another one judged other outputs.
    stamp = {"version": VERSION, "boot_id": lock.boot_id(), "build": build_id, "tasks": tasks_digest,
             "records": RECORD_VERSION}
    started_ns = time.time_ns()
    # Without a boot id a crash of the machine cannot be told: no index.
    cached = _read_index(folder / INDEX, stamp) if stamp["boot_id"] else {}
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return OutputScan({})
    shards, changed = {}, False
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            # Before the listing: a change during it makes the recorded mtime older than the folder's.
            mtime_ns = entry.stat(follow_symlinks=False).st_mtime_ns
        except FileNotFoundError:
            continue
        known = cached.get(entry.name)
        if _still_true(known, entry.path, mtime_ns, margin_ns):
            shards[entry.name] = known
        else:
            shards[entry.name] = _scan_shard(entry.path, entry.name, mtime_ns, started_ns, build_id, table)
            changed = True
    if (changed or set(shards) != set(cached)) and stamp["boot_id"]:
        _write_index(folder / INDEX, {"stamp": stamp, "shards": shards})
    return OutputScan(shards)


def _write_index(path, index):
    try:
        store.atomic_write_bytes(path, json.dumps(index, separators=(",", ":")).encode())
    except (OSError, store.WorkdirError):
        pass  # read-only workdir, full disk: the next scan validates again
