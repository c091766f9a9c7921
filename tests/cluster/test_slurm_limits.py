"""Site limits on a private Slurm whose MaxArraySize (4) is below the graph's widest level (issue 25, part 2).

Before the limits were read, a level of 9 bundles made ``sbatch`` answer
"Invalid job array specification" here.
"""

import json
import re
import threading
import time

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mempamal as mp

from conftest import assert_matches_sklearn
from private_slurm import private_slurm_fixture

X, y = load_iris(return_X_y=True)
private_slurm = private_slurm_fixture(nodes=2, conf=("MaxArraySize=4",))


@pytest.fixture
def cluster(private_slurm, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", private_slurm.conf)
    yield private_slurm
    private_slurm.cancel_all()


def _experiment():
    # 3 x 3 inner splits x 3 grid points = 27 fits in level 0
    return mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0, 10.0]}, cv=3, inner_cv=3)


def _record(workflow):
    return json.loads((workflow.workdir / "submissions" / "slurm.json").read_text())


def test_new_options_are_refused_before_anything_is_written(tmp_path):
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd")
    for options, message in [
        ({"array_parallelism": 0}, "The 'array_parallelism' parameter of the 'slurm' backend must be an int in "
                                   "the range [1, inf) or None; got 0"),
        ({"max_queued_jobs": "10"}, "The 'max_queued_jobs' parameter of the 'slurm' backend must be an int in "
                                    "the range [1, inf) or None; got '10'"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            workflow.run(backend="slurm", progress=False, **options)
    assert not (workflow.workdir / "submissions").exists()


def test_levels_wider_than_max_array_size_are_cut_and_chained(cluster, tmp_path):
    refused = cluster.run("sbatch", "--array=0-8", "--wrap", "true")  # what a 9-bundle level used to get
    assert refused.returncode != 0 and "Invalid job array specification" in refused.stderr
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    results = workflow.run(backend="slurm", tasks_per_job=3, progress=False, poll_seconds=0.2)
    assert_matches_sklearn(results, _experiment(), X, y)
    record = _record(workflow)
    assert record["limits"]["max_array_size"] == 4
    arrays = record["arrays"]
    assert all(array["size"] <= 4 for array in arrays)
    level0 = [index for index, array in enumerate(arrays) if array["level"] == 0]
    width = sum(arrays[index]["size"] for index in level0)  # 12 bundles of 3 fits (with the final search's)
    assert width >= 9 and len(level0) == -(-width // 4)
    for array in arrays:  # a level above waits for every piece of the level it needs
        if array["level"] == 1:
            assert set(level0) <= set(array["after"]), array


def test_throttle_and_waves_keep_the_queue_small(cluster, tmp_path):
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    seen, done = [], threading.Event()

    def watch_queue():
        while not done.is_set():
            answer = cluster.run("squeue", "-h", "-r", "-o", "%i|%T")
            seen.append([line.split("|") for line in answer.stdout.splitlines()])
            time.sleep(0.1)

    watcher = threading.Thread(target=watch_queue)
    watcher.start()
    try:
        results = workflow.run(backend="slurm", tasks_per_job=3, array_parallelism=1, max_queued_jobs=3,
                               progress=False, poll_seconds=0.2)
    finally:
        done.set()
        watcher.join()
    assert_matches_sklearn(results, _experiment(), X, y)
    record = _record(workflow)
    assert record["limits"]["queue_limit"] == 3 and all(array["size"] <= 3 for array in record["arrays"])
    level0 = [array["size"] for array in record["arrays"] if array["level"] == 0]
    assert len(level0) == -(-sum(level0) // 3) >= 3  # pieces of 3, submitted in waves
    assert max(len(jobs) for jobs in seen) <= 3, max(seen, key=len)
    for jobs in seen:  # %1: one running element per array at a time
        running = [job.split("_")[0] for job, state in jobs if state == "RUNNING"]
        assert len(running) == len(set(running)), jobs


def test_time_limit_from_the_estimate_unless_given(cluster, tmp_path):
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    estimate = workflow.estimate(n_jobs=1)  # measured costs for every task, run locally
    assert estimate.sample
    workflow.run(backend="slurm", tasks_per_job=3, progress=False, poll_seconds=0.2)
    limits = [array["time"] for array in _record(workflow)["arrays"]]
    assert limits and all(limit is not None and int(limit) >= 5 for limit in limits), limits
    again = _experiment().build(X, y, workdir=tmp_path / "wd2", chunk_size=1)
    again.run(backend="slurm", tasks_per_job=3, progress=False, poll_seconds=0.2)  # nothing measured yet
    assert all(array["time"] is None for array in _record(again)["arrays"])  # never from guesses
