"""Fitted estimators kept in the workdir: ``models/final.pkl`` and ``models/o<k>.pkl``.

A model is written by the task that fitted it (``select-all`` for the final
model, ``select``/``score`` for the per-fold estimators with
``return_estimator=True``), user-only and atomically, and its sha256 is
recorded in that task's output (and so in ``results.json``, which the
``final`` output vouches for).  It is read back only through
:func:`store.load_pickle`'s trust checks, and only if the bytes read are the
ones recorded: a model swapped or edited after the run is refused before
anything is unpickled.
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


def save_model(workdir, name, estimator):
    """Pickle ``estimator`` (cloudpickle: notebook classes too) as model ``name``.

    Returns ``{"name", "sha256"}``, what the task's output records.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.dummy import DummyClassifier
    >>> workdir = tempfile.mkdtemp()
    >>> record = save_model(workdir, "final", DummyClassifier().fit([[0], [1]], [0, 1]))
    >>> record["name"], len(record["sha256"])
    ('final', 64)
    """
    import cloudpickle

    payload = cloudpickle.dumps(estimator)
    store.make_private_dir(Path(workdir) / store.MODELS_DIR)
    store.atomic_write_bytes(model_path(workdir, name), payload)
    return {"name": name, "sha256": hashlib.sha256(payload).hexdigest()}


def load_model(workdir, record):
    """The estimator of ``record`` (from :func:`save_model`), refused unless its bytes match.

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

    return store.load_pickle(workdir, path, load)
