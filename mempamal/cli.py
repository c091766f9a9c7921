"""Command line: ``mempamal task|run|estimate|status|results|show|export|demo``.

``mempamal task WORKDIR ID [ID ...]`` is the command behind every exported task line,
soma-workflow job and Makefile target.
"""

import argparse
import json
import os
import sys
import warnings


BACKENDS = ("local", "ipyparallel", "dask", "soma-workflow", "slurm")
EXPORT_FORMATS = ("commands", "shell", "makefile", "soma-workflow", "slurm")
EPILOG = """\
exit status: 0 on success; 1 when the command ran and failed (one line on
stderr says why); 2 for a usage error (the usage block is printed, as every
Unix tool does); 130 after Ctrl-C (finished tasks are kept).
"""


def _add_workdir(parser, what="the workdir (made by Experiment.build or `mempamal demo`)"):
    parser.add_argument("workdir", metavar="WORKDIR", help=what)


def _add_backend(parser):
    parser.add_argument("-b", "--backend", default="local", choices=BACKENDS, metavar="BACKEND",
                        help=f"where the tasks run: {', '.join(BACKENDS)} (default: local)")


def _add_n_jobs(parser, default, meaning):
    parser.add_argument("-n", "--n-jobs", type=int, default=default, metavar="N", help=meaning)


def _add_export(sub):
    export = sub.add_parser("export", help="write the task graph for another runner")
    _add_workdir(export)
    export.add_argument("--format", "-f", default="commands", choices=EXPORT_FORMATS,
                        help=f"{', '.join(EXPORT_FORMATS)} (default: commands)")
    export.add_argument("-o", "--output", required=True, metavar="PATH", help="file to write; - for standard output")
    export.add_argument("--python", help="interpreter path on the machines that run the tasks")
    export.add_argument("--remote-workdir", help="workdir path on the machines that run the tasks")
    export.add_argument("--job-seconds", type=float, help="bundle tasks into jobs of about this many seconds")
    export.add_argument("--tasks-per-job", type=int, help="bundle this many tasks per job")
    _add_n_jobs(export, 1, "workers the runner has (bundling keeps at least this many jobs per level; default: 1)")


def _parser():
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="mempamal", description="Embarrassingly parallel scikit-learn evaluations as resumable task graphs.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"mempamal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    task = sub.add_parser("task", help="run tasks of a workdir in one interpreter (those already done are skipped)")
    _add_workdir(task)
    task.add_argument("task_ids", nargs="+", metavar="TASK_ID",
                      help="one or more ids (a bundle), run in the order given")
    task.add_argument("--force", action="store_true", help="run even if its output exists")
    task.add_argument("--allow-version-mismatch", action="store_true",
                      help="run even under other Python/library versions than the build's (recorded in the outputs)")

    run = sub.add_parser("run", help="run every unfinished task of a workdir")
    _add_workdir(run)
    _add_backend(run)
    _add_n_jobs(run, -1, "workers (default: -1, one per core; -2 all cores but one, as in joblib)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--allow-version-mismatch", action="store_true",
                     help="let tasks run under other Python/library versions than the build's (recorded in the outputs)")
    run.add_argument("--wait", nargs="?", type=float, const=-1.0, default=None, metavar="SECONDS",
                     help="if another process is running this workdir, wait for it (at most SECONDS) "
                          "instead of stopping with an error")

    estimate = sub.add_parser("estimate", help="run a small sample of the tasks (kept as done work), then predict "
                                                "the whole run's CPU time, wall time and memory per worker")
    _add_workdir(estimate)
    _add_backend(estimate)
    _add_n_jobs(estimate, -1, "workers the run will use (default: -1, one per core)")
    estimate.add_argument("--json", action="store_true", help="print the estimate as JSON")

    status = sub.add_parser("status", help="task counts: done, running, failed, blocked by a failure, pending")
    _add_workdir(status)
    status.add_argument("--json", action="store_true", help="print the counts as JSON")

    results = sub.add_parser("results", help="summary and best parameters of a finished workdir")
    _add_workdir(results)
    results.add_argument("--json", action="store_true",
                         help="print results.json with the best parameters and the summary")

    show = sub.add_parser("show", help="what a workdir holds: estimator, grid, CV, scoring, data, versions "
                                       "(its experiment.json)")
    _add_workdir(show)
    show.add_argument("--json", action="store_true", help="print experiment.json as it is")

    _add_export(sub)

    demo = sub.add_parser("demo", help="nested CV of a logistic regression on breast_cancer")
    demo.add_argument("-w", "--workdir", default="runs/demo", metavar="WORKDIR",
                      help="where the demo's workdir goes (default: runs/demo)")
    _add_n_jobs(demo, -1, "workers (default: -1, one per core)")
    _add_backend(demo)
    return parser


def _unknown_command(parser, argv):
    """A usage error naming the closest command when the first word is none (``stauts`` -> ``status``)."""
    import difflib

    commands = list(parser._subparsers._group_actions[0].choices)
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    if word is None or word in commands:
        return False
    close = difflib.get_close_matches(word, commands, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (choose from {', '.join(commands)})"
    parser.print_usage(sys.stderr)
    print(f"mempamal: error: unknown command {word!r}{hint}", file=sys.stderr)
    return True


def main(argv=None):
    """Entry point of the ``mempamal`` console script; returns the exit code.

    Examples
    --------
    >>> main(["status", str(wf.workdir)])                # doctest: +ELLIPSIS
    /...: ... tasks done, 0 failed, 0 blocked by a failure, 0 pending
    ...
    0
    """
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # bare `mempamal`: what it can do, not an error
        parser.print_help()
        return 0
    if _unknown_command(parser, argv):
        return 2
    args = parser.parse_args(argv)
    # The public names (the package's lazy table): a skin calls the api only.
    from . import TaskError, WorkdirError, WorkdirLocked, WorkersLost, WorkflowError

    # Warnings (an untrusted output run again, some fits failed) read as
    # messages of this command, not as Python source locations.
    default_format = warnings.formatwarning
    warnings.formatwarning = lambda message, category, *_, **__: (
        f"mempamal {args.command}: {category.__name__}: {message}\n")
    try:
        return _COMMANDS[args.command](args)
    except (TaskError, WorkdirError, WorkdirLocked, WorkflowError, WorkersLost, FileExistsError, ValueError) as exc:
        print(f"mempamal {args.command}: error: {_error_text(exc)}", file=sys.stderr)
        if isinstance(exc.__cause__, WorkflowError):  # an estimator's error_score="raise": the run's counts too
            print(f"mempamal {args.command}: {_error_text(exc.__cause__)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mempamal: interrupted; finished tasks are kept, run again to resume.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `mempamal status WD | head -1`: the reader left; end quietly like
        # other Unix tools, and keep Python's exit-time flush from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the pipe
    except Exception as exc:
        if not _task_notes(exc):
            raise
        # An estimator's own exception (error_score="raise"): one line naming the task,
        # then the run's counts (its WorkflowError is the cause) in the words of `status`.
        print(f"mempamal {args.command}: error: {_error_text(exc)}", file=sys.stderr)
        if isinstance(exc.__cause__, WorkflowError):
            print(f"mempamal {args.command}: {_error_text(exc.__cause__)}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = default_format


def _task_notes(exc):
    """The notes mempamal added to an estimator's exception (the task it was raised in)."""
    return [note[len("mempamal: "):] for note in getattr(exc, "__notes__", ()) if note.startswith("mempamal: ")]


def _error_text(exc):
    notes = _task_notes(exc)
    return f"{type(exc).__name__}: {exc} ({'; '.join(notes)})" if notes else str(exc)


def _task(args):
    """Run each task given; a failure is reported and the others still run.

    Each task writes its own output, so a bundle interrupted half-way resumes
    at the first unfinished task; the exit status is 1 if any task failed.
    """
    from . import TaskError, run_task

    n_failed = 0
    for task_id in args.task_ids:
        try:
            run_task(args.workdir, task_id, force=args.force, allow_version_mismatch=args.allow_version_mismatch)
        except TaskError as exc:
            if len(args.task_ids) == 1:
                raise
            # A later task that needed this one fails on its missing output,
            # which names it; unrelated tasks of the bundle still run.
            print(f"mempamal task: error: {exc}", file=sys.stderr, flush=True)
            n_failed += 1
    if n_failed:
        print(f"mempamal task: {n_failed} of {len(args.task_ids)} tasks failed", file=sys.stderr)
    return 1 if n_failed else 0


def _run(args):
    from .workflow import Workflow

    wait = False if args.wait is None else (True if args.wait < 0 else args.wait)
    workflow = Workflow.open(args.workdir)
    before = workflow.status(scheduler=False)
    results = workflow.run(backend=args.backend, n_jobs=args.n_jobs, progress=not args.no_progress, wait=wait,
                           allow_version_mismatch=args.allow_version_mismatch)
    if before.finished:
        print(f"nothing to do: {before.done}/{before.total} tasks done")
    print(results.summary().to_string())
    return 0


def _estimate(args):
    from .workflow import Workflow

    estimate = Workflow.open(args.workdir).estimate(n_jobs=args.n_jobs, backend=args.backend)
    if args.json:
        print(json.dumps(estimate.to_dict(), indent=1))
        return 0
    from .run import format_seconds

    print(f"{args.workdir}: {estimate.line()}")
    print(f"  sample: {len(estimate.sample)} tasks run in {format_seconds(estimate.sample_seconds)} (kept as done "
          f"work); what is left: ~{format_seconds(estimate.remaining_wall_seconds)}")
    if estimate.job_seconds is not None:
        print(f"  jobs of ~{format_seconds(estimate.job_seconds)} (job_seconds={estimate.job_seconds:g})")
    for warning in estimate.warnings:
        print(f"  warning: {warning}")
    return 0


def _status(args):
    from .workflow import Workflow

    status = Workflow.open(args.workdir).status()
    if args.json:
        print(json.dumps(status.to_dict(), indent=1))
        return 0
    print(f"{args.workdir}: {status.line()}")
    width = max(map(len, status.by_kind), default=0)
    for kind, counts in status.by_kind.items():
        print(f"  {kind:<{width}} {counts.done:>7}/{counts.total}")
    for task_id, problem in sorted(status.untrusted.items()):
        print(f"  not counted: {problem}")
    if status.reused:
        reused = status.reused
        changed = f"; changed since: {', '.join(reused['changed'])}" if reused["changed"] else ""
        print(f"  kept from a previous build: {status.kept} tasks, {reused['kept_points']} inner fits{changed}")
    if status.runner:
        print(f"  running now: {status.runner}")
    if status.jobs:
        from .display import describe_jobs

        print(f"  {describe_jobs(status.jobs)}")
    if status.results:
        print(f"  {status.results}: `mempamal run {args.workdir}` writes it again")
    if status.mixed_versions:
        from .display import describe_mixed_versions

        for line in describe_mixed_versions(status.mixed_versions):
            print(f"  mixed versions: {line}")
    return 0


def _results(args):
    from .results import Results, final_best_params, plain_value, results_document

    results = Results.load(args.workdir)
    if args.json:
        print(json.dumps(results_document(results), indent=1))
        return 0
    from .description import short_line

    print(f"experiment: {short_line(results.experiment)}\n")
    print(results.summary().to_string())
    if results.nested:
        print("\nbest parameters per outer fold:")
        for fold, params in enumerate(results.best_params):
            print(f"  {fold}: {plain_value(params)}")
    final = final_best_params(results)
    if final is not None:
        print(f"\nbest parameters on all the data (final model): {plain_value(final)}")
    if results.pvalue is not None:
        print(f"\npermutation test ({results.permutation_metric}): score={results.score:.4f} pvalue={results.pvalue:.4g}")
    return 0


def _show(args):
    from .description import read_description
    from .workflow import Workflow

    workflow = Workflow.open(args.workdir)  # a built workdir, or an error naming what it lacks
    document = read_description(workflow.workdir)
    if document is None:
        manifest = workflow.manifest
        print(f"{args.workdir}: no experiment.json (built by mempamal {manifest.get('mempamal_version', '?')}, "
              f"before it was written); the workdir still works")
        print(f"  built {manifest.get('created', '?')}, {manifest.get('n_tasks', '?')} tasks, "
              f"metrics {manifest.get('metrics')}")
        return 0
    if args.json:
        print(json.dumps(document, indent=1))
        return 0
    for line in _description_lines(args.workdir, document):
        print(line)
    return 0


def _description_lines(workdir, doc):
    """``experiment.json`` as a few readable lines."""
    estimator, search, cv = doc["estimator"], doc.get("search"), doc["cv"]
    lines = [f"{workdir}: built {doc.get('created', '?')}", f"estimator: {estimator['repr']}"]
    lines += [f"  {name}={value!r}" for name, value in estimator["params"].items()]
    if search is not None:
        space = search.get("param_grid", search.get("param_distributions"))
        lines.append(f"{search['kind']} search: {space} ({search['n_candidates']} candidates)")
    for role in ("outer", "inner"):
        if cv.get(role) is not None:
            n = cv[role]["n_splits"]
            folds = (f"{n[0]} folds in each outer fold" if isinstance(n, list) and len(set(n)) == 1
                     else f"{n} folds")
            lines.append(f"{role} cv: {cv[role]['repr'] or cv[role]['class']} ({folds})")
    lines.append(f"scoring: {doc['scoring']!r} (metrics {doc['metrics']}), refit: {doc['refit']!r}, "
                 f"error_score: {doc['error_score']!r}")
    lines.append(f"random_state: {doc['random_state']!r}, n_permutations: {doc['n_permutations']}")
    for name, entry in doc["data"].items():
        if name != "params":
            lines.append(f"data {name}: {entry['type']} shape {tuple(entry['shape'])} {entry.get('dtype', '')} "
                         f"sha256 {entry.get('sha256', '?')}")
    lines += [f"data param {name}: shape {tuple(entry['shape'])}" for name, entry in doc["data"]["params"].items()]
    lines.append("versions: " + ", ".join(f"{name} {version}" for name, version in doc["versions"].items()))
    return lines


def _export(args):
    from .workflow import Workflow

    workflow = Workflow.open(args.workdir)
    options = dict(format=args.format, python=args.python, workdir=args.remote_workdir,
                   job_seconds=args.job_seconds, tasks_per_job=args.tasks_per_job, n_jobs=args.n_jobs)
    if args.output == "-":  # standard output, as Unix tools read "-"
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as folder:
            path = workflow.export(Path(folder) / "export", **options)
            sys.stdout.write(path.read_text())
        return 0
    path = workflow.export(args.output, **options)
    print(f"wrote {path}")
    return 0


def _demo(args):
    from .demo import run_demo

    run_demo(workdir=args.workdir, n_jobs=args.n_jobs, backend=args.backend)
    return 0


_COMMANDS = {"task": _task, "run": _run, "estimate": _estimate, "status": _status, "results": _results,
             "show": _show, "export": _export, "demo": _demo}
