"""What a newcomer meets at the command line: help, version, suggestions, stdout export, exit codes."""

import json
import os
import subprocess
import sys

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp


def cli(*args, cwd=None):
    # A wide terminal: argparse wraps the help at $COLUMNS.
    return subprocess.run([sys.executable, "-m", "mempamal", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "COLUMNS": "200"})


def finished_workdir(tmp_path):
    X, y = load_iris(return_X_y=True)
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=2, inner_cv=2,
                               final_fit=False)
    workflow = experiment.build(X, y, workdir=tmp_path / "wd")
    workflow.run(n_jobs=1, progress=False)
    return workflow


def test_bare_mempamal_prints_the_help_and_every_command():
    done = cli()
    assert done.returncode == 0 and done.stderr == ""
    for command in ("task", "run", "estimate", "status", "results", "export", "demo"):
        assert command in done.stdout
    assert "exit status" in done.stdout


def test_version_is_the_package_version():
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"mempamal {mp.__version__}"


def test_a_misspelled_command_gets_the_closest_name_and_exit_2():
    done = cli("stauts", "runs/x")
    assert done.returncode == 2
    assert "did you mean 'status'?" in done.stderr and done.stderr.startswith("usage: mempamal")


def test_backend_choices_belong_to_the_parser_and_nothing_is_written(tmp_path):
    done = cli("demo", "-b", "nope", "-w", tmp_path / "demo")
    assert done.returncode == 2 and "invalid choice: 'nope'" in done.stderr and "local" in done.stderr
    assert not (tmp_path / "demo").exists()
    helped = cli("run", "--help").stdout
    assert "local, ipyparallel, dask, soma-workflow, slurm (default: local)" in helped
    for option in ("-n N", "WORKDIR", "--no-progress"):
        assert option in helped
    assert "--json" in cli("status", "--help").stdout and "print the counts as JSON" in cli("status", "--help").stdout


def test_export_to_dash_writes_standard_output(tmp_path):
    workflow = finished_workdir(tmp_path)
    done = cli("export", workflow.workdir, "-o", "-", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [entry["id"] for entry in json.loads(done.stdout)] == [task.id for task in workflow.tasks]
    assert not (tmp_path / "-").exists()


def test_run_on_a_finished_workdir_says_nothing_to_do(tmp_path):
    workflow = finished_workdir(tmp_path)
    done = cli("run", workflow.workdir, "--no-progress")
    assert done.returncode == 0, done.stderr
    n = len(workflow.tasks)
    assert done.stdout.startswith(f"nothing to do: {n}/{n} tasks done")


def test_a_failed_command_is_one_line_and_exit_1(tmp_path):
    done = cli("status", tmp_path / "nowhere")
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("mempamal status: error:")
