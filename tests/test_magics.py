"""The magics in a real IPython shell: same results as the API, one-line UsageErrors."""

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import mempamal as mp

from conftest import assert_matches_sklearn

BODY = """
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
estimator = LogisticRegression(max_iter=300)
param_grid = {"C": [0.1, 1.0]}
cv, inner_cv = 3, 2
"""


@pytest.fixture
def shell(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config)
    ip.run_line_magic("load_ext", "mempamal")
    yield ip
    ip.run_line_magic("unload_ext", "mempamal")
    InteractiveShell.clear_instance()


def test_cell_magic_runs_the_cell_experiment_and_stores_results(shell, tmp_path):
    shell.run_cell_magic("mempamal", "-n 1 -w wd -o res", BODY)
    results = shell.user_ns["res"]
    ns = shell.user_ns
    experiment = mp.Experiment(ns["estimator"], param_grid=ns["param_grid"], cv=3, inner_cv=2)
    assert_matches_sklearn(results, experiment, ns["X"], ns["y"])
    assert results.workdir == (tmp_path / "wd")


def test_preview_builds_but_runs_nothing_and_export_writes_the_file(shell, tmp_path):
    shell.run_cell_magic("mempamal", "-w wd --preview --export makefile:Makefile", BODY)
    workflow = mp.Workflow.open(tmp_path / "wd")
    assert workflow.status()["done"] == 0
    assert (tmp_path / "Makefile").read_text().count("mempamal task") == len(workflow.tasks)
    assert "mempamal_results" not in shell.user_ns


def test_line_commands_status_results_export_resume(shell, tmp_path):
    shell.run_cell_magic("mempamal", "-n 1 -w wd --preview", BODY)
    shell.run_line_magic("mempamal", "resume -n 1")
    first = shell.user_ns["mempamal_results"].test_scores["score"]
    del shell.user_ns["mempamal_results"]
    shell.run_line_magic("mempamal", "results wd")
    np.testing.assert_array_equal(shell.user_ns["mempamal_results"].test_scores["score"], first)
    shell.run_line_magic("mempamal", "export commands cmds.json")
    assert (tmp_path / "cmds.json").exists()
    assert shell.run_line_magic("mempamal", "status") is None


@pytest.mark.parametrize("line, body, message", [
    ("-n 1", "x = 1", "must define 'estimator', 'X' and 'y'; missing"),
    ("-n 1 -w wd2", BODY + "scoring = 'acuracy'", "'scoring' parameter"),
    ("-n 1 --export yaml", BODY, "FMT:PATH"),
    ("-n 1 --nope", BODY, "unrecognized arguments"),
    ("-n 1", BODY + "1 / 0", "the cell raised ZeroDivisionError; nothing was built"),
])
def test_bad_cells_raise_one_line_usage_errors(shell, line, body, message):
    with pytest.raises(UsageError, match=message):
        shell.run_cell_magic("mempamal", line, body)


def test_usage_errors_print_one_line_without_traceback(shell, capsys):
    result = shell.run_cell("%mempamal bogus")
    assert isinstance(result.error_in_exec, UsageError)
    printed = capsys.readouterr()
    assert "needs a command" in printed.out + printed.err and "Traceback" not in printed.out + printed.err


def test_different_experiment_in_same_workdir_needs_overwrite(shell):
    shell.run_cell_magic("mempamal", "-n 1 -w wd", BODY)
    with pytest.raises(UsageError, match="--overwrite"):
        shell.run_cell_magic("mempamal", "-n 1 -w wd", BODY.replace("[0.1, 1.0]", "[0.5]"))
    shell.run_cell_magic("mempamal", "-n 1 -w wd --overwrite -o res", BODY.replace("[0.1, 1.0]", "[0.5]"))
    assert shell.user_ns["res"].best_params[0] == {"C": 0.5}


def test_cluster_start_run_on_engines_and_stop(shell):
    shell.run_line_magic("mempamal", "cluster start -n 1")
    try:
        shell.run_cell_magic("mempamal", "-b ipyparallel -w wd -o res", BODY)
    finally:
        shell.run_line_magic("mempamal", "cluster stop")
    hosts = {row.pid for row in shell.user_ns["res"].timeline().itertuples() if row.kind == "fit"}
    assert len(hosts) == 1  # the one engine
    with pytest.raises(UsageError, match="no cluster is running"):
        shell.run_line_magic("mempamal", "cluster stop")


def test_gui_returns_a_builder_seeing_the_notebook_variables(shell):
    from mempamal.jupyter import ExperimentBuilder

    shell.run_cell(BODY + "import numpy as np\nsubjects = np.arange(len(y)) % 3\n")
    builder = shell.run_line_magic("mempamal", "gui")
    assert isinstance(builder, ExperimentBuilder)
    assert "estimator (notebook)" in builder.estimator.options
    assert {"X", "y", "subjects"} <= set(builder.X.options) and "subjects" in builder.groups.options
    builder.estimator.value = "estimator (notebook)"
    builder.X.value, builder.y.value = "X", "y"
    assert not builder.run_button.disabled
    assert builder.experiment().estimator.get_params() == shell.user_ns["estimator"].get_params()


def test_optional_settings_come_only_from_the_cell_itself(shell, capsys):
    """A param_grid left by an earlier cell must not turn a plain CV into a nested one."""
    shell.run_cell_magic("mempamal", "-n 1 -w nested", BODY)
    capsys.readouterr()
    shell.run_cell_magic("mempamal", "-n 1 -w plain -o plain", "estimator = LogisticRegression(max_iter=300)\ncv = 4")
    plain = shell.user_ns["plain"]
    assert not plain.nested and plain.n_outer == 4
    printed = capsys.readouterr().out
    assert "not set in this cell, so not used: param_grid, inner_cv" in printed
    ns = shell.user_ns
    assert_matches_sklearn(plain, mp.Experiment(ns["estimator"], cv=4), ns["X"], ns["y"])


SLOW_BODY = BODY.replace("estimator = LogisticRegression(max_iter=300)", """
import time
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
def slow_identity(X):
    time.sleep(0.05)
    return X
estimator = make_pipeline(FunctionTransformer(slow_identity), LogisticRegression(max_iter=300))
""").replace('param_grid = {"C": [0.1, 1.0]}', 'param_grid = {"logisticregression__C": [0.1, 1.0]}')


def test_async_cell_returns_a_run_then_wait_stores_sklearns_results(shell, capsys):
    shell.run_cell_magic("mempamal", "-a -n 1 -w wd -o res", SLOW_BODY)
    run = shell.user_ns["res"]
    assert isinstance(run, mp.Run) and not run.done()
    assert "submitted; the kernel is free" in capsys.readouterr().out
    shell.run_line_magic("mempamal", "wait")
    results = shell.user_ns["res"]
    assert isinstance(results, mp.Results)
    ns = shell.user_ns
    experiment = mp.Experiment(ns["estimator"], param_grid=ns["param_grid"], cv=3, inner_cv=2)
    assert_matches_sklearn(results, experiment, ns["X"], ns["y"])


def test_cancel_stops_an_async_run_and_resume_finishes_it(shell, capsys):
    shell.run_cell_magic("mempamal", "--async -n 1 -w wd -o res", SLOW_BODY)
    shell.run_line_magic("mempamal", "cancel")
    assert shell.user_ns["res"].state == "cancelled"
    assert "finished tasks are kept" in capsys.readouterr().out
    with pytest.raises(UsageError, match="%mempamal wait: the run was cancelled"):
        shell.run_line_magic("mempamal", "wait")
    shell.run_line_magic("mempamal", "resume -n 1 -o done")
    assert mp.Workflow.open("wd").status()["pending"] == 0


def test_wait_and_attach_without_a_submitted_run(shell, capsys):
    shell.run_cell_magic("mempamal", "-w wd --preview", BODY)
    with pytest.raises(UsageError, match="no run of .* was submitted or attached"):
        shell.run_line_magic("mempamal", "wait")
    capsys.readouterr()
    shell.run_line_magic("mempamal", "attach wd")
    assert "nothing is running in" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_of_every_command(shell, capsys, flag):
    shell.run_line_magic("mempamal", flag)
    out = capsys.readouterr().out
    for command in ("%%mempamal [-b BACKEND]", "--async", "status", "wait", "cancel", "attach", "gui", "cluster"):
        assert command in out


def test_terminal_ipython_prints_readable_text_for_every_display(shell, capsys):
    shell.run_cell_magic("mempamal", "-w wd --preview", BODY)
    shell.run_cell_magic("mempamal", "-n 1 -w wd -o res", BODY)
    shell.run_line_magic("mempamal", "status")
    shell.run_cell_magic("mempamal", "-a -n 1 -w wd2 -o later", BODY)
    shell.run_line_magic("mempamal", "wait")
    out = capsys.readouterr().out
    assert "IPython.core.display" not in out and "object at 0x" not in out
    assert "<Workflow " in out and "<Results " in out and "on local:" in out


def test_cell_with_param_distributions_equals_randomized_search_and_prints_plain_numbers(shell, capsys):
    body = BODY.replace('param_grid = {"C": [0.1, 1.0]}',
                        'from scipy.stats import loguniform\n'
                        'param_distributions = {"C": loguniform(1e-2, 1e1)}\nn_iter = 3\nrandom_state = 5')
    shell.run_cell_magic("mempamal", "-n 1 -w rnd -o res", body)
    results, ns = shell.user_ns["res"], shell.user_ns
    assert results.experiment.n_iter == 3 and results.experiment.param_grid is None
    experiment = mp.Experiment(ns["estimator"], param_distributions=ns["param_distributions"], n_iter=3,
                               random_state=5, cv=3, inner_cv=2)
    assert_matches_sklearn(results, experiment, ns["X"], ns["y"])
    assert "np.float64" not in capsys.readouterr().out
    assert "np.float64" not in results.to_frame().to_string()


def test_cell_flags_reach_the_experiment_and_params_goes_to_build(shell):
    import inspect

    from sklearn.model_selection import cross_validate

    body = (BODY.replace('param_grid = {"C": [0.1, 1.0]}\n', "").replace("cv, inner_cv = 3, 2", "cv = 3")
            + "final_fit = False\nreturn_estimator = True\nreturn_train_score = True\npredict = 'predict_proba'\n"
            + "import numpy as np\nparams = {'sample_weight': np.linspace(0.5, 2.0, len(y))}\n")
    if "params" not in inspect.signature(mp.Experiment.build).parameters:
        # Until build takes metadata, the cell says so in one line (params went to build, not Experiment).
        with pytest.raises(UsageError, match="params"):
            shell.run_cell_magic("mempamal", "-n 1 -w flags -o res", body)
        return
    shell.run_cell_magic("mempamal", "-n 1 -w flags -o res", body)
    results, ns = shell.user_ns["res"], shell.user_ns
    experiment = results.experiment
    assert (experiment.final_fit, experiment.return_estimator, experiment.return_train_score,
            experiment.predict) == (False, True, True, "predict_proba")
    reference = cross_validate(ns["estimator"], ns["X"], ns["y"], cv=3, params=ns["params"])
    np.testing.assert_allclose(results.test_scores["score"], reference["test_score"], rtol=0, atol=1e-12)
