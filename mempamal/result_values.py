"""The values of a Results as people and files see them: parameters printed plainly, JSON documents.

Examples
--------
>>> import numpy as np
>>> plain_value({"C": np.float64(1.0)})
{'C': 1.0}
"""

import numpy as np


class Params(dict):
    """A candidate's parameters: the values scikit-learn has (``np.float64`` from a
    ``np.logspace`` grid), printed as plain numbers.

    Equal to scikit-learn's ``best_params_`` (same keys, values and types);
    only the repr differs, so that ``{'C': 1.0}`` reads the same in Python and
    on the command line.

    Examples
    --------
    >>> params = Params({"C": np.float64(1.0)})
    >>> params, type(params["C"]).__name__, params == {"C": np.float64(1.0)}
    ({'C': 1.0}, 'float64', True)
    """

    def __repr__(self):
        return repr(plain_value(dict(self)))


class FoldParams(list):
    """``res.best_params``: one :class:`Params` per outer fold (not the final search's ``best_params_``).

    Examples
    --------
    >>> FoldParams([Params({"C": np.float64(0.1)}), Params({"C": np.float64(1.0)})])
    [{'C': 0.1}, {'C': 1.0}]
    """

    def __repr__(self):
        return repr([plain_value(dict(params)) if params is not None else None for params in self])


def plain_value(value):
    """``value`` with numpy scalars as Python numbers, so it prints ``1.0``, not ``np.float64(1.0)``.

    Dicts, lists and tuples are converted item by item; anything else (an
    estimator, a string) is returned as is.

    Examples
    --------
    >>> plain_value({"C": np.float64(1.0), "degree": [np.int64(2)]})
    {'C': 1.0, 'degree': [2]}
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: plain_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_value(item) for item in value)
    return value


def _jsonable(value):
    value = plain_value(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return repr(value)  # an estimator or an array as a grid value: its repr


def results_document(results):
    """Everything ``mempamal results --json`` prints: ``results.json`` plus the
    best parameters of each outer fold, the final model's best parameters
    (when the workdir has them) and the summary table, all JSON-able.

    Examples
    --------
    >>> document = results_document(mp.Results.load("runs/iris"))
    >>> document["best_params"][0], sorted(document["summary"]["accuracy"])
    ({'clf__C': 10.0}, ['mean', 'median', 'std'])
    """
    document = dict(results.raw)
    document["best_params"] = _jsonable(results.best_params)
    document["best_params_"] = _jsonable(final_best_params(results))
    document["summary"] = {metric: {column: float(value) for column, value in row.items()}
                           for metric, row in results.summary().to_dict(orient="index").items()}
    return document


def final_best_params(results):
    """``results.best_params_`` when the final search ran and succeeded, else None.

    Examples
    --------
    >>> final_best_params(mp.Results.load("runs/iris"))
    {'clf__C': 10.0}
    """
    try:
        return results.best_params_
    except (AttributeError, ValueError):  # final_fit=False / plain CV, or the final search failed
        return None
