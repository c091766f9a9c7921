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
from .models import save_model
from .search import best_index, cv_results


class TaskError(RuntimeError):
    """A task could not run; the message names the task and the cause."""


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
    results = evaluate_points(
        context.estimator, context.candidates, record.points, context.prefix_keys,
        data, context.scorer, context.metrics, context.error_score,
    )
    return {
        "points": record.points,
        "scores": {m: [r["scores"][m] for r in results] for m in context.metrics},
        "fit_time": [r["fit_time"] for r in results],
        "score_time": [r["score_time"] for r in results],
        "fit_failed": [r["fit_failed"] for r in results],
        "errors": [r["error"] for r in results],
    }


def _gather_inner_tables(context, record):
    """Per-candidate, per-split tables of a search from the outputs of its ``fit`` deps.

    ``record`` is a ``select-o<k>`` task (the search of outer fold ``k``) or
    ``select-all`` (``outer`` None: the search on all the data).
    """
    n_candidates = len(context.candidates)
    n_splits = context.n_inner_splits(record.split_set, record.outer)
    nan = float("nan")
    scores = {m: [[nan] * n_splits for _ in range(n_candidates)] for m in context.metrics}
    fit_times = [[0.0] * n_splits for _ in range(n_candidates)]
    score_times = [[0.0] * n_splits for _ in range(n_candidates)]
    errors = [[None] * n_splits for _ in range(n_candidates)]
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
    # GridSearchCV's order: candidate by candidate, split by split.
    return scores, fit_times, score_times, [error for row in errors for error in row]


def _inner_search(context, record):
    """The search of a ``select``/``select-all`` task from its ``fit`` outputs.

    Returns the output fields of the inner tables and the best index
    (``best_index`` None and ``error`` set when every inner fit failed).
    """
    scores, fit_times, score_times, fit_errors = _gather_inner_tables(context, record)
    n_failed = sum(error is not None for error in fit_errors)
    stats = cv_results(context.candidates, scores, fit_times, score_times)
    n_fits = len(context.candidates) * len(fit_times[0])
    outcome = {"inner_scores": scores, "inner_fit_time": fit_times, "inner_score_time": score_times,
               "n_failed_fits": n_failed, "best_index": None, "error": None}
    if n_failed == n_fits:
        # GridSearchCV raises "All the N fits failed".
        outcome["error"] = _all_fits_failed_error(fit_errors)
    else:
        outcome["best_index"] = best_index(stats, context.refit, context.metrics)
    return outcome


def _run_select(context, record):
    """Pick the best grid point of one outer fold, refit it, score outer test."""
    outcome = _inner_search(context, record)
    if context.refit is False and outcome["error"] is None:
        return _unrefit_outer_fold(context, outcome)
    if outcome["best_index"] is None:
        # cross_validate turns GridSearchCV's error into error_score for
        # the outer fold, keeping the message.
        outcome.update(refit_time=0.0, test_scores={m: float(context.error_score) for m in context.metrics},
                       fit_time=0.0, score_time=0.0)
        return outcome
    estimator = context.estimator_with(outcome["best_index"])
    X_train, y_train, X_test, y_test = context.outer_split_data(record.split_set, record.outer)
    result = fit_and_score(estimator, X_train, y_train, X_test, y_test,
                           context.scorer, context.metrics, context.error_score)
    outcome.update(test_scores=result["scores"], fit_time=result["fit_time"],
                   score_time=result["score_time"], error=result["error"])
    outcome.update(_kept_estimator(context, record, estimator, result))
    return outcome


def _unrefit_outer_fold(context, outcome):
    """``refit=False``: cross_validate cannot score a search that refit nothing.

    ``GridSearchCV(refit=False)`` has no ``predict``: scikit-learn's scoring
    fails and the fold gets ``error_score`` (a warning, not a fit failure),
    or the error itself with ``error_score="raise"``.
    """
    message = "This 'GridSearchCV' has no attribute 'predict' (refit=False: no candidate was refit)"
    if isinstance(context.error_score, str):
        raise AttributeError(message)
    outcome.update(refit_time=0.0, test_scores={m: float(context.error_score) for m in context.metrics},
                   fit_time=0.0, score_time=0.0, scoring_error=message)
    return outcome


def _kept_estimator(context, record, estimator, result):
    """``return_estimator=True``: the fold's fitted estimator, stored as ``models/o<k>.pkl``.

    Only for the real data (permutations keep none); a fold whose fit failed
    keeps none (its entry of ``res.estimators_`` is None).
    """
    if not getattr(context.experiment, "return_estimator", False) or record.permutation is not None:
        return {}
    if result["fit_failed"]:
        return {"model": None}
    return {"model": save_model(context.workdir, f"o{record.outer}", estimator)}


def _run_select_all(context, record):
    """The final model: ``GridSearchCV(...).fit(X, y)`` from the ``fit-all`` outputs.

    The best point is refit on all the data and stored as
    ``models/final.pkl`` (plain CV: the estimator itself fitted on all the
    data); the output records its digest.  With ``refit=False`` nothing is
    refit, as GridSearchCV.
    """
    if context.candidates:
        outcome = _inner_search(context, record)
        if outcome["best_index"] is None or context.refit is False:
            outcome.update(model=None, refit_time=0.0)
            return outcome
    else:
        outcome = {"best_index": None, "error": None}
    estimator = context.estimator_with(outcome["best_index"])
    X, y = context.all_data()
    start = time.perf_counter()
    try:
        estimator.fit(X, y)
    except Exception as exc:
        if isinstance(context.error_score, str):  # "raise"
            raise
        # GridSearchCV.fit would raise; the outer folds' results stay usable
        # and the final-model attributes raise this error.
        outcome.update(model=None, refit_time=time.perf_counter() - start, error=f"{type(exc).__name__}: {exc}",
                       traceback=traceback.format_exc())
        return outcome
    outcome.update(refit_time=time.perf_counter() - start, model=save_model(context.workdir, "final", estimator))
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
    estimator = context.estimator_with(None)
    X_train, y_train, X_test, y_test = context.outer_split_data(record.split_set, record.outer)
    result = fit_and_score(estimator, X_train, y_train, X_test, y_test,
                           context.scorer, context.metrics, context.error_score)
    return {"test_scores": result["scores"], "fit_time": result["fit_time"],
            "score_time": result["score_time"], "error": result["error"],
            **_kept_estimator(context, record, estimator, result)}


def _run_final(context, record):
    """Gather every outer result into ``results.json``."""
    from .gather import gather_results

    results = gather_results(context, record)
    payload = json.dumps(results, allow_nan=True).encode("utf-8")
    store.atomic_write_bytes(Path(context.workdir) / store.RESULTS, payload)
    # The final output (stamped with the build id) vouches for results.json.
    return {"results": store.RESULTS, "results_sha256": hashlib.sha256(payload).hexdigest()}


_HANDLERS = {"fit": _run_fit, "select": _run_select, "score": _run_score, "final": _run_final,
             "fit-all": _run_fit, "select-all": _run_select_all}
