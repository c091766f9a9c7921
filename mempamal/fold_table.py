"""The outer folds finished so far, as a table: the partial results of a run in progress."""

from . import store
from .store import integrity
from .store.records import ABSENT, SelectRecord, TaskOutput
from .result_values import plain_value


#: The columns of :meth:`mempamal.Results.timeline`.
TIMELINE_COLUMNS = ("task", "kind", "start", "ready", "end", "host", "pid")


def timeline_frame(workdir):
    """Every finished task of ``workdir``: kind, start, ready, end, host, pid (``Results.timeline``).

    Examples
    --------
    >>> list(timeline_frame(wf.workdir).columns)
    ['task', 'kind', 'start', 'ready', 'end', 'host', 'pid']
    """
    import pandas as pd

    from .graph.state import TaskGraph

    rows = []
    # Trusted outputs only (complete, stamped): outputs are not fsynced, and
    # after an OS crash a listed file may be empty, torn or another task's.
    for task_id in sorted(TaskGraph.open(workdir).done_ids()):
        output = TaskOutput.from_json(read_done_output(workdir, task_id))
        run = output.run
        rows.append(dict(zip(TIMELINE_COLUMNS, (output.task, output.kind, run.start, run.ready, run.end, run.host,
                                                run.pid))))
    return pd.DataFrame(rows, columns=list(TIMELINE_COLUMNS))


def fitted_model_record(workdir, record):
    """The record of the model ``record`` (of results.json) in the output of the task that fitted it.

    That output holds the sha256 of the pickle, checked before anything
    is unpickled; results.json keeps only the model's value digest.

    Examples
    --------
    >>> record = mp.Results.load(wf.workdir).raw["estimators"][0]
    >>> sorted(fitted_model_record(wf.workdir, record))
    ['digest', 'name', 'sha256', 'task']
    """
    from .graph.state import TaskGraph

    if "sha256" in record:  # results.json of an older mempamal
        return record
    graph = TaskGraph.open(workdir)
    task = graph.task(record["task"])
    path = store.output_path(workdir, task.id)
    fitted = TaskOutput.from_json(integrity.read_output(path, task.id, graph.manifest["build_id"],
                                                        task.definition)).record.model
    if not fitted or fitted.get("name") != record["name"] or fitted.get("digest") != record.get("digest"):
        raise store.WorkdirError(f"{path} records no model {record['name']!r} as results.json does; run "
                                 "the workdir again (`mempamal run`).")
    return fitted


def read_done_output(workdir, task_id):
    """The output of a task a scan found done, its digest checked again (it may have changed since).

    Examples
    --------
    >>> read_done_output(wf.workdir, "final")["task"]
    'final'
    """
    output, problem = integrity.load_output(store.output_path(workdir, task_id))
    if problem is not None:
        raise store.WorkdirError(f"{problem}; run the workdir again (mempamal run runs that task again).")
    return output


def finished_folds(workflow):
    """Outer folds finished so far, from their ``select``/``score`` outputs.

    The partial results of a run in progress, with the columns of
    :meth:`mempamal.Results.to_frame` (index ``outer_fold``; permutations left out).
    Once the run is complete it equals ``Results.load(workdir).to_frame()``.

    Examples
    --------
    >>> finished_folds(mp.Workflow.open("runs/iris")).drop(columns=["fit_time", "score_time"])
                test_accuracy  param_clf__C error
    outer_fold
    0                    1.00          10.0  None
    1                    0.96          10.0  None
    2                    0.96          10.0  None
    """
    import cloudpickle
    import pandas as pd

    done = workflow.done_ids()
    records = {outer: TaskOutput.from_json(read_done_output(workflow.workdir, task_id)).record
               for outer, task_id in workflow.table.fold_task_ids() if task_id in done}
    if not records:
        return pd.DataFrame(index=pd.Index([], name="outer_fold"))
    folds = sorted(records)
    metrics = list(records[folds[0]].test_scores)
    frame = pd.DataFrame({f"test_{m}": [records[k].test_scores[m] for k in folds] for m in metrics},
                         index=pd.Index(folds, name="outer_fold"))
    if records[folds[0]].train_scores is not ABSENT:
        for metric in metrics:
            frame[f"train_{metric}"] = [records[k].train_scores[metric] for k in folds]
    if isinstance(records[folds[0]], SelectRecord):  # nested: each fold's best point
        store.check_workdir_is_safe(workflow.workdir)  # unpickling runs code
        candidates = store.load_pickle(workflow.workdir, workflow.workdir / store.EXPERIMENT,
                                       cloudpickle.load).candidates
        best = [None if records[k].best_index is None else candidates[records[k].best_index] for k in folds]
        for key in sorted({key for params in best if params for key in params}):
            frame[f"param_{key}"] = [None if params is None else plain_value(params.get(key)) for params in best]
    frame["fit_time"] = [records[k].fit_time for k in folds]
    frame["score_time"] = [records[k].score_time for k in folds]
    frame["error"] = [records[k].error for k in folds]
    return frame


def raise_or_warn_about_fit_failures(raw):
    """scikit-learn's verdict on the outer fits: raise when all failed, warn when some did.

    ``cross_validate`` ends with the same call on the same error texts, so
    the message (counts, grouping of identical errors) is scikit-learn's.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     raise_or_warn_about_fit_failures({"errors": [None, "ValueError: bad C", None]})
    >>> print(type(caught[0].message).__name__, str(caught[0].message).splitlines()[1])
    FitFailedWarning 1 fits failed out of a total of 3.
    """
    from ._sklearn_compat import _warn_or_raise_about_fit_failures

    error_score = raw.get("error_score", float("nan"))
    _warn_or_raise_about_fit_failures([{"fit_error": error} for error in raw["errors"]], error_score)
