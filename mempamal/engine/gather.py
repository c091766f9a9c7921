"""The ``final`` task's job: every outer result in one ``results.json``."""

import numpy as np

from ..tasktable import MAIN
from .search import refit_metric


def _outputs_by_split_set(context, deps):
    """``{split_set: [output of fold 0, fold 1, ...]}`` of the final's deps."""
    grouped = {}
    for dep in deps:
        record = context.task(dep)
        grouped.setdefault(record.split_set, {})[record.outer] = context.read_output(dep)
    return {name: [folds[k] for k in sorted(folds)] for name, folds in grouped.items()}


def gather_results(context, record):
    """Assemble the results dictionary from the select/score outputs."""
    metrics = context.metrics
    nested = bool(context.candidates)
    final_ids = [dep for dep in record.deps if context.task(dep).kind == "select-all"]
    grouped = _outputs_by_split_set(context, [dep for dep in record.deps if dep not in final_ids])
    folds = grouped[MAIN]
    results = {
        "metrics": metrics,
        "nested": nested,
        "n_outer": len(folds),
        "test_scores": {m: [fold["test_scores"][m] for fold in folds] for m in metrics},
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
        results["estimators"] = [fold.get("model") for fold in folds]
    if nested:
        results["inner"] = [
            {"scores": fold["inner_scores"], "fit_time": fold["inner_fit_time"],
             "score_time": fold["inner_score_time"], "n_failed_fits": fold["n_failed_fits"]}
            for fold in folds
        ]
    n_permutations = context.experiment.n_permutations
    if n_permutations:
        metric = refit_metric(context.refit, metrics)  # permutation_test_score takes one scorer
        # permutation_test_score averages fold scores with np.mean, in fold order.
        score = float(np.mean(results["test_scores"][metric]))
        permutation_scores = []
        for index in range(n_permutations):
            perm_folds = grouped[f"perm-{index}"]
            permutation_scores.append(float(np.mean([f["test_scores"][metric] for f in perm_folds])))
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
    bookkeeping = {"task", "build", "definition", "kind", "start", "end", "host", "pid"}
    return {key: value for key, value in output.items() if key not in bookkeeping}
