"""One environment: the library versions a build records and every task checks.

"Same answer everywhere" holds only when every task runs the libraries the
build ran: another scikit-learn may unpickle the estimator, fit it and score
it differently, silently.  The build records, in ``manifest.json``
(``"environment"``), the versions of Python, mempamal, scikit-learn, NumPy,
SciPy, joblib, cloudpickle and of the packages the estimator's own objects
come from (its steps, nested estimators and parameter values, and those of
the grid); ``experiment.json`` shows the same dict.  Each task compares them
with the versions of the process running it *before* anything is unpickled,
and refuses to run on a difference unless told to
(``allow_version_mismatch``).  The versions of this process are computed
once per process (they cannot change while it runs).

Examples
--------
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> env = build_environment(make_pipeline(StandardScaler()))
>>> sorted(env["versions"])
['cloudpickle', 'joblib', 'mempamal', 'numpy', 'python', 'scikit-learn', 'scipy']
>>> mismatches(env)
[]
"""

import functools
import importlib
import platform
import sys

#: The libraries every build records: distribution name -> module to import.
LIBRARIES = {"mempamal": "mempamal", "scikit-learn": "sklearn", "numpy": "numpy", "scipy": "scipy",
             "joblib": "joblib", "cloudpickle": "cloudpickle"}

#: The words of the refusal, after the differences.
ADVICE = ("same answer everywhere needs the same libraries; rebuild, or pass allow_version_mismatch=True "
          "(`mempamal task --allow-version-mismatch`)")

#: This process's versions, by distribution name: computed once per process.
_HERE = {}


def version_here(name, module=None):
    """The version of distribution ``name`` (imported as ``module``) in this process; None when absent.

    The version of the module this process imports (its ``__version__``),
    else the installed distribution's; cached for the process's life.

    Examples
    --------
    >>> import sklearn
    >>> version_here("scikit-learn", "sklearn") == sklearn.__version__
    True
    >>> version_here("no-such-package-here") is None
    True
    """
    key = (name, module)
    if key not in _HERE:
        _HERE[key] = platform.python_version() if name == "python" else _lookup(name, module or name)
    return _HERE[key]


def _lookup(name, module):
    try:
        imported = sys.modules.get(module) or importlib.import_module(module)
    except Exception:  # not installed here (or broken): no version
        imported = None
    version = getattr(imported, "__version__", None)
    if isinstance(version, str):
        return version
    from importlib.metadata import PackageNotFoundError, version as installed

    try:
        return installed(name)
    except (PackageNotFoundError, ValueError):
        return None


def estimator_packages(*objects):
    """``{distribution: top module}`` of the packages the objects inside ``objects`` come from.

    Walks estimators (``get_params(deep=True)``, steps, nested estimators),
    lists, tuples and dicts (a grid); each object's top module
    (``type(obj).__module__``) counts unless it is one of :data:`LIBRARIES`,
    the standard library, builtins or ``__main__`` (a notebook's class: no
    version to compare).

    Examples
    --------
    >>> from sklearn.svm import SVC
    >>> estimator_packages(SVC(), {"C": [1.0, 2.0]})
    {}
    """
    tops, seen = set(), set()
    stack = list(objects)
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, dict):
            stack.extend(value.values())
            continue
        if isinstance(value, (list, tuple, set, frozenset)):
            stack.extend(value)
            continue
        tops.add(type(value).__module__.split(".")[0])
        if hasattr(value, "get_params") and not isinstance(value, type):
            try:
                stack.extend(value.get_params(deep=True).values())
            except Exception:  # a broken get_params: its type still counts
                pass
    skip = set(LIBRARIES.values()) | set(getattr(sys, "stdlib_module_names", ())) | {"builtins", "__main__"}
    tops = sorted(tops - skip)
    if not tops:
        return {}
    owners = _distributions_of_modules()
    return {(owners.get(top) or [top])[0]: top for top in tops}


@functools.lru_cache(maxsize=1)
def _distributions_of_modules():
    """``{module: [distribution, ...]}`` of the installed distributions (their names in pip and in
    the messages): one scan per process (about 0.4 s in a venv of a hundred packages; a build
    of the tests' estimators would pay it every time)."""
    from importlib.metadata import packages_distributions  # Python >= 3.10, as pyproject.toml

    return packages_distributions()


def build_environment(estimator, *grids):
    """What a build records: ``{"versions": {name: version}, "modules": {name: module}}``.

    ``versions`` names Python, :data:`LIBRARIES` and the estimator's
    packages (:func:`estimator_packages` of ``estimator`` and ``grids``);
    ``modules`` says which module each estimator package is imported as,
    so a task looks up the same thing.

    Examples
    --------
    >>> from sklearn.svm import SVC
    >>> build_environment(SVC())["versions"]["python"] == platform.python_version()
    True
    """
    modules = dict(LIBRARIES)
    modules.update(estimator_packages(estimator, *grids))
    versions = {"python": version_here("python")}
    versions.update((name, version_here(name, module)) for name, module in modules.items())
    return {"versions": versions, "modules": {n: m for n, m in modules.items() if n not in LIBRARIES}}


def versions_for(environment):
    """This process's versions of what ``environment`` (a build's) names, in its order.

    Examples
    --------
    >>> versions_for({"versions": {"python": "3.0.0"}})["python"] == platform.python_version()
    True
    """
    modules = {**LIBRARIES, **environment.get("modules", {})}
    return {name: version_here(name, modules.get(name)) for name in environment.get("versions", {})}


def mismatches(environment, here=None):
    """``[(name, version here, version at build)]`` where this process differs from the build.

    ``here``: this process's versions (:func:`versions_for`), computed if
    not given.

    Examples
    --------
    >>> import sklearn
    >>> env = {"versions": {"scikit-learn": "0.1"}}
    >>> mismatches(env) == [("scikit-learn", sklearn.__version__, "0.1")]
    True
    """
    here = versions_for(environment) if here is None else here
    return [(name, here.get(name), built) for name, built in environment.get("versions", {}).items()
            if here.get(name) != built]


def describe_mismatches(found):
    """``"scikit-learn 1.6.1 here, 1.9.1 at build"`` for each difference, joined.

    Examples
    --------
    >>> describe_mismatches([("scikit-learn", "1.6.1", "1.9.1"), ("xgboost", None, "2.0.3")])
    'scikit-learn 1.6.1 here, 1.9.1 at build; xgboost not installed here, 2.0.3 at build'
    """
    return "; ".join(f"{name} {'not installed' if here is None else here} here, {built} at build"
                     for name, here, built in found)


def refusal(found):
    """The message of a task refused for the differences ``found``.

    Examples
    --------
    >>> refusal([("numpy", "1.24.4", "2.4.6")]).split(":")[0]
    'numpy 1.24.4 here, 2.4.6 at build'
    """
    return f"{describe_mismatches(found)}: {ADVICE}"


def refuse(found):
    """Raise the :class:`~mempamal.exceptions.VersionMismatchError` of the mismatches ``found``.

    Examples
    --------
    >>> refuse([("numpy", "1.0", "2.0")])
    Traceback (most recent call last):
    ...
    mempamal.exceptions.VersionMismatchError: ...numpy 1.0 here, 2.0 at build...
    """
    from ..exceptions import VersionMismatchError

    raise VersionMismatchError(refusal(found), found)
