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

    The sha256 of a canonical walk of the object (``_feed``): arrays by
    dtype, shape and C-ordered bytes (not their strides or whether they
    share memory), dicts and sets in a sorted order, objects by their class
    and the state pickle would save (``__reduce_ex__``), functions and
    classes by name (and code).  Pickle bytes are no such digest: pickle
    writes a string once and refers back to it when the same string
    *object* comes again, and which equal strings are one object depends on
    the process.  None when the walk meets something it cannot read.

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> first = model_digest(DummyClassifier().fit([[0], [1]], [0, 1]))
    >>> first == model_digest(DummyClassifier().fit([[0], [1]], [0, 1])), first[:7]
    (True, 'sha256:')
    >>> first == model_digest(DummyClassifier().fit([[0], [1]], [1, 1]))
    False
    """
    digest = hashlib.sha256()
    try:
        _feed(digest, _search_value(estimator), set())
    except Exception:  # an object that hides its state: no reproducible digest
        return None
    return "sha256:" + digest.hexdigest()


#: What a fitted search *is*, as opposed to how long it took or which scorer
#: objects it holds: the value its digest covers.
_SEARCH_VALUE = ("best_index_", "best_params_", "best_score_", "n_splits_", "multimetric_", "classes_",
                 "n_features_in_", "feature_names_in_", "best_estimator_")


def _search_value(estimator):
    """A fitted search (``GridSearchCV``...) as the values that make it; any other estimator as it is.

    Its timings (``refit_time_``, the ``*_time`` columns of ``cv_results_``)
    differ between two correct runs, and its scorer objects between
    processes: neither is part of the value.

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> isinstance(_search_value(DummyClassifier()), DummyClassifier)
    True
    """
    if not (hasattr(estimator, "cv_results_") and hasattr(estimator, "best_index_")):
        return estimator
    value = {"class": type(estimator).__qualname__,
             "params": {k: v for k, v in estimator.get_params(deep=False).items() if k != "estimator"},
             "estimator": estimator.get_params(deep=False).get("estimator"),
             "cv_results_": {k: v for k, v in estimator.cv_results_.items() if not k.endswith("_time")}}
    value.update({name: getattr(estimator, name) for name in _SEARCH_VALUE if hasattr(estimator, name)})
    return value


def _feed(digest, obj, active):
    """Feed the canonical form of ``obj`` to ``digest``; ``active``: ids being walked (cycles)."""
    import numpy as np

    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        digest.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, (np.ndarray, np.generic)) and not obj.dtype.hasobject:
        dtype = repr(obj.dtype.descr) if obj.dtype.fields else obj.dtype.str
        digest.update(f"{type(obj).__name__}:{dtype}:{np.shape(obj)};".encode())
        digest.update(np.ascontiguousarray(obj).tobytes())
    elif id(obj) in active:
        digest.update(b"cycle;")
    else:
        active.add(id(obj))
        try:
            _feed_container(digest, obj, active)
        finally:
            active.discard(id(obj))


def _feed_container(digest, obj, active):
    import numpy as np

    digest.update(f"{type(obj).__module__}.{type(obj).__qualname__}(".encode())
    if isinstance(obj, np.ndarray):  # of objects
        digest.update(f"{obj.shape};".encode())
        items = obj.ravel(order="C").tolist()
    elif isinstance(obj, (list, tuple)):
        items = obj
    elif isinstance(obj, dict):
        items = sorted(obj.items(), key=lambda item: _sub_digest(item[0]))
    elif isinstance(obj, (set, frozenset)):
        items = sorted(obj, key=_sub_digest)
    elif isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__"):
        # A function or class is what pickle saves: its name (and a function's code).
        code = getattr(obj, "__code__", None)
        items = [getattr(obj, "__module__", None), obj.__qualname__,
                 None if code is None else (code.co_code, repr(code.co_consts))]
    else:
        reduced = obj.__reduce_ex__(4)
        items = [reduced] if isinstance(reduced, str) else [
            part if index < 3 or part is None else list(part) for index, part in enumerate(reduced)]
    for item in items:
        _feed(digest, item, active)
    digest.update(b");")


def _sub_digest(obj):
    digest = hashlib.sha256()
    _feed(digest, obj, set())
    return digest.digest()


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
    >>> record["name"], len(record["sha256"]), record["digest"].startswith("sha256:")
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
    >>> public_record({"name": "o0", "task": "select-o0", "sha256": "ab", "digest": "sha256:cd"})
    {'name': 'o0', 'task': 'select-o0', 'digest': 'sha256:cd'}
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
