"""A script without ``if __name__ == "__main__":`` that starts spawned workers is refused in one line."""

import subprocess
import sys
import textwrap

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_validate

BODY = """\
import mempamal as mp
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=2, inner_cv=2,
                           final_fit=False)
"""
RUN = 'res = experiment.run(X, y, workdir="wd", backend="dask", n_jobs=2, progress=False)\nprint(list(res.test_scores["score"]))\n'


def run_script(tmp_path, source):
    script = tmp_path / "script.py"
    script.write_text(source)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300)


def test_an_unguarded_dask_script_is_refused_naming_the_line_and_the_cure(tmp_path):
    done = run_script(tmp_path, BODY + RUN)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("mempamal.exceptions.SetupError:"), done.stderr[-3000:]
    assert "script.py" in last and "line 7" in last and 'if __name__ == "__main__":' in last
    assert len(done.stderr.splitlines()) < 20 and "Nanny" not in done.stderr
    assert not (tmp_path / "wd").exists()  # refused before anything was written


def test_the_guarded_script_runs_and_equals_scikit_learn(tmp_path):
    done = run_script(tmp_path, BODY + 'if __name__ == "__main__":\n' + textwrap.indent(RUN, "    "))
    assert done.returncode == 0, done.stderr[-3000:]
    X, y = load_iris(return_X_y=True)
    search = GridSearchCV(LogisticRegression(max_iter=300), {"C": [0.1, 1.0]}, cv=2)
    expected = cross_validate(search, X, y, cv=2)["test_score"]
    np.testing.assert_array_equal(eval(done.stdout.strip().splitlines()[-1]), expected)


def test_guarded_lines_cover_the_block_only():
    from mempamal.backends.main_guard import guarded_lines

    source = 'a = 1\nif __name__ == "__main__":\n    b = 2\n    c = (3,\n         4)\nd = 5\n'
    assert guarded_lines(source) == {3, 4, 5}
    assert guarded_lines("if '__main__' == __name__:\n    x = 1\n") == {2}
    assert guarded_lines("if __name__ != '__main__':\n    x = 1\n") == set()
