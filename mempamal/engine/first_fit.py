"""Fail fast before launching: one representative fit in the driver before a job backend submits.

scikit-learn fails a 3-D ``X``, a single-class ``y`` or a continuous ``y``
for a classifier only when it fits, and so does every task; on a cluster
that is hundreds of queued jobs before the first error.  A job-based backend
(slurm, soma-workflow) calls :func:`check_first_fit` before it submits
anything: it fits, in this process and under the build's scikit-learn
config, the first point of the first fit (or ``score``) task on that task's
split.

The rule (what refuses, what does not):

- the fit succeeds: submit;
- it fails and the experiment has ``error_score="raise"``: refuse (every
  task with that fit would raise it);
- it fails: fit a *second, different* probe -- another grid point on the
  same split, or, with a single candidate (plain CV), the same estimator on
  another split -- and refuse only when it fails with the same error (same
  type and message).  A failure of one point only (``error_score=nan``
  semantics: ``C=-1`` among valid values) is a result, not a reason to
  refuse: the run is submitted and that point scores ``error_score``.

A refusal is a :class:`~mempamal.exceptions.TaskError` naming what was
tried, with scikit-learn's exception as its ``__cause__``; nothing is
submitted and nothing is recorded.  When a fit task already has a trusted
output with a successful fit (``Workflow.estimate`` ran its sample, or a
previous run), that is the proof and nothing is fitted.  Backends take
``check_first=False`` to skip the check (a fit of hours in the driver is
not what one wants before submitting).

Examples
--------
>>> from sklearn.linear_model import LogisticRegression
>>> wf = mp.Experiment(LogisticRegression(), param_grid={"C": [0.1, 1.0]}, cv=2, inner_cv=2).build(
...     np.zeros((len(y), 2, 2)), y, workdir=tmp / "3d")
>>> check_first_fit(wf.workdir, wf.table, wf.pending_ids(), backend="slurm")
Traceback (most recent call last):
...
mempamal.exceptions.TaskError: Nothing submitted to slurm: ...Found array with dim 3...
"""

import warnings

from ..exceptions import TaskError
from .config import config_applied
from .context import load_context
from .fitting import _private_copy

#: The task kinds that fit an estimator on a split given by the build.
FIT_KINDS = ("fit", "fit-all", "score")
#: How many tasks from the start of the table are looked at for a finished fit.
LOOK_BACK = 50


def check_first_fit(workdir, table, task_ids, *, allow_version_mismatch=False, backend="the backend"):
    """Fit a representative point in this process; raise :class:`TaskError` when every task would fail.

    Returns what decided: ``"fitted"`` (a probe fit), ``"output"`` (a
    finished task's output proves fits work), ``"nothing to fit"`` (no fit
    among ``task_ids``), or ``"one point failed"`` (only one probe failed:
    submitted, as scikit-learn scores it ``error_score``).

    Examples
    --------
    >>> wf = mp.Experiment(estimator, cv=2).build(X, y, workdir=tmp / "fine")
    >>> check_first_fit(wf.workdir, wf.table, wf.pending_ids())
    'fitted'
    """
    first = next((task_id for task_id in task_ids if table.kind_of(task_id) in FIT_KINDS), None)
    if first is None:
        return "nothing to fit"
    context = load_context(workdir, allow_version_mismatch)
    if _a_fit_succeeded(context, table):
        return "output"
    failures = []
    for description, estimator, (X, y, fit_params) in _probes(context, context.task(first)):
        error = _fit(context, estimator, X, y, fit_params)
        if error is None:
            return "fitted" if not failures else "one point failed"
        failures.append((description, error))
        if isinstance(context.error_score, str) or (len(failures) == 2 and _same(*failures)):
            raise TaskError(_refusal(backend, first, failures, context.error_score)) from error
    return "fitted" if not failures else "one point failed"


def _a_fit_succeeded(context, table):
    """Whether one of the first fit/score tasks has a trusted output with a fit that worked."""
    for position in range(min(len(table), LOOK_BACK)):
        task_id = table.id_at(position)
        if table.kind_of(task_id) not in FIT_KINDS or context.output_problem(task_id) is not None:
            continue
        output = context.read_output(task_id)
        if output.get("error") is None if "fit_failed" not in output else not all(output["fit_failed"]):
            return True
    return False


def _probes(context, record):
    """``(description, estimator, (X_train, y_train, fit_params))`` of the first probe and a different second one."""
    if record.kind == "score":
        n_outer = context.split_set_info[record.split_set]["n_outer"]
        for outer in dict.fromkeys([record.outer, (record.outer + 1) % n_outer]):
            X, y, _, _ = context.outer_split_data(record.split_set, outer)
            yield (f"the estimator on outer fold {outer}'s training set", context.estimator_with(None),
                   (X, y, context.outer_params(record.split_set, outer)[0]))
        return
    first = record.points[0]
    n_candidates = len(context.candidates)
    others = list(record.points[1:]) + [p for p in range(n_candidates) if p not in record.points]
    n_inner = context.n_inner_splits(record.split_set, record.outer)
    # A second point on the same split; a single candidate: another inner split.
    seconds = [(others[0], record.inner)] if others else (
        [(first, (record.inner + 1) % n_inner)] if n_inner > 1 else [])
    for point, inner in [(first, record.inner)] + seconds:
        (X, y, _, _), _ = context.inner_split_data(record.split_set, record.outer, inner)
        where = "all the data" if record.outer is None else f"outer fold {record.outer}"
        yield (f"grid point {point} {_params(context, point)} on inner split {inner} of {where}",
               context.estimator_with(point), (X, y, context.inner_params(record.split_set, record.outer, inner)[0]))


def _params(context, point):
    return dict(context.candidates[point])


def _fit(context, estimator, X, y, fit_params):
    """The exception ``estimator.fit`` raises on private copies of ``X, y`` (None when it fits)."""
    try:
        # The build's config, as every task; warnings are the tasks' business.
        with config_applied(context.sklearn_config), context.routing_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.fit(_private_copy(X), _private_copy(y), **fit_params)
    except Exception as exc:
        return exc
    return None


def _same(first, second):
    (_, a), (_, b) = first, second
    return type(a) is type(b) and str(a) == str(b)


def _refusal(backend, task_id, failures, error_score):
    (description, error), rest = failures[0], failures[1:]
    tried = f"task {task_id!r}, {description}"
    why = ("with error_score='raise' every task fitting it raises this" if not rest else
           f"and so did {rest[0][0]}: every task would fail the same way")
    return (f"Nothing submitted to {backend}: the first fit, tried in this process ({tried}), raised "
            f"{type(error).__name__}: {error} -- {why} (scikit-learn raises it when it fits). Fix the data or "
            "the estimator, or pass check_first=False to submit anyway.")
