"""HTML summaries of an Experiment, a Workflow, a Results and a Run (the ``_repr_html_`` bodies)."""

import html

import numpy as np

from ..graph.status import STATES
from .graph import graph_png_html


def _readable(params):
    """``{'C': np.float64(1.0)}`` shown as ``{'C': 1.0}``."""
    if params is None:
        return "(all inner fits failed)"
    return "{" + ", ".join(f"{k!r}: {v.item() if isinstance(v, np.generic) else v!r}" for k, v in params.items()) + "}"


def _table(rows):
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table>{body}</table>"


def experiment_html(experiment):
    """The Experiment as a two-column table (``Experiment._repr_html_``).

    Examples
    --------
    >>> from sklearn.svm import SVC
    >>> from mempamal import Experiment
    >>> "grid points" in experiment_html(Experiment(SVC(), param_grid={"C": [1.0, 10.0]}))
    True
    """
    rows = [("estimator", repr(experiment.estimator)), ("outer cv", repr(experiment.cv))]
    if experiment.nested:
        rows += [("grid points", len(experiment.candidates)), ("inner cv", repr(experiment.inner_cv or 5))]
    rows += [("scoring", repr(experiment.scoring)), ("permutations", experiment.n_permutations)]
    return "<b>mempamal Experiment</b>" + _table(rows)


def workflow_html(workflow, graph=True):
    """Task counts by kind, done/failed/blocked/pending, and the graph as an inline PNG.

    Examples
    --------
    >>> workflow_html(wf, graph=False)[:60]
    '<b>mempamal Workflow</b> <code>...'
    """
    status = workflow.status(scheduler=False)  # a summary never asks a scheduler
    rows = [(kind, f"{c.done} / {c.total} done") for kind, c in status.by_kind.items()]
    rows += [(state, status[state]) for state in ("running", "failed", "blocked", "pending")]
    rows += _who_runs_rows(workflow, status)
    picture = f"<br>{graph_png_html(workflow)}" if graph else ""
    return f"<b>mempamal Workflow</b> <code>{html.escape(str(workflow.workdir))}</code>" + _table(rows) + picture


def results_html(results):
    """Summary table, best parameters per outer fold and p-value (``Results._repr_html_``).

    Examples
    --------
    >>> "best parameters per outer fold" in results_html(res)
    True
    """
    summary = results.summary().to_html(float_format=lambda v: f"{v:.4f}")
    best = ""
    if results.nested:
        best = "<br><b>best parameters per outer fold</b>" + _table(
            [(fold, _readable(params)) for fold, params in enumerate(results.best_params)])
        try:
            final = results.best_params_
        except (AttributeError, ValueError):  # no final search (final_fit=False), or it failed
            final = None
        if final is not None:
            best += f"<br><b>final model</b> (search and refit on all the data): {html.escape(_readable(final))}"
    perm = ""
    if results.pvalue is not None:
        perm = f"<br>permutation test ({results.permutation_metric}): p-value = {results.pvalue:.4g}"
    return f"<b>mempamal Results</b> <code>{html.escape(str(results.workdir))}</code>{summary}{best}{perm}"


def _who_runs_rows(workflow, status):
    """Rows saying who is running the workdir: a recorded job submission, a live runner."""
    from ..graph.submissions import live_runner, recorded_submission

    rows = []
    submission = recorded_submission(workflow.workdir)
    if submission is not None and not status.finished:
        rows.append(("submitted", f"{submission['backend']} jobs (WORKDIR/submissions/); wf.attach() follows them"))
    if status.jobs:
        from ..graph.submissions import describe_jobs

        rows.append(("scheduler", describe_jobs(status.jobs)))
    holder = live_runner(workflow.workdir)
    if holder is not None:
        rows.append(("run by", f"pid {holder.get('pid')} on {holder.get('host')}"))
    return rows


def run_html(run):
    """A submitted run as static HTML: one status line, counts per kind, finished outer folds.

    Examples
    --------
    >>> run = wf.submit(n_jobs=1); res = run.wait()
    >>> run_html(run)[:60]
    '<b>mempamal Run</b> <code>...'
    """
    counts = run.status()  # the workdir read once; the scheduler never asked
    header = "<tr><th></th>" + "".join(f"<th>{name}</th>" for name in _RUN_STATES) + "</tr>"
    rows = "".join(
        f"<tr><td style='text-align:left'>{html.escape(kind)}</td>"
        + "".join(f"<td>{by_kind[name]}</td>" for name in _RUN_STATES) + "</tr>"
        for kind, by_kind in counts["by_kind"].items())
    folds = run.results()
    fold_table = "" if folds.empty else "<br><b>outer folds finished</b>" + folds_html(folds)
    return (f"<b>mempamal Run</b> <code>{html.escape(str(run.workflow.workdir))}</code><br>"
            f"{html.escape(run.summary_line(counts))}<table>{header}{rows}</table>{fold_table}")


def run_jobs_line(run):
    """The scheduler's view of a job-based run while it goes on (one line), else ``""``.

    Examples
    --------
    While a Slurm run goes on, it reads e.g. ``'slurm jobs: 3 pending, 2
    running, 4 finished'``; a local run has no jobs:

    >>> run = wf.submit(n_jobs=1); res = run.wait()
    >>> run_jobs_line(run)
    ''
    """
    from ..graph.submissions import describe_jobs, recorded_jobs

    if run.done() or not run.outlives_driver:
        return ""  # only job-based runs have jobs of their own; an ended run's are history
    jobs = recorded_jobs(run.workflow.workdir)
    return describe_jobs(jobs) if jobs else ""


_RUN_STATES = STATES + ("total",)


def folds_html(frame):
    """Finished outer folds (``Results.to_frame()`` shape) as an HTML table: scores rounded,
    parameters as plain numbers, the error column only when a fold failed.

    Examples
    --------
    >>> folds_html(res.to_frame()).startswith('<table border="1" class="dataframe">')
    True
    """
    shown = frame.drop(columns=[c for c in ("score_time", "error") if c in frame and
                                (c == "score_time" or frame[c].isna().all())])
    formatters = {column: (lambda v: f"{v:.4f}") for column in shown if column.startswith("test_")}
    formatters["fit_time"] = lambda v: f"{v:.2f} s"
    for column in shown:
        if column.startswith("param_"):
            formatters[column] = lambda v: html.escape(_plain(v))
    return shown.to_html(formatters=formatters, escape=False, na_rep="—")


def _plain(value):
    """``np.float64(0.1)`` shown as ``0.1``; floats with 4 significant digits."""
    value = value.item() if isinstance(value, np.generic) else value
    return f"{value:.4g}" if isinstance(value, float) else str(value)
