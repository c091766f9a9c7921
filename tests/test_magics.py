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


def test_reuse_grows_the_workdirs_experiment(shell, tmp_path):
    shell.run_cell_magic("mempamal", "-n 1 -w wd", BODY)
    grown = BODY.replace("[0.1, 1.0]", "[0.1, 1.0, 10.0]")
    shell.run_cell_magic("mempamal", "-n 1 -w wd --reuse -o res", grown)
    assert mp.Workflow.open(tmp_path / "wd").status().reused["kept_points"] == 2 * (3 * 2 + 2)  # + final search
    ns = shell.user_ns
    assert_matches_sklearn(ns["res"], mp.Experiment(ns["estimator"], param_grid=ns["param_grid"], cv=3, inner_cv=2),
                           ns["X"], ns["y"])


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


# One parser per command: an option a command does not take is refused in one line naming both.
@pytest.mark.parametrize("line, command, option", [
    ("status WD --preview", "status", "--preview"),
    ("status -b dask", "status", "-b"),
    ("results wd -n 2", "results", "-n"),
    ("wait --preview", "wait", "--preview"),
    ("cancel -o res", "cancel", "-o"),
    ("attach wd --overwrite", "attach", "--overwrite"),
    ("export commands cmds.json -n 2", "export", "-n"),
    ("resume --preview", "resume", "--preview"),
    ("resume --n 2", "resume", "--n"),  # no abbreviations: every option is spelt as the help shows it
    ("gui -w wd", "gui", "-w"),
    ("cluster start -b local", "cluster start", "-b"),
    ("cluster stop -n 2", "cluster stop", "-n"),
])
def test_each_line_command_refuses_options_it_does_not_take(shell, capsys, line, command, option):
    result = shell.run_cell(f"%mempamal {line}")
    assert isinstance(result.error_in_exec, UsageError)
    (message,) = str(result.error_in_exec).splitlines()
    assert message.startswith(f"%mempamal {command}: unrecognized arguments: {option}")
    assert f"(usage: %mempamal {command}" in message
    printed = capsys.readouterr()
    assert "Traceback" not in printed.out + printed.err


@pytest.mark.parametrize("line, option", [("-n 1 --prev", "--prev"), ("-n 1 status", "status"),
                                          ("-n 1 --n-engines 2", "--n-engines")])
def test_cell_refuses_options_it_does_not_take_before_running_the_body(shell, tmp_path, line, option):
    with pytest.raises(UsageError) as raised:
        shell.run_cell_magic("mempamal", line, BODY)
    assert str(raised.value).startswith(f"%%mempamal: unrecognized arguments: {option}")
    assert "(usage: %%mempamal [-b BACKEND]" in str(raised.value)
    assert "estimator" not in shell.user_ns and list(tmp_path.iterdir()) == []


def test_every_command_accepts_each_of_its_options(shell, tmp_path, capsys):
    shell.run_cell_magic("mempamal", "--backend local --n-jobs 1 --workdir wd --output pre --preview "
                                     "--export makefile:Makefile --overwrite", BODY)
    assert mp.Workflow.open(tmp_path / "wd").status()["done"] == 0 and (tmp_path / "Makefile").exists()
    ns = shell.user_ns
    experiment = mp.Experiment(ns["estimator"], param_grid=ns["param_grid"], cv=3, inner_cv=2)
    shell.run_line_magic("mempamal", "resume wd --backend local --n-jobs 1 --output resumed")
    assert_matches_sklearn(ns["resumed"], experiment, ns["X"], ns["y"])
    shell.run_line_magic("mempamal", "results wd --output loaded")
    np.testing.assert_array_equal(ns["loaded"].test_scores["score"], ns["resumed"].test_scores["score"])
    shell.run_line_magic("mempamal", "status wd")
    shell.run_line_magic("mempamal", "export commands cmds.json wd")
    assert (tmp_path / "cmds.json").exists()
    shell.run_line_magic("mempamal", "attach wd")
    shell.run_cell_magic("mempamal", "-b local -n 1 -w wd2 -o submitted -a", BODY)
    shell.run_line_magic("mempamal", "wait wd2 -o waited")
    assert_matches_sklearn(ns["waited"], experiment, ns["X"], ns["y"])
    shell.run_line_magic("mempamal", "cancel wd2")  # a finished run: nothing left to stop
    assert "nothing is running in" in capsys.readouterr().out


def test_resume_runs_on_the_backend_its_own_line_names(shell):
    """-b on `%mempamal resume` reaches the run (the cell's backend is only the default)."""
    shell.run_cell_magic("mempamal", "-n 1 -w wd --preview", BODY)
    with pytest.raises(UsageError, match="no-such-backend"):
        shell.run_line_magic("mempamal", "resume -b no-such-backend")
    shell.run_line_magic("mempamal", "resume -b local -n 1 -o res")
    assert mp.Workflow.open("wd").status()["pending"] == 0


def test_help_of_the_magic_lists_every_command_with_its_options(shell, capsys):
    from mempamal.jupyter.magic_options import usage
    from mempamal.jupyter.magics import COMMANDS

    shell.run_cell("%mempamal?")
    out = capsys.readouterr().out
    for func in COMMANDS.values():
        section = out[out.index(usage(func) + "\n"):].split("\n\n")[0]
        flags = [flag for action in func.parser._actions for flag in action.option_strings]
        metavars = [action.metavar for action in func.parser._actions if not action.option_strings]
        assert all(word in section for word in flags + metavars), (usage(func), section)
    assert len(COMMANDS) == 12  # the cell and eleven line commands
    shell.run_line_magic("mempamal", "resume -h")
    printed = capsys.readouterr().out
    assert printed.startswith("%mempamal resume [-b BACKEND] [-n N] [-o NAME] [WORKDIR]") and "status" not in printed


IPYTHON_BODY = BODY.replace("cv, inner_cv = 3, 2", """\
files = !ls
names = %who_ls
%time inner_cv = 2
cv = 3
""")


def test_cell_body_is_ipython_code_and_gives_sklearns_results(shell, tmp_path):
    """!ls, a line magic's value and %time work in the body; inner_cv set inside %time is used."""
    (tmp_path / "marker.txt").write_text("")
    shell.run_cell_magic("mempamal", "-n 1 -w wd -o res", IPYTHON_BODY)
    ns = shell.user_ns
    assert "marker.txt" in ns["files"] and "estimator" in ns["names"]
    experiment = mp.Experiment(ns["estimator"], param_grid=ns["param_grid"], cv=3, inner_cv=2)
    assert_matches_sklearn(ns["res"], experiment, ns["X"], ns["y"])


def test_run_cell_body_returns_the_names_the_body_set(shell, tmp_path):
    from mempamal.jupyter.cell_body import run_cell_body

    shell.run_cell("cv = 5\nkept = 1")
    defined = run_cell_body(shell, "files = !ls\n%time cv = 3\nimport numpy as np")
    assert {"files", "cv", "np"} <= defined and "kept" not in defined
    assert shell.user_ns["cv"] == 3 and isinstance(shell.user_ns["files"], list)


def test_failing_body_shows_the_users_error_and_writes_no_workdir(shell, tmp_path, capsys):
    import re

    cell = "%%mempamal -n 1 -w wd\n" + IPYTHON_BODY + "print(undefined_name)\n"
    result = shell.run_cell(cell)
    assert isinstance(result.error_in_exec, UsageError)
    assert str(result.error_in_exec) == "%%mempamal: the cell raised NameError; nothing was built."
    printed = capsys.readouterr()
    printed = re.sub(r"\x1b\[[0-9;]*m", "", printed.out + printed.err)
    assert "NameError: name 'undefined_name' is not defined" in printed
    line_number = cell.splitlines().index("print(undefined_name)") + 1  # as the user sees the cell
    assert re.search(rf"-+> {line_number} print\(undefined_name\)", printed), printed
    assert "cell_body.py" not in printed  # the user's frames only
    assert not (tmp_path / "wd").exists() and not (tmp_path / "mempamal-runs").exists()
