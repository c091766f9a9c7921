"""Is this workdir what its build wrote?  Digests, stamps and their checks.

Three guards, all cheap enough to run before every task:

- ``manifest.json`` keeps the digest of ``tasks.json`` (computed in
  :mod:`mempamal.store.tasktable`) and the size and
  sha256 of ``experiment.pkl``, ``data/*`` and ``splits/*``: an edited,
  truncated or swapped file is refused, naming it, before anything is
  unpickled from it.
- Every output starts with a stamp: its task id, the build id, a digest of
  the task's definition and the version of its record
  (:mod:`mempamal.store.records`), and ends with the sha256 of everything before it
  (:func:`output_bytes`).  An output that is corrupt, edited, another task's,
  another build's, for an older definition of the task or of another record
  version is never counted as done.
- :func:`mempamal.store.doneindex.scan` applies that judgement to the whole
  ``outputs/`` folder (what ``status`` and ``run`` count), caching it.
"""

import hashlib
import json
import os
from pathlib import Path

from ..exceptions import WorkdirError
from .records import DIGEST_FIELD, RECORD_VERSION, VERSION_FIELD
from .workdir import DATA_DIR, EXPERIMENT, MANIFEST, SPLITS_DIR


def output_stamp(task_id, build_id, definition):
    """The fields every output starts with: which task, which build, which definition, which record version.

    Examples
    --------
    >>> output_stamp("final", "b1", "d1")
    {'task': 'final', 'build': 'b1', 'definition': 'd1', 'record_version': 1}
    """
    return {"task": task_id, "build": build_id, "definition": definition, VERSION_FIELD: RECORD_VERSION}


_DIGEST_TAIL = f', "{DIGEST_FIELD}": "'.encode()
_TAIL_LENGTH = len(_DIGEST_TAIL) + 64 + 2  # the field, 64 hex digits, '"}'


def output_bytes(output):
    """The bytes of a task output: its JSON, with the sha256 of that JSON as a last field.

    The digest covers the JSON text as written (``json.dumps``, NaN allowed),
    so checking it costs one sha256 of the file's bytes, no second
    serialization; the file stays one plain JSON object.  An edit of any
    byte, even one that keeps the JSON valid (a score changed by hand, a bit
    flip in a digit), no longer matches (:func:`output_digest_problem`).

    Examples
    --------
    >>> payload = output_bytes(output_stamp("final", "b1", "d1"))
    >>> sorted(json.loads(payload)), output_digest_problem(payload) is None
    (['build', 'definition', 'output_sha256', 'record_version', 'task'], True)
    >>> output_digest_problem(payload.replace(b"b1", b"b2"))
    'its content does not match the digest it carries (edited or damaged after its task wrote it)'
    """
    body = json.dumps(output, allow_nan=True).encode("utf-8")
    if not output:
        raise ValueError("an output holds at least its stamp")
    return body[:-1] + _DIGEST_TAIL + hashlib.sha256(body).hexdigest().encode() + b'"}'


def output_digest_problem(payload):
    """Why the bytes ``payload`` of an output do not match their digest, or None when they do.

    Examples
    --------
    >>> output_digest_problem(b'{"task": "final"}')
    'it carries no digest of its content (written by hand or by an older mempamal)'
    """
    tail = payload[-_TAIL_LENGTH:]
    if len(payload) <= _TAIL_LENGTH or not tail.startswith(_DIGEST_TAIL) or not tail.endswith(b'"}'):
        return "it carries no digest of its content (written by hand or by an older mempamal)"
    body = payload[:-_TAIL_LENGTH] + b"}"
    if hashlib.sha256(body).hexdigest().encode() != tail[len(_DIGEST_TAIL):-2]:
        return "its content does not match the digest it carries (edited or damaged after its task wrote it)"
    return None


def load_output(path):
    """``(output, None)`` when ``path`` is a complete output whose content matches its digest,
    ``(None, why not)`` otherwise; one read, one parse.  Says nothing of whose output it is
    (:func:`output_problem` checks the stamp too).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "final.json"
    >>> _ = path.write_bytes(output_bytes({"task": "final", "score": 0.5}))
    >>> load_output(path)[0]["score"]
    0.5
    >>> _ = path.write_bytes(path.read_bytes().replace(b"0.5", b"0.6"))
    >>> "does not match the digest" in load_output(path)[1]
    True
    """
    try:
        with open(path, "rb") as handle:
            payload = handle.read()
        output = json.loads(payload)
    except FileNotFoundError:
        return None, f"{path} is missing"
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"Corrupt file {path} (not complete JSON: {exc})"
    if not isinstance(output, dict):
        return None, f"Corrupt file {path} (not a JSON object)"
    problem = output_digest_problem(payload)
    if problem is not None:
        return None, f"Corrupt file {path} ({problem})"
    return output, None


def output_problem(path, task_id, build_id, definition):
    """Why the output file ``path`` cannot be trusted, or None when it can.

    Cheap enough to run on every output: the files are small JSON records.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "final.json"
    >>> _ = path.write_bytes(output_bytes(output_stamp("final", "b1", "d1")))
    >>> output_problem(path, "final", "b1", "d1") is None
    True
    >>> "another build" in output_problem(path, "final", "b2", "d1")
    True
    """
    return _checked_output(path, task_id, build_id, definition)[1]


def _checked_output(path, task_id, build_id, definition):
    """``(output, None)`` for a trusted output, ``(None, why not)`` otherwise: one read, one parse.

    Outputs are not fsynced (``store.atomic_write(durable=False)``): after an
    OS crash one may be empty, torn or NUL-filled, and this is what refuses it;
    an output edited in place (valid JSON or not) fails its digest.
    """
    output, problem = load_output(path)
    if problem is not None:
        return None, problem
    if output.get("task") != task_id:
        return None, f"{path} is the output of task {output.get('task')!r}, not of {task_id!r} (copied or renamed)"
    if output.get("build") != build_id:
        return None, (f"{path} was written by another build ({output.get('build')!r}; this workdir is build "
                      f"{build_id!r}): the workdir was rebuilt after that task started")
    if output.get("definition") != definition:
        return None, (f"{path} was written for another definition of task {task_id!r} "
                      "(the task table changed since)")
    if output.get(VERSION_FIELD) != RECORD_VERSION:
        # records.RECORD_VERSION: another layout of the record is not read, its task runs again.
        return None, (f"{path} holds a task record of version {output.get(VERSION_FIELD)!r}, this mempamal "
                      f"reads version {RECORD_VERSION} (written by another mempamal)")
    return output, None


#: In the error of a task whose dependency's output was refused and removed
#: (:func:`read_output`): ``Workflow.run`` runs that dependency, then the task, again.
REMOVED_TO_RUN_AGAIN = "removed it: run that task again"


def read_output(path, task_id, build_id, definition, remove_untrusted=False):
    """Load a task output after checking its digest and stamp; :class:`WorkdirError` names the file.

    The output returned is the one checked (read and parsed once: no second
    read that could see another file).  With ``remove_untrusted`` (a
    dependent reading its input) a refused output is deleted and the error
    says so (:data:`REMOVED_TO_RUN_AGAIN`): status then shows its task as
    pending and the next run runs it, where a file left in place would make
    every run fail on it until removed by hand.

    Examples
    --------
    >>> import json
    >>> path = tmp / "final.json"
    >>> _ = path.write_bytes(output_bytes({**output_stamp("final", "b1", "d1"), "score": 0.9}))
    >>> read_output(path, "final", "b1", "d1")["score"]
    0.9
    >>> read_output(path, "final", "b2", "d1")
    Traceback (most recent call last):
    ...
    mempamal.exceptions.WorkdirError: ...final.json was written by another build ('b1'; this workdir is build 'b2')...
    """
    output, problem = _checked_output(path, task_id, build_id, definition)
    if problem is None:
        return output
    if remove_untrusted and not problem.endswith(" is missing"):
        try:
            os.unlink(path)
        except OSError:
            pass
        else:
            raise WorkdirError(f"{problem}; {REMOVED_TO_RUN_AGAIN} (mempamal run does it at once).")
    raise WorkdirError(f"{problem}; run that task again (mempamal run resumes it).")


def file_digest(path):
    """Size and sha256 of a file (whole file up to 64 MB, else its first and
    last 8 MB: cheap for large data, still catches a swap or a truncation).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> _ = path.write_bytes(b"abc")
    >>> file_digest(path)["size"]
    3
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if size <= 64 * 2**20:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
        else:
            digest.update(handle.read(8 * 2**20))
            handle.seek(size - 8 * 2**20)
            digest.update(handle.read())
    return {"size": size, "sha256": digest.hexdigest()[:32]}


def build_file_digests(workdir):
    """``{relative path: digest}`` of the experiment, data and split files.

    Examples
    --------
    >>> sorted(build_file_digests("runs/iris"))
    ['data/X.npy', 'data/y.npy', 'experiment.pkl', 'splits/main.npz']
    """
    workdir = Path(workdir)
    names = [EXPERIMENT] + [
        f"{folder}/{name}" for folder in (DATA_DIR, SPLITS_DIR)
        for name in sorted(os.listdir(workdir / folder)) if not name.startswith(".")
    ]
    return {name: file_digest(workdir / name) for name in names}


def verify_build_files(workdir, manifest):
    """Refuse a workdir whose experiment, data or split files changed since the build.

    Truncated, overwritten or swapped files are named; nothing is unpickled
    or memory-mapped from them.

    Examples
    --------
    >>> from mempamal.store.files import read_json
    >>> verify_build_files("runs/iris", read_json("runs/iris/manifest.json"))
    """
    for name, expected in manifest.get("files", {}).items():
        verify_build_file(workdir, name, expected)


def verify_build_file(workdir, name, expected):
    """Refuse the build file ``name`` (relative to ``workdir``) unless its digest is ``expected``.

    Returns the ``os.stat`` taken *before* the digest was computed: a
    caller that caches the verdict by it (a worker, between tasks) sees any
    change made during or after the check.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()); _ = (folder / "x").write_bytes(b"abc")
    >>> verify_build_file(folder, "x", file_digest(folder / "x")).st_size
    3
    """
    workdir = Path(workdir)
    path = workdir / name
    try:
        info = os.stat(path)
        actual = file_digest(path)
    except FileNotFoundError:
        raise WorkdirError(f"Missing file {path}; build the workdir again.") from None
    if actual != expected:
        how = (f"{actual['size']} bytes instead of {expected['size']}" if actual["size"] != expected["size"]
               else "same size, other content")
        raise WorkdirError(
            f"{path} is not the file this build wrote ({how}, according to {workdir / MANIFEST}): "
            "it was truncated, overwritten or swapped. Build the workdir again."
        )
    return info
