"""``run_task(workdir, task_id)``: the one function every backend runs.

A task reads the workdir, computes, and atomically writes its one output
``outputs/<id>.json``.  It never imports a backend or Jupyter code: it runs
headless on cluster nodes as ``python -m mempamal task WORKDIR ID``.

Estimator failures are *results* (the score becomes ``error_score`` and the
traceback is kept in the output, as scikit-learn does); only infrastructure
problems (missing or corrupt files, ``error_score="raise"``) raise
:class:`TaskError`, which names the task.
"""

import hashlib
import json
import os
import socket
import time
import traceback
import warnings
from pathlib import Path

from .. import store
from .context import load_context
from .fitting import evaluate_points, fit_and_score
from .search import best_index, cv_results


class TaskError(RuntimeError):
    """A task could not run; the message names the task and the cause.

    Examples
    --------
    >>> mp.run_task(wf.workdir, "fit-o9-i0-c0")                            # doctest: +SKIP
    Traceback (most recent call last):
    ...
    mempamal.engine.tasks.TaskError: No task 'fit-o9-i0-c0' in runs/iris.
    """


def run_task(workdir, task_id, *, force=False):
    """Run task ``task_id`` of ``workdir`` unless its output already exists.

    Returns ``"done"`` or ``"skipped"`` (a trusted output is already there).
    Before running, the workdir is verified: the task table against its
    digest in the manifest, the experiment, data and split files against
    their recorded sizes and digests.  An existing output is trusted only if
    it is complete and stamped with this task's id, this build's id and this
    task's definition; any other is run again (with a warning naming it).

    Examples
    --------
    >>> run_task("runs/iris", "fit-o0-i0-c0")    # doctest: +SKIP
    'done'
    """
    workdir = Path(workdir)
    target = store.output_path(workdir, task_id)
    started = time.time()
    try:
        context = load_context(workdir)
        record = context.task(task_id)
        if target.exists() and not force:
            problem = context.output_problem(task_id)
            if problem is None:
                return "skipped"
            warnings.warn(f"Not trusting an output: {problem}; running task {task_id!r} again.", stacklevel=2)
        handler = _HANDLERS[record.kind]
        with context.routing_context():  # the build's enable_metadata_routing
            payload = handler(context, record)
    except TaskError:
        raise
    except store.WorkdirError as exc:
        raise TaskError(f"Task {task_id!r} of {workdir} could not run: {exc}") from exc
    except Exception as exc:
        _write_log(workdir, task_id)
        raise TaskError(
            f"Task {task_id!r} of {workdir} failed: {type(exc).__name__}: {exc} "
            f"(traceback in {store.log_path(workdir, task_id)})"
        ) from exc
    # The stamp comes first: a reader can tell whose output this is.
    output = context.stamp(task_id)
    output.update(payload)
    output.update(kind=record.kind, start=started, end=time.time(), host=socket.gethostname(), pid=os.getpid())
    store.write_json(target, output)
    stale_log = store.log_path(workdir, task_id)
    if stale_log.exists():
        stale_log.unlink()
    return "done"


def _write_log(workdir, task_id):
    try:
        store.atomic_write_bytes(store.log_path(workdir, task_id), traceback.format_exc().encode())
    except OSError:
        pass  # The exception itself still reaches the caller.


def _run_fit(context, record):
    """Fit/score a chunk of grid points on one inner split of one outer fold."""
    data = context.inner_split_data(record.split_set, record.outer, record.inner)
    fit_params, score_params = context.inner_params(record.split_set, record.outer, record.inner)
    results = evaluate_points(
        context.estimator, context.candidates, record.points, context.prefix_keys,
        data, context.scorer, context.metrics, context.error_score,
        fit_params=fit_params, score_params=score_params, return_train_score=context.return_train_score,
    )
    output = {
        "points": record.points,
        "scores": {m: [r["scores"][m] for r in results] for m in context.metrics},
        "fit_time": [r["fit_time"] for r in results],
        "score_time": [r["score_time"] for r in results],
        "fit_failed": [r["fit_failed"] for r in results],
        "errors": [r["error"] for r in results],
    }
    if context.return_train_score:
        output["train_scores"] = {m: [r["train_scores"][m] for r in results] for m in context.metrics}
    return output


def _gather_inner_tables(context, record, with_train=False):
    """The inner search's tables from the ``fit`` outputs ``record`` depends on.

    Returns ``(scores, fit_times, score_times, errors)``; with
    ``with_train=True`` a fifth item, the train scores ``{metric:
    [[score per split] per candidate]}`` (None without ``return_train_score``).
    """
    n_candidates = len(context.candidates)
    n_splits = context.n_inner_splits(record.split_set, record.outer)
    nan = float("nan")
    scores = {m: [[nan] * n_splits for _ in range(n_candidates)] for m in context.metrics}
    fit_times = [[0.0] * n_splits for _ in range(n_candidates)]
    score_times = [[0.0] * n_splits for _ in range(n_candidates)]
    errors = [[None] * n_splits for _ in range(n_candidates)]
    train = ({m: [[nan] * n_splits for _ in range(n_candidates)] for m in context.metrics}
             if context.return_train_score else None)
    for dep in record.deps:
        output = context.read_output(dep)
        inner = context.task(dep).inner
        for row, point in enumerate(output["points"]):
            for metric in context.metrics:
                scores[metric][point][inner] = output["scores"][metric][row]
            fit_times[point][inner] = output["fit_time"][row]
            score_times[point][inner] = output["score_time"][row]
            if output["fit_failed"][row]:
                errors[point][inner] = output["errors"][row]
            if train is not None:
                for metric in context.metrics:
                    train[metric][point][inner] = output["train_scores"][metric][row]
    # GridSearchCV's order: candidate by candidate, split by split.
    tables = scores, fit_times, score_times, [error for row in errors for error in row]
    return tables + (train,) if with_train else tables


def _run_select(context, record):
    """Pick the best grid point of one outer fold, refit it, score outer test."""
    scores, fit_times, score_times, fit_errors, train_scores = _gather_inner_tables(context, record, with_train=True)
    n_failed = sum(error is not None for error in fit_errors)
    stats = cv_results(context.candidates, scores, fit_times, score_times, train_scores=train_scores)
    n_fits = len(context.candidates) * len(fit_times[0])
    outcome = {"inner_scores": scores, "inner_fit_time": fit_times, "inner_score_time": score_times,
               "n_failed_fits": n_failed}
    if train_scores is not None:
        outcome["inner_train_scores"] = train_scores
    if n_failed == n_fits:
        # GridSearchCV raises "All the N fits failed"; cross_validate turns
        # that into error_score for the outer fold, keeping the message.
        outcome.update(best_index=None, refit_time=0.0, error=_all_fits_failed_error(fit_errors),
                       test_scores={m: float(context.error_score) for m in context.metrics},
                       fit_time=0.0, score_time=0.0)
        if context.return_train_score:
            outcome["train_scores"] = dict(outcome["test_scores"])
        if context.predict_method is not None and record.permutation is None:
            outcome["predictions"] = None
        return outcome
    best = best_index(stats, context.refit, context.metrics)
    estimator = context.estimator_with(best)
    outcome.update(best_index=best, **_fit_score_predict(context, record, estimator))
    return outcome


def _fit_score_predict(context, record, estimator):
    """The outer fold's fit, test (and train) scores, and out-of-fold predictions."""
    X_train, y_train, X_test, y_test = context.outer_split_data(record.split_set, record.outer)
    fit_params, score_params = context.outer_params(record.split_set, record.outer)
    result = fit_and_score(estimator, X_train, y_train, X_test, y_test,
                           context.scorer, context.metrics, context.error_score,
                           fit_params=fit_params, score_params=score_params,
                           return_train_score=context.return_train_score)
    outcome = {"test_scores": result["scores"], "fit_time": result["fit_time"],
               "score_time": result["score_time"], "error": result["error"]}
    if context.return_train_score:
        outcome["train_scores"] = result["train_scores"]
    method = context.predict_method
    if method is not None and record.permutation is None:
        outcome["predictions"] = None
        if not result["fit_failed"]:
            from .predictions import fold_predictions, save_fold_predictions

            y = context.data[1]
            predictions = fold_predictions(estimator, context.outer_test_X(record.split_set, record.outer),
                                           y, method)
            outcome["predictions"] = save_fold_predictions(context.workdir, record.id, predictions, y)
    return outcome


def _all_fits_failed_error(fit_errors):
    """The error GridSearchCV.fit raises when every inner fit failed (its last line)."""
    from sklearn.model_selection._validation import _warn_or_raise_about_fit_failures

    try:
        _warn_or_raise_about_fit_failures([{"fit_error": error} for error in fit_errors], float("nan"))
    except ValueError as exc:
        return f"ValueError: {exc}"
    raise AssertionError("not every fit failed")


def _run_score(context, record):
    """Plain cross-validation: fit on outer train, score outer test."""
    return _fit_score_predict(context, record, context.estimator_with(None))


def _run_final(context, record):
    """Gather every outer result into ``results.json``."""
    from .gather import gather_results

    results = gather_results(context, record)
    payload = json.dumps(results, allow_nan=True).encode("utf-8")
    store.atomic_write_bytes(Path(context.workdir) / store.RESULTS, payload)
    # The final output (stamped with the build id) vouches for results.json.
    return {"results": store.RESULTS, "results_sha256": hashlib.sha256(payload).hexdigest()}


_HANDLERS = {"fit": _run_fit, "select": _run_select, "score": _run_score, "final": _run_final}
