"""The outer folds finished so far, as a table: the partial results of a run in progress."""

from . import store
from .store import integrity
from .result_values import plain_value


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
    :meth:`Results.to_frame` (index ``outer_fold``; permutations left out).
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
    outputs = {outer: read_done_output(workflow.workdir, task_id)
               for outer, task_id in workflow.table.fold_task_ids() if task_id in done}
    if not outputs:
        return pd.DataFrame(index=pd.Index([], name="outer_fold"))
    folds = sorted(outputs)
    metrics = list(outputs[folds[0]]["test_scores"])
    frame = pd.DataFrame({f"test_{m}": [outputs[k]["test_scores"][m] for k in folds] for m in metrics},
                         index=pd.Index(folds, name="outer_fold"))
    if "train_scores" in outputs[folds[0]]:
        for metric in metrics:
            frame[f"train_{metric}"] = [outputs[k]["train_scores"][metric] for k in folds]
    if "best_index" in outputs[folds[0]]:
        store.check_workdir_is_safe(workflow.workdir)  # unpickling runs code
        candidates = store.load_pickle(workflow.workdir, workflow.workdir / store.EXPERIMENT,
                                       cloudpickle.load).candidates
        best = [None if outputs[k]["best_index"] is None else candidates[outputs[k]["best_index"]] for k in folds]
        for key in sorted({key for params in best if params for key in params}):
            frame[f"param_{key}"] = [None if params is None else plain_value(params.get(key)) for params in best]
    for column in ("fit_time", "score_time", "error"):
        frame[column] = [outputs[k][column] for k in folds]
    return frame
