"""Checks of what ``Experiment.build`` is given, with scikit-learn-style messages, before anything is written.

The data (``X``, ``y``, ``groups``, ``params``), the ``workdir``,
``overwrite`` and ``chunk_size`` arguments, and the splits computed from
them (every index in range, every mask of the right length);
:func:`as_indexable` turns the data into what the build stores, as
scikit-learn's ``indexable`` (lists stay lists).  Experiment's own
arguments are checked by :mod:`mempamal.validation.arguments`.
"""

import numbers

import numpy as np

from .._constraints import Interval, StrOptions, invalid, raise_invalid, validate_params

#: What ``build`` is given, each argument alone; how they relate (lengths,
#: the workdir on disk) is checked by the functions below.
BUILD_CONSTRAINTS = {
    "X": ["array-like"],
    "y": ["array-like"],
    "groups": ["array-like", None],
    "workdir": ["path"],
    "overwrite": ["boolean"],
    "reuse": ["boolean"],
    "chunk_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
}


def _n_samples(value):
    if hasattr(value, "shape") and len(getattr(value, "shape", ())) > 0:
        return value.shape[0]
    return len(value)


def check_data(X, y, groups):
    """Check X, y and groups before anything is written.

    Examples
    --------
    >>> check_data([[0.0], [1.0]], 3, None)
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'y' parameter of Experiment.build must be an array-like; got 3 instead.
    """
    if X is None:
        raise invalid("The 'X' parameter of Experiment.build is required; got None.")
    if y is None:
        raise invalid(
            "The 'y' parameter of Experiment.build is required (mempamal evaluates supervised "
            "estimators); got None."
        )
    if isinstance(groups, (str, bytes)) or hasattr(groups, "__fspath__"):
        # build(X, y, "runs/x"): the third positional argument is groups, as in cross_validate.
        raise_invalid("groups", "Experiment.build", "an array-like or None", groups,
                      " (the workdir is passed as workdir=...)")
    validate_params({"X": X, "y": y, "groups": groups}, BUILD_CONSTRAINTS, "Experiment.build")
    n_x, n_y = _n_samples(X), _n_samples(y)
    if n_x == 0:
        raise invalid("The 'X' parameter of Experiment.build must have at least one sample; got 0.")
    if n_x != n_y:
        raise invalid(
            f"The 'X' and 'y' parameters of Experiment.build must have the same number of "
            f"samples; got X with {n_x} and y with {n_y}."
        )
    if groups is not None and _n_samples(groups) != n_x:
        raise invalid(
            f"The 'groups' parameter of Experiment.build must have one entry per sample "
            f"({n_x}); got {_n_samples(groups)}."
        )


def check_permutation_groups(groups, n_permutations):
    """Refuse ``groups`` that ``permutation_test_score`` would silently not permute within.

    scikit-learn shuffles ``y`` within each group through ``groups == group``:
    for a Python list of strings that comparison is a single ``False``, so
    no ``y`` is ever permuted (every permutation score is the true score, the
    p-value 1). mempamal would permute; rather than differ silently, it
    asks for the array, with which both permute the same way.

    Examples
    --------
    >>> check_permutation_groups(["a", "b", "a"], 10)
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'groups' argument of Experiment.build is a list that scikit-learn's permutation_test_score cannot shuffle within (groups == group is one False, so it permutes nothing); pass np.asarray(groups).
    >>> check_permutation_groups([0, 1, 0], 10)
    """
    if not n_permutations or not isinstance(groups, (list, tuple)) or not len(groups):
        return
    if not isinstance(groups == np.unique(np.asarray(groups))[0], np.ndarray):
        raise invalid(
            "The 'groups' argument of Experiment.build is a list that scikit-learn's "
            "permutation_test_score cannot shuffle within (groups == group is one False, so it "
            "permutes nothing); pass np.asarray(groups).")


def check_build_arguments(workdir, overwrite, chunk_size, reuse=False):
    """``workdir``, ``overwrite``, ``chunk_size`` and ``reuse`` of ``Experiment.build``.

    Examples
    --------
    >>> check_build_arguments("", False, "auto")
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'workdir' parameter of build must be a non-empty path (use '.' to mean the current folder); got '' instead.
    """
    import os

    validate_params({"workdir": workdir, "overwrite": overwrite, "chunk_size": chunk_size, "reuse": reuse},
                    BUILD_CONSTRAINTS, "build")
    if isinstance(workdir, str) and not workdir.strip():
        # Path("") is the current folder: never build there by accident.
        raise_invalid("workdir", "build", "a non-empty path (use '.' to mean the current folder)", workdir)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        # What is on disk, not the argument's kind: the error of the filesystem.
        raise FileExistsError(
            f"The 'workdir' parameter of build must be a folder (new, empty, or a mempamal "
            f"workdir); {workdir} is a file."
        )


def _check_indices(indices, n_samples, argument, where):
    indices = np.asarray(indices)
    if indices.dtype.kind == "b":
        if len(indices) != n_samples:
            raise invalid(
                f"The {argument!r} parameter of Experiment gave a boolean mask of length "
                f"{len(indices)} for {where}; it must have one entry per sample ({n_samples})."
            )
        return
    if indices.size == 0:
        return
    if indices.dtype.kind not in "iu":
        raise invalid(
            f"The {argument!r} parameter of Experiment must give integer indices; got "
            f"{indices.dtype} indices for {where}."
        )
    low, high = indices.min(), indices.max()
    if low < 0 or high >= n_samples:
        raise invalid(
            f"The {argument!r} parameter of Experiment gave indices out of range for {where}: "
            f"they must be in [0, {n_samples}); got min {low}, max {high}."
        )


def check_split_set(split_set, n_samples):
    """Every stored split must index the data it splits (caught at build, not at run).

    Examples
    --------
    >>> check_split_set({"outer": [(np.arange(3), np.array([3]))], "inner": []}, 3)
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'cv' parameter of Experiment gave indices out of range for the test set of split 0 (3 samples): they must be in [0, 3); got min 3, max 3.
    """
    if not split_set["outer"]:
        raise invalid("The 'cv' parameter of Experiment gave no splits.")
    for fold, (train, test) in enumerate(split_set["outer"]):
        _check_indices(train, n_samples, "cv", f"the training set of split {fold} ({n_samples} samples)")
        _check_indices(test, n_samples, "cv", f"the test set of split {fold} ({n_samples} samples)")
    for fold, inner_splits in enumerate(split_set["inner"]):
        outer_train = np.asarray(split_set["outer"][fold][0])
        n_train = int(outer_train.sum()) if outer_train.dtype.kind == "b" else len(outer_train)
        if not inner_splits:
            raise invalid("The 'inner_cv' parameter of Experiment gave no splits.")
        for inner, (train, test) in enumerate(inner_splits):
            where = f"inner split {inner} of outer fold {fold} ({n_train} training samples)"
            _check_indices(train, n_train, "inner_cv", where)
            _check_indices(test, n_train, "inner_cv", where)
    for inner, (train, test) in enumerate(split_set.get("all", ())):
        where = f"inner split {inner} of the final search on all {n_samples} samples (final_fit=False skips it)"
        _check_indices(train, n_samples, "inner_cv", where)
        _check_indices(test, n_samples, "inner_cv", where)


def as_indexable(value):
    """What scikit-learn's ``indexable`` does: sparse to CSR, lists kept as lists.

    ``cross_validate`` passes anything indexable through unchanged and
    slices it with ``_safe_indexing``, so a Python list (or tuple) reaches
    ``fit`` as a list: an ``OrdinalEncoder`` sees the ints of ``["red", 10]``,
    not the strings NumPy would make of them, and ragged token lists stay
    possible.  Other containers NumPy can read become arrays, as before.

    Examples
    --------
    >>> as_indexable([["red", 10], ["blue", 2]])
    [['red', 10], ['blue', 2]]
    >>> as_indexable(np.array([[1, 2], [3, 4]])).shape
    (2, 2)
    >>> import scipy.sparse as sp
    >>> as_indexable(sp.coo_matrix([[1, 0]])).format
    'csr'
    """
    import scipy.sparse as sp

    if value is None:
        return None
    if sp.issparse(value):
        return value.tocsr()
    if hasattr(value, "iloc") or isinstance(value, (np.ndarray, list, tuple)):
        return value
    return np.asarray(value)


def check_params(params, n_samples):
    """``build(params=)``: None or a dict of sample-aligned metadata (``sample_weight``, ...).

    Each value must be array-like with one entry per sample, as
    ``cross_validate(params=)`` slices it per fold; ``groups`` has its own
    argument.

    Examples
    --------
    >>> check_params({"sample_weight": [1.0, 2.0]}, 3)
    Traceback (most recent call last):
    ...
    mempamal.exceptions.InvalidParameterError: The 'params' parameter of Experiment.build must map names to sample-aligned arrays with one entry per sample (3); got 'sample_weight' with 2 entries instead.
    """
    if params is None:
        return
    if not isinstance(params, dict):
        hint = (" (the workdir is passed as workdir=...)" if isinstance(params, (str, bytes)) or
                hasattr(params, "__fspath__") else "")
        raise invalid(
            "The 'params' parameter of Experiment.build must be None or a dict such as "
            f"{{'sample_weight': w}}; got {params!r} ({type(params).__name__}) instead{hint}.")
    for name, value in params.items():
        if not isinstance(name, str):
            raise invalid(f"The 'params' parameter of Experiment.build must have str keys; got {name!r}.")
        if name == "groups":
            raise invalid("The 'params' parameter of Experiment.build must not contain 'groups': "
                             "pass groups=... to build (the splits are made with it).")
        if value is None or not (hasattr(value, "__len__") or hasattr(value, "shape")) or isinstance(value, (str, dict)):
            raise invalid(
                "The 'params' parameter of Experiment.build must map names to sample-aligned arrays; "
                f"got {name!r}={value!r} instead.")
        length = _n_samples(value)
        if length != n_samples:
            raise invalid(
                "The 'params' parameter of Experiment.build must map names to sample-aligned arrays "
                f"with one entry per sample ({n_samples}); got {name!r} with {length} entries instead.")
