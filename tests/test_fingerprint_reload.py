"""A class defined in ``__main__`` keeps its fingerprint after its workdir is loaded.

Unpickling ``experiment.pkl`` in the process that defined a ``__main__`` class
makes cloudpickle write the unpickled methods back into that class.  Building
the same experiment again, in the same session (however many loads later, or
after the defining cell is run again) or in a new one, must still be
recognised as the same experiment; an edited class must not be.
"""

import subprocess
import sys
import textwrap

import cloudpickle
import pytest

import mempamal as mp
from mempamal.store.fingerprint import code_digest

# The "cell" that defines the class, kept as text so that it can be run
# again, as a user re-runs a notebook cell.
CLASS_CELL = textwrap.dedent("""
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.linear_model import LogisticRegression

    class NotebookLogistic(ClassifierMixin, BaseEstimator):
        def __init__(self, C=1.0, tol=1e-4):
            self.C, self.tol = C, tol
        def fit(self, X, y):
            self.model_ = LogisticRegression(C=self.C, tol=self.tol, max_iter=500).fit(X, y)
            self.classes_ = self.model_.classes_
            return self
        def predict(self, X):
            return self.model_.predict(X) if len({"a", "b"}) else None
""")

# Run twice in one process: loading between builds, then defining the class
# again (a re-run cell), each time the build must reuse the finished work.
SCRIPT = textwrap.dedent("""
    import sys
    from sklearn.datasets import load_iris
    import mempamal as mp
    CLASS_CELL = {cell!r}
    exec(CLASS_CELL)
    X, y = load_iris(return_X_y=True)
    workdir = sys.argv[1]

    def experiment():
        return mp.Experiment(NotebookLogistic(), param_grid={{"C": [0.5, 2.0]}}, cv=3, inner_cv=2,
                             final_fit=False)

    if sys.argv[2] == "first":
        experiment().run(X, y, workdir=workdir, n_jobs=1, progress=False)
    for attempt in range(2):
        mp.Results.load(workdir)
        status = experiment().build(X, y, workdir=workdir).status()
        assert status["pending"] == 0, status
        exec(CLASS_CELL)
    print("REUSED")
""")


def test_code_digest_ignores_pickling_and_unpickling_in_the_defining_process():
    namespace = {"__name__": "not_an_importable_module"}  # so cloudpickle pickles the class by value
    exec(CLASS_CELL, namespace)
    cls = namespace["NotebookLogistic"]
    before = code_digest(cls), code_digest(cls(C=2.0))
    original_fit = cls.fit
    cloudpickle.loads(cloudpickle.dumps(cls(C=2.0)))  # caches __slotnames__, writes the methods back
    assert cls.fit is not original_fit  # what cloudpickle does, and why the digest had to be robust
    assert (code_digest(cls), code_digest(cls(C=2.0))) == before
    exec(CLASS_CELL.replace("max_iter=500", "max_iter=400"), namespace)
    assert code_digest(namespace["NotebookLogistic"]) != before[0]


def run_script(tmp_path, workdir, which, cell=CLASS_CELL):
    script = tmp_path / f"{which}.py"
    script.write_text(SCRIPT.format(cell=cell))
    return subprocess.run([sys.executable, str(script), str(workdir), which], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)


def test_script_class_is_the_same_experiment_after_loads_and_in_a_new_session(tmp_path):
    workdir = tmp_path / "wd"
    first = run_script(tmp_path, workdir, "first")
    assert first.returncode == 0 and "REUSED" in first.stdout, first.stderr[-3000:]
    again = run_script(tmp_path, workdir, "again")  # a new session, same code
    assert again.returncode == 0 and "REUSED" in again.stdout, again.stderr[-3000:]
    assert mp.Workflow.open(workdir).status()["pending"] == 0


def test_an_edited_script_class_is_still_a_different_experiment(tmp_path):
    workdir = tmp_path / "wd"
    assert run_script(tmp_path, workdir, "first").returncode == 0
    edited = CLASS_CELL.replace("max_iter=500", "max_iter=400")
    refused = run_script(tmp_path, workdir, "again", cell=edited)
    assert refused.returncode != 0
    assert "already holds a different experiment or data" in refused.stderr


def test_notebook_cell_run_again_after_a_load_is_the_same_experiment(tmp_path):
    pytest.importorskip("nbclient", reason="nbclient is not installed (a core-only environment)")
    import nbformat
    from test_notebooks import execute

    build = ("experiment = mp.Experiment(NotebookLogistic(), cv=3, final_fit=False)\n"
             "status = experiment.build(X, y, workdir='wd').status()\n"
             "print('PENDING', status['pending'])")
    cells = [
        "import mempamal as mp\nfrom sklearn.datasets import load_iris\nX, y = load_iris(return_X_y=True)",
        CLASS_CELL,
        "mp.Experiment(NotebookLogistic(), cv=3, final_fit=False).run(X, y, workdir='wd', n_jobs=1, progress=False)",
        "mp.Results.load('wd'); mp.Results.load('wd')",
        build,          # the same class object, its methods replaced by the loads
        CLASS_CELL,     # the cell run again: a new class object
        build,
    ]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    execute(notebook, tmp_path, timeout=120)
    printed = [out["text"].strip() for index in (4, 6) for out in notebook.cells[index].outputs
               if out.get("name") == "stdout"]
    assert printed == ["PENDING 0", "PENDING 0"]
