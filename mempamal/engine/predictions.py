"""Out-of-fold predictions (``Experiment(predict=...)``), as ``cross_val_predict`` makes them.

The ``select``/``score`` task of an outer fold predicts its test part with
the estimator it has just fitted (no extra fit).  ``cross_val_predict``
fits on label-encoded ``y`` for ``predict_proba``, ``predict_log_proba``
and ``decision_function`` and then puts the columns of a fold that missed
a class where the whole ``y``'s classes are (``_enforce_prediction_order``);
our estimator saw the original labels, so its ``classes_`` are encoded with
a ``LabelEncoder`` of the whole ``y`` (the same sorted order) before
scikit-learn's own ``_enforce_prediction_order`` is applied.

Each fold's arrays are saved as ``outputs/<task>.pred<k>.npy`` (no pickle),
written before the task's output, which records their sha256.  Predictions
of dtype object (string labels in an object ``y``) are stored as indices
into ``np.unique`` of ``y`` and decoded on load.
"""

import hashlib

import numpy as np

from .. import store

PROBA_METHODS = ("decision_function", "predict_proba", "predict_log_proba")


def target_labels(y):
    """The sorted distinct values of ``y`` (all outputs): object predictions index them.

    Examples
    --------
    >>> target_labels(np.array(["b", "a", "b"], dtype=object)).tolist()
    ['a', 'b']
    """
    return np.unique(np.asarray(y, dtype=object).ravel())


def fold_predictions(estimator, X_test, y, method):
    """``estimator.<method>(X_test)`` with the columns ``cross_val_predict`` gives them.

    ``y`` is the whole target (the classes a fold may miss are its classes).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = np.array([[0.], [1.], [2.]]), np.array([0, 0, 1])
    >>> est = LogisticRegression().fit(X[:2], [0, 1])
    >>> fold_predictions(est, X[2:], np.array([0, 1, 2]), "predict_proba").shape
    (1, 3)
    """
    from .._sklearn_compat import _enforce_prediction_order
    from sklearn.preprocessing import LabelEncoder

    predictions = getattr(estimator, method)(X_test)
    if method not in PROBA_METHODS or y is None:
        return predictions
    y = np.asarray(y)
    if isinstance(predictions, list):
        return [
            _enforce_prediction_order(
                LabelEncoder().fit(y[:, output]).transform(estimator.classes_[output]),
                predictions[output], n_classes=len(np.unique(y[:, output])), method=method)
            for output in range(len(predictions))
        ]
    if y.ndim == 1:
        encoder = LabelEncoder().fit(y)
        classes = encoder.transform(estimator.classes_)
        return _enforce_prediction_order(classes, predictions, len(encoder.classes_), method)
    return _enforce_prediction_order(estimator.classes_, predictions, y.shape[1], method)


def _storable(array, y):
    import scipy.sparse as sp

    if sp.issparse(array):
        array = array.toarray()  # cross_val_predict stacks sparse; the values are the same
    array = np.asarray(array)
    if not array.dtype.hasobject:
        return array, None
    labels = target_labels(y)
    codes = np.searchsorted(labels, array)
    codes = np.clip(codes, 0, len(labels) - 1)
    if not np.array_equal(labels[codes], array):
        from .._constraints import invalid

        raise invalid(
            "The predictions are an object array whose values are not labels of y; mempamal "
            "stores predictions without pickle. Use a numeric or string y.")
    return codes.astype(np.int64), "labels"


def save_fold_predictions(workdir, task_id, predictions, y):
    """Write one fold's predictions next to the task's output; return what the output records.

    Examples
    --------
    >>> save_fold_predictions("runs/iris", "select-o0", np.zeros(3), None)
    {'files': ['select-o0.pred0.npy'], 'sha256': [...], 'list': False, 'encoding': [None]}
    """
    arrays = predictions if isinstance(predictions, list) else [predictions]
    record = {"files": [], "sha256": [], "list": isinstance(predictions, list), "encoding": []}
    for index, array in enumerate(arrays):
        array, encoding = _storable(array, y)
        name = f"{task_id}.pred{index}.npy"
        path = store.output_path(workdir, task_id).parent / name
        store.save_npy(path, array)
        record["files"].append(name)
        record["sha256"].append(hashlib.sha256(path.read_bytes()).hexdigest())
        record["encoding"].append(encoding)
    return record


def load_fold_predictions(workdir, record, y):
    """Read what :func:`save_fold_predictions` wrote, checking each file's digest.

    Examples
    --------
    >>> record = save_fold_predictions("runs/iris", "select-o0", np.array([0.5, 1.5]), None)
    >>> load_fold_predictions("runs/iris", record, y)
    array([0.5, 1.5])
    """
    folder = store.output_path(workdir, "x").parent
    arrays = []
    for name, digest, encoding in zip(record["files"], record["sha256"], record["encoding"]):
        path = folder / name
        try:
            payload = path.read_bytes()
        except FileNotFoundError:
            raise store.WorkdirError(f"Missing file {path}; run the workdir again.") from None
        if hashlib.sha256(payload).hexdigest() != digest:
            raise store.WorkdirError(f"{path} changed since its task wrote it; run the workdir again.")
        import io

        array = np.load(io.BytesIO(payload), allow_pickle=False)
        if encoding == "labels":
            array = target_labels(y)[array]
        arrays.append(array)
    return arrays if record["list"] else arrays[0]


def assemble(folds, test_indices, n_samples):
    """``cross_val_predict``'s answer from per-fold predictions: fold order, then
    the inverse permutation of the concatenated test indices.

    Examples
    --------
    >>> assemble([np.array([10, 11]), np.array([12])], [np.array([2, 0]), np.array([1])], 3).tolist()
    [11, 12, 10]
    """
    from .._sklearn_compat import _check_is_permutation

    order = np.concatenate(test_indices)
    if not _check_is_permutation(order, n_samples):
        from .._constraints import invalid

        raise invalid(
            "res.predictions is only defined when the outer cv is a partition (every sample in "
            "exactly one test fold), as for cross_val_predict; use res.fold_predictions[k], "
            "which gives (test_indices, predictions) of each fold.")
    inverse = np.empty(len(order), dtype=int)
    inverse[order] = np.arange(len(order))
    if isinstance(folds[0], list):
        return [np.concatenate([fold[output] for fold in folds])[inverse] for output in range(len(folds[0]))]
    return np.concatenate(folds)[inverse]
