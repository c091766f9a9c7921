"""Site limits on a private Slurm whose MaxArraySize (4) is below the graph's widest level (issue 25, part 2).

Before the limits were read, a level of 9 bundles made ``sbatch`` answer
"Invalid job array specification" here.
"""

import getpass
import json
import re
import subprocess
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
    # 3 x 2 inner splits x 2 grid points = 12 fits in level 0: 6 bundles of 2, more than MaxArraySize
    return mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [0.1, 1.0]}, cv=3, inner_cv=2,
                         final_fit=False)


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
    results = workflow.run(backend="slurm", tasks_per_job=2, progress=False, poll_seconds=0.2)
    assert_matches_sklearn(results, _experiment(), X, y)
    record = _record(workflow)
    assert record["limits"]["max_array_size"] == 4
    arrays = record["arrays"]
    assert all(array["size"] <= 4 for array in arrays)
    assert all(array["time"] is None for array in arrays)  # nothing measured: no --time from guesses
    level0 = [index for index, array in enumerate(arrays) if array["level"] == 0]
    width = sum(arrays[index]["size"] for index in level0)
    assert width == 6 and [arrays[index]["size"] for index in level0] == [4, 2]
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
        results = workflow.run(backend="slurm", tasks_per_job=2, array_parallelism=2, max_queued_jobs=3,
                               progress=False, poll_seconds=0.2)
    finally:
        done.set()
        watcher.join()
    assert_matches_sklearn(results, _experiment(), X, y)
    record = _record(workflow)
    assert record["limits"]["queue_limit"] == 3 and all(array["size"] <= 3 for array in record["arrays"])
    level0 = [array["size"] for array in record["arrays"] if array["level"] == 0]
    assert level0 == [3, 3]  # 6 bundles: two pieces, the second submitted once the first left the queue
    assert max(len(jobs) for jobs in seen) <= 3, max(seen, key=len)
    for jobs in seen:  # %2: at most two running elements per array at a time
        running = [job.split("_")[0] for job, state in jobs if state == "RUNNING"]
        assert all(running.count(array) <= 2 for array in running), jobs
    assert any(len(jobs) == 3 for jobs in seen)  # the queue was filled up to the limit


def test_time_limit_from_the_estimate(cluster, tmp_path):
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    estimate = workflow.estimate(n_jobs=1)  # measured costs for every task, run locally
    assert estimate.sample
    results = workflow.run(backend="slurm", tasks_per_job=2, progress=False, poll_seconds=0.2)
    assert_matches_sklearn(results, _experiment(), X, y)
    arrays = _record(workflow)["arrays"]
    limits = [array["time"] for array in arrays]
    assert limits and all(limit is not None and int(limit) >= 5 for limit in limits), limits
    minutes = int(limits[0])  # what Slurm holds for the job (finished jobs stay MinJobAge=300 s)
    shown = cluster.run("scontrol", "show", "job", arrays[0]["job_id"]).stdout
    assert f"TimeLimit={minutes // 60:02d}:{minutes % 60:02d}:00" in shown, shown


def test_limits_read_from_the_default_cluster_with_accounting(monkeypatch):
    """Read-only: what scontrol and sacctmgr say on the CI's own Slurm (accounting on)."""
    from slurm_cluster import require_slurm

    from mempamal.backends.slurm.backend import _run
    from mempamal.backends.slurm.limits import read_limits

    monkeypatch.delenv("SLURM_CONF", raising=False)
    require_slurm(accounting=True)
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    expected = {name: int(re.search(rf"^{name}\s*=\s*(\d+)", config, re.MULTILINE).group(1))
                for name in ("MaxArraySize", "MaxJobCount")}
    limits = read_limits(_run)
    assert (limits.max_array_size, limits.max_job_count) == (expected["MaxArraySize"], expected["MaxJobCount"])
    assoc = subprocess.run(["sacctmgr", "-n", "-P", "show", "assoc", f"user={getpass.getuser()}",
                            "format=MaxSubmitJobs,GrpSubmitJobs"], capture_output=True, text=True).stdout
    assoc = assoc.replace("|", " ").split()
    assert limits.max_submit_jobs == (min(int(v) for v in assoc if v.isdigit()) if any(v.isdigit() for v in assoc)
                                      else None)


def test_a_failed_wave_stops_the_submission_and_names_what_was_not_submitted(cluster, tmp_path):
    experiment = mp.Experiment(LogisticRegression(max_iter=300), param_grid={"C": [1.0, -1.0]}, cv=3, inner_cv=2,
                               final_fit=False, error_score="raise")
    workflow = experiment.build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    with pytest.raises(mp.WorkflowError) as info:
        workflow.run(backend="slurm", tasks_per_job=2, max_queued_jobs=3, progress=False, poll_seconds=0.2)
    failed = info.value.failed
    assert "InvalidParameterError" in failed["fit-o0-i0-c1"] and "'C'" in failed["fit-o0-i0-c1"]
    # the selects wait for failed fits: never submitted, and said so
    assert failed["select-o0"].startswith("not submitted") and failed["final"].startswith("not submitted")
    assert {array["level"] for array in _record(workflow)["arrays"]} == {0}
    assert {f"fit-o{k}-i{j}-c0" for k in range(3) for j in range(2)} <= workflow.done_ids()
    assert cluster.run("squeue", "-h").stdout.strip() == ""


def test_an_exported_script_reads_max_array_size_and_runs_by_hand_to_sklearns_answer(cluster, tmp_path):
    workflow = _experiment().build(X, y, workdir=tmp_path / "wd", chunk_size=1)
    # the cluster's MaxArraySize (4), read with scontrol as on a login node: 12 fits become 3 arrays
    script = workflow.export(tmp_path / "submit.sh", format="slurm", tasks_per_job=1)
    assert "Arrays of at most 4 jobs" in script.read_text()
    submitted = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path,
                               env=cluster.env, timeout=60)
    assert submitted.returncode == 0, submitted.stderr  # no "Invalid job array specification"
    names = re.findall(r"mempamal: (level\d+-a\d+) \((\d+) jobs\)", submitted.stdout)
    assert [size for name, size in names if name.startswith("level0-")] == ["4", "4", "4"], submitted.stdout
    deadline = time.monotonic() + 300
    while cluster.run("squeue", "-h").stdout.strip():
        assert time.monotonic() < deadline, cluster.run("squeue", "-h").stdout
        time.sleep(0.5)
    assert_matches_sklearn(mp.Results.load(workflow.workdir), _experiment(), X, y)
