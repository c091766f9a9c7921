"""The data of a workdir: numpy arrays memory-mapped, sparse, pandas, object arrays and lists pickled."""

from pathlib import Path

from ..exceptions import WorkdirError
from .files import _StreamOnly, atomic_write, atomic_write_bytes
from .safety import load_pickle

def _needs_pickle(array):
    # Object arrays (e.g. string labels from pandas) and numpy's new
    # variable-width dtypes cannot be stored as plain .npy bytes.
    return array.dtype.hasobject or not getattr(type(array.dtype), "_legacy", True)


def save_array_like(folder, name, value):
    """Save X, y or groups once, user-only, in the format that reads back fastest.

    Returns the kind recorded in the manifest: ``"numpy"`` (``.npy``, read
    memory-mapped with ``allow_pickle=False``), ``"sparse"`` (CSR ``.npz``,
    as scikit-learn's ``indexable`` makes it), ``"pandas"`` (a pickle that
    keeps dtypes, columns and index), ``"object"`` (an object array,
    pickled) or ``"list"`` (a Python list or tuple, pickled as it is:
    scikit-learn slices it with ``_safe_indexing`` into a list, never into
    an array); pickles are only read back after :func:`load_pickle`'s checks.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> save_array_like(folder, "y", np.array([0, 1, 1]))
    'numpy'
    >>> save_array_like(folder, "labels", np.array(["a", None], dtype=object))
    'object'
    >>> save_array_like(folder, "X", [["red", 10], ["blue", 2]])
    'list'
    """
    import pickle

    import numpy as np
    import scipy.sparse as sp

    folder = Path(folder)
    if value is None:
        return None
    if sp.issparse(value):
        matrix = value.tocsr()
        atomic_write(folder / f"{name}.npz", lambda handle: sp.save_npz(handle, matrix, compressed=False))
        return "sparse"
    if hasattr(value, "iloc"):
        atomic_write_bytes(folder / f"{name}.pkl", pickle.dumps(value, protocol=5))
        return "pandas"
    if isinstance(value, (list, tuple)):
        # Not np.asarray: ["red", 10] would become strings ('10' < '2').
        atomic_write_bytes(folder / f"{name}.pkl", pickle.dumps(value, protocol=5))
        return "list"
    array = np.asarray(value)
    if _needs_pickle(array):
        atomic_write_bytes(folder / f"{name}.pkl", pickle.dumps(array, protocol=5))
        return "object"
    atomic_write(folder / f"{name}.npy",
                 lambda handle: np.save(_StreamOnly(handle), array, allow_pickle=False))
    return "numpy"


def load_array_like(folder, name, kind):
    """Load what :func:`save_array_like` wrote; numpy arrays are memory-mapped.

    ``folder`` is the workdir's ``data/`` folder: pickles are checked with
    :func:`load_pickle` before they are read.

    Examples
    --------
    >>> X = load_array_like("runs/iris/data", "X", "numpy")
    """
    import numpy as np

    folder = Path(folder)
    if kind is None:
        return None
    if kind == "sparse":
        import scipy.sparse as sp

        # load_npz reads with allow_pickle=False.
        return sp.load_npz(folder / f"{name}.npz").tocsr()
    if kind in ("pandas", "object", "list"):
        return load_pickle(folder.parent, folder / f"{name}.pkl")
    path = folder / f"{name}.npy"
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise WorkdirError(f"Missing file {path}.") from None
    except ValueError as exc:
        raise WorkdirError(
            f"Refusing to load {path}: it is not a plain numeric array ({exc}); mempamal never "
            "unpickles .npy files. Build the workdir again."
        ) from None


def save_npy(path, array):
    """Write one plain numeric (or fixed-width text) array atomically, user-only, no pickle.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.npy"
    >>> save_npy(path, np.arange(3)); np.load(path, allow_pickle=False).tolist()
    [0, 1, 2]
    """
    import numpy as np

    array = np.asarray(array)
    atomic_write(path, lambda handle: np.save(_StreamOnly(handle), array, allow_pickle=False))
