"""``run_task(workdir, task_id)``: the one function every backend runs.

A task reads the workdir, computes, and atomically writes its one output
``outputs/<id>.json``.  It never imports a backend or Jupyter code: it runs
headless on cluster nodes as ``python -m mempamal task WORKDIR ID``.

Estimator failures are *results* (the score becomes ``error_score`` and the
traceback is kept in the output, as scikit-learn does); only infrastructure
problems (missing or corrupt files, ``error_score="raise"``) raise
:class:`TaskError`, which names the task.
"""

import dataclasses
import hashlib
import json
import os
import socket
import time
import traceback
import warnings
from pathlib import Path

from .. import store
from ..exceptions import TaskError, VersionMismatchError
from .failures import _disk_full, _estimator_error, _write_log
from ..store import integrity
from ..store.records import (
    ABSENT, FinalRecord, FitRecord, InnerSearch, ScoreRecord, SelectAllRecord, SelectRecord, TaskOutput, TaskRun,
)
from .config import config_applied
from .context import load_context
from .fitting import EstimatorRaised, evaluate_points, fit_and_score
from .scoring import check_refit_for_scores, metric_names, with_metrics
from .models import save_model
from .search import best_index, cv_results
from .search_object import refit_into_search, set_search_results, unfitted_search


def run_task(workdir, task_id, *, force=False, allow_version_mismatch=False):
    """Run task ``task_id`` of ``workdir`` unless its output already exists.

    Returns ``"done"`` or ``"skipped"`` (a trusted output is already there).
    Before running, the workdir is verified: the task table against its
    digest in the manifest, the experiment, data and split files against
    their recorded sizes and digests.  An existing output is trusted only if
    it is complete and stamped with this task's id, this build's id and this
    task's definition; any other is run again (with a warning naming it).

    A process whose Python or library versions differ from the build's is
    refused (:class:`~mempamal.exceptions.VersionMismatchError`, naming each
    package and both versions) unless ``allow_version_mismatch=True``; the
    output records the versions it ran with, the host, and an allowed
    mismatch (:mod:`mempamal.engine.environment`).

    Examples
    --------
    >>> wf = mp.Experiment(estimator, cv=2).build(X, y, workdir="runs/cv2")
    >>> run_task("runs/cv2", "score-o0")
    'done'
    >>> run_task("runs/cv2", "score-o0")
    'skipped'
    """
    started = time.time()
    try:
        # Cached per worker process (engine/context.py): the experiment, task
        # table and data are loaded once; per task only a few stats check
        # that the manifest and the build files this task uses are unchanged.
        context = load_context(workdir, allow_version_mismatch)
        record = context.task(task_id)
        target = context.output_file(task_id)
        if not os.path.isdir(os.path.dirname(target)):
            # Outputs are sharded (store.output_shard); predictions go there too, before the output.
            store.make_private_dir(os.path.dirname(target))
        if not force and os.path.exists(target):
            problem = context.output_problem(task_id)
            if problem is None:
                return "skipped"
            warnings.warn(f"Not trusting an output: {problem}; running task {task_id!r} again.", stacklevel=2)
        context.check_build_files(record.split_set)
        # A worker's first task also loads the workdir (imports, unpickling):
        # timed apart so the timeline shows start-up, not a slow task.
        ready = time.time()
        handler = _HANDLERS[record.kind]
        # What the task itself costs (Workflow.estimate extrapolates from it):
        # CPU of every thread of this process (BLAS included) and its peak RSS.
        cpu_before, peak_before = time.process_time(), peak_rss_bytes()
        # The build's scikit-learn config (incl. enable_metadata_routing), whatever process runs this.
        with config_applied(context.sklearn_config), context.routing_context():
            payload = handler(context, record)
        cpu_seconds, peak_after = time.process_time() - cpu_before, peak_rss_bytes()
    except VersionMismatchError as exc:
        raise VersionMismatchError(f"Task {task_id!r} of {workdir} refused to run: {exc}", exc.mismatches) from None
    except TaskError:
        raise
    except store.DiskFullError as exc:  # a model, predictions or results.json: nothing recorded
        raise _disk_full(workdir, task_id, exc) from exc
    except EstimatorRaised as raised:
        raise _estimator_error(workdir, task_id, raised.original) from raised.original
    except store.WorkdirError as exc:
        raise TaskError(f"Task {task_id!r} of {workdir} could not run: {exc}") from exc
    except Exception as exc:
        _write_log(workdir, task_id)
        raise TaskError(
            f"Task {task_id!r} of {workdir} failed: {type(exc).__name__}: {exc} "
            f"(traceback in {store.log_path(workdir, task_id)})"
        ) from exc
    # The stamp comes first: a reader can tell whose output this is (store/records.py: the layout).
    run = TaskRun(start=started, ready=ready, end=time.time(), host=socket.gethostname(), pid=os.getpid(),
                  cpu_seconds=cpu_seconds, peak_rss_bytes=peak_after,
                  rss_growth_bytes=max(0, peak_after - peak_before), **context.environment_fields(allow_version_mismatch))
    output = TaskOutput(**context.stamp(task_id), kind=record.kind, record=payload, run=run).to_json()
    if not os.path.isdir(os.path.dirname(target)):
        # A rebuild during the task cleared outputs/ (shards included): the
        # output lands in the new build, which then refuses its stamp.
        store.make_private_dir(os.path.dirname(target))
    # Not fsynced (durable=False): every reader validates an output (complete
    # JSON, the digest of its content, this task's stamp), so what an OS crash
    # may leave -- an empty, torn or NUL-filled file -- counts as not done and
    # the task runs again.
    try:
        store.atomic_write_bytes(target, integrity.output_bytes(output), durable=False)
    except store.DiskFullError as exc:
        raise _disk_full(workdir, task_id, exc) from exc
    stale_log = context.log_file(task_id)
    if os.path.exists(stale_log):
        os.unlink(stale_log)
    return "done"


def peak_rss_bytes():
    """The peak resident memory of this process so far, in bytes (0 where unknown).

    ``ru_maxrss`` is the high-water mark of the whole process: a worker's
    peak after a task is at least what that task needed on top of the data
    it keeps loaded.  Linux counts it in KiB, macOS in bytes.

    Examples
    --------
    >>> peak_rss_bytes() > 0
    True
    """
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    import sys

    return int(peak if sys.platform == "darwin" else peak * 1024)


def _run_fit(context, record):
    """Fit/score a chunk of grid points on one inner split of one outer fold.

    Points kept from a previous build (``build(..., reuse=True)``) are not
    fitted again: their rows are taken as they are (the same floats).
    """
    kept = context.reused_rows(record.split_set, record.outer, record.inner)
    todo = [point for point in record.points if str(point) not in kept]
    computed = {}
    if todo:
        data, owned = context.inner_split_data(record.split_set, record.outer, record.inner)
        fit_params, score_params = context.inner_params(record.split_set, record.outer, record.inner)
        computed = dict(zip(todo, evaluate_points(
            context.estimator, context.candidates, todo, context.prefix_keys,
            data, context.scorer, context.metrics, context.error_score,
            fit_params=fit_params, score_params=score_params, return_train_score=context.return_train_score,
            data_owned=owned,
        )))
    results = [computed[point] if point in computed else kept[str(point)] for point in record.points]
    # A callable scorer may return a dict: its keys name the metrics.
    names = metric_names([r["scores"] for r in results if not r["fit_failed"]], context.metrics)
    train_scores = ABSENT
    if context.return_train_score:
        train_scores = {m: [with_metrics(r["train_scores"], names, _error_value(context))[m] for r in results]
                        for m in names}
    return FitRecord(
        points=list(record.points),
        scores={m: [with_metrics(r["scores"], names, _error_value(context))[m] for r in results] for m in names},
        fit_time=[r["fit_time"] for r in results],
        score_time=[r["score_time"] for r in results],
        fit_failed=[r["fit_failed"] for r in results],
        errors=[r["error"] for r in results],
        train_scores=train_scores,
    )


def _error_value(context):
    return float("nan") if isinstance(context.error_score, str) else float(context.error_score)


def _gather_inner_tables(context, record, with_train=False):
    """Per-candidate, per-split tables of a search from the outputs of its ``fit`` deps.

    ``record`` is a ``select-o<k>`` task (the search of outer fold ``k``) or
    ``select-all`` (``outer`` None: the search on all the data).  Returns
    ``(scores, fit_times, score_times, errors)``; with ``with_train=True`` a
    fifth item, the train scores ``{metric: [[score per split] per
    candidate]}`` (None without ``return_train_score``).
    """
    n_candidates = len(context.candidates)
    n_splits = context.n_inner_splits(record.split_set, record.outer)
    nan = float("nan")
    fits = [context.read_record(dep) for dep in record.deps]
    # A callable scorer may return a dict: its keys name the metrics (a
    # task whose fits all failed does not know them and scores error_score).
    names = metric_names([fit.scores for fit in fits], context.metrics)
    scores = {m: [[nan] * n_splits for _ in range(n_candidates)] for m in names}
    fit_times = [[0.0] * n_splits for _ in range(n_candidates)]
    score_times = [[0.0] * n_splits for _ in range(n_candidates)]
    errors = [[None] * n_splits for _ in range(n_candidates)]
    train = ({m: [[nan] * n_splits for _ in range(n_candidates)] for m in names}
             if context.return_train_score else None)
    missing = _error_value(context)
    for dep, fit in zip(record.deps, fits):
        inner = context.task(dep).inner
        for row, point in enumerate(fit.points):
            for metric in names:
                values = fit.scores.get(metric)
                scores[metric][point][inner] = missing if values is None else values[row]
            fit_times[point][inner] = fit.fit_time[row]
            score_times[point][inner] = fit.score_time[row]
            if fit.fit_failed[row]:
                errors[point][inner] = fit.errors[row]
            if train is not None:
                for metric in names:
                    values = fit.train_scores.get(metric)
                    train[metric][point][inner] = missing if values is None else values[row]
    # GridSearchCV's order: candidate by candidate, split by split.
    tables = scores, fit_times, score_times, [error for row in errors for error in row]
    return tables + (train,) if with_train else tables


def _inner_search(context, record):
    """The search of a ``select``/``select-all`` task from its ``fit`` outputs.

    Returns the :class:`~mempamal.store.records.InnerSearch` (the inner
    tables and the best index; ``best_index`` None and ``error`` set when
    every inner fit failed, or when ``refit`` names a metric the scorer did
    not return), and the whole inner ``cv_results_`` (not part of the output).
    """
    scores, fit_times, score_times, fit_errors, train_scores = _gather_inner_tables(context, record, with_train=True)
    n_failed = sum(error is not None for error in fit_errors)
    stats = cv_results(context.candidates, scores, fit_times, score_times, train_scores=train_scores)
    n_fits = len(context.candidates) * len(fit_times[0])
    search = InnerSearch(inner_scores=scores, inner_fit_time=fit_times, inner_score_time=score_times,
                         n_failed_fits=n_failed, best_index=None, error=None,
                         inner_train_scores=ABSENT if train_scores is None else train_scores)
    if n_failed == n_fits:
        # GridSearchCV raises "All the N fits failed".
        return dataclasses.replace(search, error=_all_fits_failed_error(fit_errors)), stats
    names = list(scores)
    try:
        check_refit_for_scores(context.refit, names, context.metrics)
    except ValueError as exc:
        # GridSearchCV.fit raises this; cross_validate scores the fold error_score.
        if isinstance(context.error_score, str):
            raise EstimatorRaised(exc) from exc
        return dataclasses.replace(search, error=f"ValueError: {exc}"), stats
    return dataclasses.replace(search, best_index=best_index(stats, context.refit, names)), stats


def _run_select(context, record):
    """Pick the best grid point of one outer fold, refit it, score outer test.

    What is scored, predicted with and kept is the fitted search
    (``GridSearchCV``/``RandomizedSearchCV``), as ``cross_validate`` of a
    search has it: assembled from the inner results and the one refit.
    """
    search, results = _inner_search(context, record)
    if context.refit is False and search.error is None:
        return _unrefit_outer_fold(context, record, search, results)
    if search.best_index is None:
        # cross_validate turns GridSearchCV's error into error_score for
        # the outer fold, keeping the message.
        return _unscored_outer_fold(context, record, search)
    names = list(search.inner_scores)
    best = context.estimator_with(search.best_index)

    def fit_search(estimator, X_train, y_train, fit_params):
        set_search_results(estimator, results, search.best_index, names,
                           context.n_inner_splits(record.split_set, record.outer), y_train)
        refit_into_search(estimator, best, X_train, y_train, fit_params)

    fold = _fit_score_predict(context, record, unfitted_search(context.experiment), names, fit=fit_search)
    return SelectRecord.joined(search, fold)  # the fold's error: the search's was None


def _unscored_outer_fold(context, record, search, names=None):
    """An outer fold that could not be scored: ``error_score`` for every metric, no predictions."""
    names = list(search.inner_scores) if names is None else names
    test_scores = {m: _error_value(context) for m in names}
    real_data = record.permutation is None
    return SelectRecord.joined(
        search, refit_time=0.0, test_scores=test_scores, fit_time=0.0, score_time=0.0,
        train_scores=dict(test_scores) if context.return_train_score else ABSENT,
        predictions=None if context.predict_method is not None and real_data else ABSENT,
        model=None if getattr(context.experiment, "return_estimator", False) and real_data else ABSENT,
    )


def _fit_score_predict(context, record, estimator, names=None, fit=None):
    """The outer fold's fit, test (and train) scores, out-of-fold predictions and kept estimator.

    ``fit(estimator, X_train, y_train, fit_params)``, if given, fits instead
    of ``estimator.fit`` (a search assembled around its refit).
    """
    X_train, y_train, X_test, y_test = context.outer_split_data(record.split_set, record.outer)
    fit_params, score_params = context.outer_params(record.split_set, record.outer)
    fit_outer = None if fit is None else (lambda est: fit(est, X_train, y_train, fit_params))
    result = fit_and_score(estimator, X_train, y_train, X_test, y_test,
                           context.scorer, context.metrics, context.error_score, fit_outer,
                           fit_params=fit_params, score_params=score_params,
                           return_train_score=context.return_train_score)
    if names is None:  # plain CV: the metrics this fit scored (a dict scorer names its own)
        names = metric_names([] if result["fit_failed"] else [result["scores"]], context.metrics)
    train_scores = ABSENT
    if context.return_train_score:
        train_scores = with_metrics(result["train_scores"], names, _error_value(context))
    method, predictions = context.predict_method, ABSENT
    if method is not None and record.permutation is None:
        predictions = None
        if not result["fit_failed"]:
            from .predictions import fold_predictions, save_fold_predictions

            y = context.data[1]
            predicted = fold_predictions(estimator, context.outer_test_X(record.split_set, record.outer), y, method)
            predictions = save_fold_predictions(context.workdir, record.id, predicted, y)
    return ScoreRecord(test_scores=with_metrics(result["scores"], names, _error_value(context)),
                       fit_time=result["fit_time"], score_time=result["score_time"], error=result["error"],
                       train_scores=train_scores, predictions=predictions,
                       model=_kept_estimator(context, record, estimator, result))


def _unrefit_outer_fold(context, record, search, results):
    """``refit=False``: cross_validate cannot score a search that refit nothing.

    ``GridSearchCV(refit=False)`` has no ``predict``: scikit-learn's scoring
    fails and the fold gets ``error_score`` (a warning, not a fit failure),
    or the error itself with ``error_score="raise"``.  Its fit succeeded, so
    ``return_estimator=True`` keeps that search (no ``best_estimator_``).
    """
    message = "This 'GridSearchCV' has no attribute 'predict' (refit=False: no candidate was refit)"
    if isinstance(context.error_score, str):
        raise EstimatorRaised(AttributeError(message))
    fold = dataclasses.replace(_unscored_outer_fold(context, record, search, names=context.metrics),
                               scoring_error=message)
    if fold.model is not ABSENT:  # return_estimator=True, real data
        kept = unfitted_search(context.experiment)
        y_train = context.outer_split_data(record.split_set, record.outer)[1]
        set_search_results(kept, results, search.best_index, list(search.inner_scores),
                           context.n_inner_splits(record.split_set, record.outer), y_train)
        fold = dataclasses.replace(fold, model=save_model(context.workdir, f"o{record.outer}", kept, record.id))
    return fold


def _kept_estimator(context, record, estimator, result):
    """``return_estimator=True``: the fold's fitted estimator, stored as ``models/o<k>.pkl``.

    Only for the real data (permutations keep none: ``ABSENT``); a fold whose fit failed
    keeps none (None: its entry of ``res.estimators_`` is None).
    """
    if not getattr(context.experiment, "return_estimator", False) or record.permutation is not None:
        return ABSENT
    if result["fit_failed"]:
        return None
    return save_model(context.workdir, f"o{record.outer}", estimator, record.id)


def _run_select_all(context, record):
    """The final model: ``GridSearchCV(...).fit(X, y)`` from the ``fit-all`` outputs.

    The best point is refit on all the data and stored as
    ``models/final.pkl`` (plain CV: the estimator itself fitted on all the
    data); the output records its digest.  With ``refit=False`` nothing is
    refit, as GridSearchCV.
    """
    if context.candidates:
        search = _inner_search(context, record)[0]
        if search.best_index is None or context.refit is False:
            return SelectAllRecord.joined(search, refit_time=0.0, model=None)
    else:
        search = InnerSearch(best_index=None, error=None)
    estimator = context.estimator_with(search.best_index)
    X, y = context.all_data()
    fit_params = context.all_fit_params()
    start = time.perf_counter()
    try:
        estimator.fit(X, y, **fit_params)
    except Exception as exc:
        if isinstance(context.error_score, str):  # "raise": the estimator's own exception
            raise EstimatorRaised(exc) from exc
        # GridSearchCV.fit would raise; the outer folds' results stay usable
        # and the final-model attributes raise this error.
        return SelectAllRecord.joined(search, refit_time=time.perf_counter() - start, model=None,
                                      error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    return SelectAllRecord.joined(search, refit_time=time.perf_counter() - start,
                                  model=save_model(context.workdir, "final", estimator, record.id))


def _all_fits_failed_error(fit_errors):
    """The error GridSearchCV.fit raises when every inner fit failed (its last line)."""
    from .._sklearn_compat import _warn_or_raise_about_fit_failures

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
    # Durable (fsynced before the output that vouches for it is written): the
    # final output records its digest, so a torn results.json after an OS
    # crash would leave a trusted output pointing at a file that fails it.
    store.atomic_write_bytes(Path(context.workdir) / store.RESULTS, payload)
    # The final output (stamped with the build id) vouches for results.json.
    return FinalRecord(results=store.RESULTS, results_sha256=hashlib.sha256(payload).hexdigest())


_HANDLERS = {"fit": _run_fit, "select": _run_select, "score": _run_score, "final": _run_final,
             "fit-all": _run_fit, "select-all": _run_select_all}
