"""The namespace of the docstring examples, so that ``pytest --doctest-modules mempamal`` runs them.

This file sits in the package (as numpy's own conftest.py does) because
pytest reads the conftest files of the folders it collects: both ``pytest``
(``testpaths`` lists ``mempamal``, ``addopts`` has ``--doctest-modules``, see
pyproject.toml) and ``pytest --doctest-modules mempamal`` find it.  Not at the
repository root: there it would shadow ``tests/conftest.py`` for every
subprocess a test starts from the root (a job unpickling a test module's
estimator imports ``conftest``).

Every example sees, without importing them:

===============  ==================================================================
``mp``, ``np``   ``import mempamal as mp``, ``import numpy as np``
``X, y``         iris (150 samples, 3 classes)
``groups``       ``np.arange(150) % 5``: five groups mixing the classes
``estimator``    ``Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])``
``grid``         ``{"clf__C": [0.1, 1.0, 10.0]}``
``exp``          ``mp.Experiment(estimator, param_grid=grid, cv=3, inner_cv=2, refit="accuracy",
                 scoring=["accuracy"], return_estimator=True, predict="predict_proba")``
``wf``, ``res``  ``exp``'s workflow in ``runs/iris``, finished, and its Results
``perm_res``     the Results of ``mp.Experiment(estimator, cv=3, scoring="accuracy",
                 n_permutations=5)`` on iris, finished in ``runs/permuted``
``tmp``          the example's own temporary folder (a ``pathlib.Path``), also the
                 current directory: ``"runs/iris"`` and any file an example writes
                 land there, never in the repository
===============  ==================================================================

Both workdirs are built and run once per session (local backend, one worker,
only when an example needs them) and copied into the folder of each example
that mentions them (``wf``, ``res``, ``runs/iris``; ``perm_res``), so an example may rerun, invalidate or delete tasks without
disturbing the next one.  BLAS runs one thread (in this process and,
through the environment, in workers).  HOME and the Jupyter/IPython folders are temporary,
matplotlib draws with Agg and every figure is closed after each example.

Examples that need what a test machine lacks (a Slurm cluster, a
soma-workflow resource, a running ipyparallel or Dask cluster, a browser
front end) stay ``+SKIP`` with the reason on their line; tests/test_doctests.py
keeps it that way.
"""

import os
import shutil

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def _mentions(dtest, pattern):
    import re

    return re.search(pattern, "\n".join(example.source for example in dtest.examples)) is not None


def _experiment(estimator, grid):
    import mempamal as mp

    return mp.Experiment(estimator, param_grid=grid, cv=3, inner_cv=2, scoring=["accuracy"], refit="accuracy",
                         return_estimator=True, predict="predict_proba")


def _estimator():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])


class _Finished:
    """Workdirs built and run at most once per session, on first use."""

    def __init__(self, folder):
        from sklearn.datasets import load_iris

        self.folder, self.done = folder, {}
        self.iris = load_iris(return_X_y=True)

    def copy(self, name, experiment, destination):
        if name not in self.done:
            from threadpoolctl import threadpool_limits

            wf = experiment.build(*self.iris, workdir=self.folder / name)
            with threadpool_limits(1):
                wf.run(backend="local", n_jobs=1, progress=False)
            self.done[name] = self.folder / name
        shutil.copytree(self.done[name], destination)
        import mempamal as mp

        return mp.Workflow.open(destination)


@pytest.fixture(scope="session")
def _finished(tmp_path_factory):
    return _Finished(tmp_path_factory.mktemp("doctest-session"))


@pytest.fixture
def doctest_namespace(request, tmp_path, tmp_path_factory, monkeypatch, _finished):
    """Overrides pytest's (session-wide, empty) namespace with a fresh one per example."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from threadpoolctl import threadpool_limits

    import mempamal as mp

    home = tmp_path_factory.mktemp("home")  # not in tmp: an example listing its folder sees only its files
    for name, value in (("HOME", home), ("IPYTHONDIR", home / ".ipython"),
                        ("JUPYTER_CONFIG_DIR", home / ".jupyter"), ("MPLBACKEND", "Agg"),
                        ("OMP_NUM_THREADS", 1), ("OPENBLAS_NUM_THREADS", 1), ("MKL_NUM_THREADS", 1)):
        monkeypatch.setenv(name, str(value))
    monkeypatch.chdir(tmp_path)
    X, y = (array.copy() for array in _finished.iris)
    estimator, grid = _estimator(), {"clf__C": [0.1, 1.0, 10.0]}
    namespace = {"mp": mp, "np": np, "X": X, "y": y, "groups": np.arange(len(y)) % 5, "estimator": estimator,
                 "grid": grid, "tmp": tmp_path}
    # What costs something is made only for the examples that use it.
    dtest = request.node.dtest
    if _mentions(dtest, r"\bexp\b"):
        namespace["exp"] = _experiment(estimator, grid)
    if _mentions(dtest, r"runs/iris|\b(wf|res)\b"):
        namespace["wf"] = _finished.copy("iris", _experiment(_estimator(), grid), tmp_path / "runs" / "iris")
    if _mentions(dtest, r"\bres\b"):
        namespace["res"] = namespace["wf"].results()
    if _mentions(dtest, r"\bperm_res\b"):
        permuted = mp.Experiment(_estimator(), cv=3, scoring="accuracy", n_permutations=5)
        namespace["perm_res"] = _finished.copy("permuted", permuted, tmp_path / "runs" / "permuted").results()
    # One BLAS thread: on a busy machine, lbfgs with two threads took ten times longer.
    with threadpool_limits(1):
        yield namespace
    plt.close("all")
