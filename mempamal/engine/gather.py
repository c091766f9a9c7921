"""The ``final`` task's job: every outer result in one ``results.json``."""

import numpy as np

from ..store import integrity
from ..store.tasktable import MAIN
from .models import public_record
from .scoring import metric_names, with_metrics
from .search import refit_metric


def _outputs_by_split_set(context, deps):
    """``{split_set: [output of fold 0, fold 1, ...]}`` of the final's deps."""
    grouped = {}
    for dep in deps:
        record = context.task(dep)
        grouped.setdefault(record.split_set, {})[record.outer] = context.read_output(dep)
    return {name: [folds[k] for k in sorted(folds)] for name, folds in grouped.items()}


def _gather_train_scores_and_predictions(results, folds, context, error_value):
    """``return_train_score`` (outer and inner) and ``predict`` pieces, when asked for."""
    if context.return_train_score:
        metrics = results["metrics"]  # the test scores' names (a dict scorer's keys)
        train = [with_metrics(fold["train_scores"], metrics, error_value) for fold in folds]
        results["train_scores"] = {m: [scores[m] for scores in train] for m in metrics}
        if results["nested"]:
            for inner, fold in zip(results["inner"], folds):
                inner["train_scores"] = fold["inner_train_scores"]
    if context.predict_method is not None:
        # Per fold: the files and digests of its predictions (None when its fit failed).
        results["predictions"] = {"method": context.predict_method,
                                  "folds": [fold["predictions"] for fold in folds]}


def gather_results(context, record):
    """Assemble the results dictionary from the select/score outputs."""
    nested = bool(context.candidates)
    final_ids = [dep for dep in record.deps if context.task(dep).kind == "select-all"]
    grouped = _outputs_by_split_set(context, [dep for dep in record.deps if dep not in final_ids])
    folds = grouped[MAIN]
    # A callable scorer returning a dict names the metrics by its keys; a
    # failed fold's placeholder scores become error_score for each of them.
    metrics = metric_names([fold["test_scores"] for fold in folds if fold["error"] is None], context.metrics)
    error_value = float("nan") if isinstance(context.error_score, str) else float(context.error_score)
    fold_scores = [with_metrics(fold["test_scores"], metrics, error_value) for fold in folds]
    results = {
        "metrics": metrics,
        "nested": nested,
        "n_outer": len(folds),
        "test_scores": {m: [scores[m] for scores in fold_scores] for m in metrics},
        "fit_time": [fold["fit_time"] for fold in folds],
        "score_time": [fold["score_time"] for fold in folds],
        "errors": [fold["error"] for fold in folds],
        "error_score": context.error_score,
        "best_index": [fold["best_index"] for fold in folds] if nested else None,
        "inner": None,
        "permutation": None,
        "final_fit": _final_search(context.read_output(final_ids[0])) if final_ids else None,
    }
    if getattr(context.experiment, "return_estimator", False):
        # The models' value digests, not their pickles' (which differ between processes).
        results["estimators"] = [public_record(fold.get("model")) for fold in folds]
    if nested:
        results["inner"] = [
            {"scores": fold["inner_scores"], "fit_time": fold["inner_fit_time"],
             "score_time": fold["inner_score_time"], "n_failed_fits": fold["n_failed_fits"]}
            for fold in folds
        ]
    _gather_train_scores_and_predictions(results, folds, context, error_value)
    n_permutations = context.experiment.n_permutations
    if n_permutations:
        metric = refit_metric(context.refit, metrics)  # permutation_test_score takes one scorer
        # permutation_test_score averages fold scores with np.mean, in fold order.
        score = float(np.mean(results["test_scores"][metric]))
        permutation_scores = []
        for index in range(n_permutations):
            perm_folds = grouped[f"perm-{index}"]
            permutation_scores.append(float(np.mean(
                [with_metrics(f["test_scores"], metrics, error_value)[metric] for f in perm_folds])))
        perm_array = np.array(permutation_scores)
        pvalue = (np.sum(perm_array >= score) + 1.0) / (n_permutations + 1)
        results["permutation"] = {
            "metric": metric, "score": score,
            "permutation_scores": permutation_scores, "pvalue": float(pvalue),
        }
    return results


def _final_search(output):
    """What ``results.json`` keeps of the ``select-all`` output (the final model's search)."""
    # Everything the task computed; not its stamp or where/when it ran.
    # Where and how a task ran (and what it cost: the estimate reads those
    # from the outputs) is no result: results.json stays the same between runs.
    bookkeeping = {"task", "build", "definition", "kind", "start", "ready", "end", "host", "pid",
                   "cpu_seconds", "peak_rss_bytes", "rss_growth_bytes", "versions", "version_mismatch_allowed",
                   integrity.DIGEST_FIELD}
    search = {key: value for key, value in output.items() if key not in bookkeeping}
    if "model" in search:
        search["model"] = public_record(search["model"])
    return search
