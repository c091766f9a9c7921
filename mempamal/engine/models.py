"""Fitted estimators kept in the workdir: ``models/final.pkl`` and ``models/o<k>.pkl``.

A model is written by the task that fitted it (``select-all`` for the final
model, ``select``/``score`` for the per-fold estimators with
``return_estimator=True``), user-only and atomically.  Two digests are kept:

- ``sha256``, of the pickle's bytes, in that task's output: the model is
  read back only through :func:`store.load_pickle`'s trust checks, and only
  if the bytes read are the ones recorded, so a model swapped or edited
  after the run is refused before anything is unpickled;
- ``digest``, of the fitted estimator's *value* (:func:`model_digest`), in
  the output and in ``results.json``.  Pickle bytes differ between
  identical models fitted in different processes (pickle shares one copy of
  a string that is the same object in memory, and which strings are the
  same object depends on the process), so ``results.json`` records this
  one: two correct runs of the same experiment write the same file, apart
  from the documented timing fields.
"""

import hashlib
from pathlib import Path

from .. import store


def model_path(workdir, name):
    """Where model ``name`` (``"final"``, ``"o<k>"``) lives.

    Examples
    --------
    >>> str(model_path("runs/iris", "final"))
    'runs/iris/models/final.pkl'
    """
    return Path(workdir) / store.MODELS_DIR / f"{name}.pkl"


def model_digest(estimator):
    """A digest of the fitted ``estimator``'s value: equal for identical models, whatever process fitted them.

    ``joblib.hash`` (sha1): it hashes arrays by dtype, shape and bytes, sorts
    dicts and sets and, unlike pickle, never depends on which equal strings
    are one object in memory.  None when joblib cannot hash it.

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> first = model_digest(DummyClassifier().fit([[0], [1]], [0, 1]))
    >>> first == model_digest(DummyClassifier().fit([[0], [1]], [0, 1])), len(first)
    (True, 45)
    """
    import joblib

    try:
        return "sha1:" + joblib.hash(estimator, hash_name="sha1")
    except Exception:  # an object joblib's pickler refuses: no reproducible digest
        return None


def save_model(workdir, name, estimator, task_id=None):
    """Pickle ``estimator`` (cloudpickle: notebook classes too) as model ``name``.

    Returns ``{"name", "task", "sha256", "digest"}``, what the output of the
    task ``task_id`` that fitted it records (:func:`public_record`: what
    ``results.json`` keeps of it).

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.dummy import DummyClassifier
    >>> workdir = tempfile.mkdtemp()
    >>> record = save_model(workdir, "final", DummyClassifier().fit([[0], [1]], [0, 1]))
    >>> record["name"], len(record["sha256"]), record["digest"].startswith("sha1:")
    ('final', 64, True)
    """
    import cloudpickle

    payload = cloudpickle.dumps(estimator)
    store.make_private_dir(Path(workdir) / store.MODELS_DIR)
    store.atomic_write_bytes(model_path(workdir, name), payload)
    return {"name": name, "task": task_id, "sha256": hashlib.sha256(payload).hexdigest(),
            "digest": model_digest(estimator)}


def public_record(record):
    """What ``results.json`` keeps of a model's record: no pickle digest (it differs between processes).

    Examples
    --------
    >>> public_record({"name": "o0", "task": "select-o0", "sha256": "ab", "digest": "sha1:cd"})
    {'name': 'o0', 'task': 'select-o0', 'digest': 'sha1:cd'}
    """
    if record is None:
        return None
    return {key: value for key, value in record.items() if key != "sha256"}


def load_model(workdir, record, expected=None):
    """The estimator of ``record`` (from :func:`save_model`), refused unless its bytes match.

    ``record`` carries the ``sha256`` of the pickle (the fitting task's
    output); ``expected``, a record of ``results.json``, whose ``digest`` the
    unpickled model must have too.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.dummy import DummyClassifier
    >>> workdir = tempfile.mkdtemp()
    >>> record = save_model(workdir, "o0", DummyClassifier().fit([[0], [1]], [0, 1]))
    >>> load_model(workdir, record).predict([[5]]).tolist()
    [0]
    """
    import pickle

    path = model_path(workdir, record["name"])

    def load(handle):
        # One read: the digest is checked on the very bytes that are unpickled.
        payload = handle.read()
        if hashlib.sha256(payload).hexdigest() != record["sha256"]:
            raise store.WorkdirError(
                f"Refusing to unpickle {path}: it is not the model the run wrote (its sha256 differs "
                "from the one recorded in results.json); it was edited or replaced. Run the task "
                "that fitted it again (delete its output and `mempamal run` the workdir).")
        return pickle.loads(payload)

    model = store.load_pickle(workdir, path, load)
    wanted = None if expected is None else expected.get("digest")
    if wanted is not None and model_digest(model) != wanted:
        raise store.WorkdirError(
            f"{path} is not the model results.json describes (its digest differs from the one recorded "
            "there). Run the task that fitted it again (delete its output and `mempamal run` the workdir).")
    return model
