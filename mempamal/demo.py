"""The demo: nested cross-validation of a scaled logistic regression.

Breast-cancer data (shipped with scikit-learn), a log grid of ``C``, outer
stratified 5-fold, inner stratified 3-fold, all cores.  Prints the summary
per metric and the best parameters per outer fold, and saves a scores plot.
"""

from pathlib import Path


def demo_experiment():
    """The demo's Experiment and data: ``(experiment, X, y)``."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from .experiment import Experiment

    X, y = load_breast_cancer(return_X_y=True)
    pipeline = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=2000))])
    experiment = Experiment(
        pipeline,
        param_grid={"clf__C": np.logspace(-3, 3, 7)},
        cv=StratifiedKFold(5, shuffle=True, random_state=0),
        inner_cv=StratifiedKFold(3, shuffle=True, random_state=1),
        scoring=["accuracy", "roc_auc", "f1"],
        refit="roc_auc",
    )
    return experiment, X, y


def run_demo(workdir="runs/demo", n_jobs=-1, backend="local", progress=True, out=print):
    """Run the demo into ``workdir``; returns the Results."""
    import matplotlib

    matplotlib.use("Agg")
    experiment, X, y = demo_experiment()
    out(f"mempamal demo: {experiment}")
    out(f"  data: breast_cancer, {X.shape[0]} samples x {X.shape[1]} features; workdir: {workdir}")
    workflow = experiment.build(X, y, workdir=workdir)
    status = workflow.status()
    out(f"  {status['total']} tasks ({status['done']} already done)")
    results = workflow.run(backend=backend, n_jobs=n_jobs, progress=progress)
    out("\nOuter test scores (5 folds):")
    out(results.summary().to_string(float_format=lambda v: f"{v:.4f}"))
    out("\nBest parameters per outer fold:")
    for fold, params in enumerate(results.best_params):
        readable = {name: getattr(value, "item", lambda v=value: v)() for name, value in params.items()}
        out(f"  fold {fold}: {readable}")
    figure_path = Path(workdir) / "scores.png"
    display = results.plot_scores()
    # User-only (0600) like every file of the workdir, whatever the umask.
    import os

    handle = os.open(figure_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(handle, 0o600)  # an older, wider file keeps its mode through O_CREAT
    with os.fdopen(handle, "wb") as stream:
        display.figure_.savefig(stream, format="png", dpi=100, bbox_inches="tight")
    out(f"\nScores plot saved to {figure_path}")
    return results
