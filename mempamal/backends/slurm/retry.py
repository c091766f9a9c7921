"""Walltime, preemption, dead nodes: a lost job is not a failed task.

When a round of job arrays has ended, every recorded task without an output
is judged (:func:`judge`):

- its traceback is in ``logs/<id>.err`` (written by this round): the task
  **raised**, a failure as on every backend; its dependents are blocked;
- else its array element was **lost**: it ended ``TIMEOUT``, ``PREEMPTED``,
  ``NODE_FAIL``, ``OUT_OF_MEMORY`` or ``BOOT_FAIL``, was killed by a signal
  (``FAILED`` with a signal in sacct's ``ExitCode``), or was ``CANCELLED``
  by someone other than this driver (an administrator; ``scancel
  --signal=KILL``).  The state comes from squeue (``-t all`` still lists
  elements that ended recently), else sacct, else the job's stderr, where
  slurmstepd writes ``CANCELLED ... DUE TO TIME LIMIT`` and the like;
- else (an element that exited with an error status without a traceback:
  a wrong interpreter, an unreadable workdir) it failed as before.

When some element was lost, the unfinished tasks that did not raise (nor
depend on one that did) are submitted again as a new round, at most
``max_retries`` times; after a ``TIMEOUT`` the new round's bundles are half
the size of the largest bundle that timed out.  Each resubmission is
written to ``WORKDIR/submissions/slurm.log`` and warned about.
"""

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ... import store
from ..tracker import DependencyTracker
from .watcher import ACTIVE_STATES, element_array

#: Job states after which the job's unfinished tasks run again.
RETRIED_STATES = frozenset({"TIMEOUT", "PREEMPTED", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"})
#: What slurmstepd writes to a job's stderr when it ends it (fallback without accounting).
STDERR_MARKERS = (("DUE TO TIME LIMIT", "TIMEOUT"), ("DUE TO PREEMPTION", "PREEMPTED"),
                  ("DUE TO NODE FAILURE", "NODE_FAIL"), ("oom-kill", "OUT_OF_MEMORY"),
                  ("Out Of Memory", "OUT_OF_MEMORY"), ("CANCELLED AT", "CANCELLED"))
LOG_FILE = "slurm.log"


@dataclass
class Verdict:
    """What a finished round left: tasks that raised, elements lost, tasks to submit again.

    Examples
    --------
    >>> verdict = Verdict()
    >>> verdict.resubmit, verdict.failures(attempt=0)
    ([], {})
    """

    raised: dict = field(default_factory=dict)      # task id -> message (with the blocked dependents)
    lost: dict = field(default_factory=dict)        # element -> why, e.g. "TIMEOUT (time limit 00:01:00)"
    unexplained: dict = field(default_factory=dict)  # task id -> message when it is not run again
    element_of: dict = field(default_factory=dict)  # task id -> element
    resubmit: list = field(default_factory=list)    # task ids, dependency order
    timed_out_sizes: list = field(default_factory=list)  # bundle sizes of the elements that timed out

    def failures(self, attempt):
        """``{task_id: message}`` when nothing is submitted again (``attempt`` retries were made).

        Examples
        --------
        >>> Verdict(lost={"41_0": "TIMEOUT"}, element_of={"fit-o0-i0-c0": "41_0"},
        ...         resubmit=["fit-o0-i0-c0"]).failures(attempt=2)["fit-o0-i0-c0"]
        'Slurm job 41_0 ended TIMEOUT: still unfinished after 2 resubmission(s) (max_retries)'
        """
        failed = dict(self.raised)
        for task_id in self.resubmit:
            element = self.element_of[task_id]
            why = self.lost.get(element)
            advice = "; ask for more memory (sbatch_options=['--mem=...'])" if "OUT_OF_MEMORY" in (why or "") else ""
            failed.setdefault(task_id, f"Slurm job {element} ended {why}: still unfinished after "
                                       f"{attempt} resubmission(s) (max_retries){advice}" if why else
                              f"not run: its Slurm job {element} was cancelled because a job it waits for "
                              f"was lost (see the other tasks' messages)")
        for task_id, message in self.unexplained.items():
            failed.setdefault(task_id, message)
        return failed


def judge(workflow, record, states, cancelled_by_us, watcher):
    """The :class:`Verdict` of a round whose arrays have all ended.

    ``states`` is the watcher's last view of the round's elements,
    ``cancelled_by_us`` the array ids this driver cancelled (waiting on a
    lost or failed array).

    Examples
    --------
    >>> judge(wf, {"arrays": []}, {}, set(), WATCHER).resubmit   # needs a Slurm cluster  # doctest: +SKIP
    []
    """
    done = store.finished_task_ids(workflow.workdir)
    element_of, bundle_of = {}, {}
    for array in record["arrays"]:
        for position, bundle in enumerate(array["bundles"]):
            for task_id in bundle:
                element_of[task_id] = f"{array['job_id']}_{position}"
                bundle_of[task_id] = bundle
    missing = [task.id for task in workflow.tasks if task.id in element_of and task.id not in done]
    verdict = Verdict(element_of=element_of)
    if not missing:
        return verdict
    tracker = DependencyTracker(workflow, list(element_of))
    for task_id in missing:
        log = store.log_path(workflow.workdir, task_id)
        if task_id not in verdict.raised and log.exists() and log.stat().st_mtime >= record["submitted"] - 1:
            tracker.record(task_id, f"Slurm job {element_of[task_id]}: {_tail(log)}", verdict.raised)
    others = [task_id for task_id in missing if task_id not in verdict.raised]
    elements = sorted({element_of[t] for t in others if element_array(element_of[t]) not in cancelled_by_us})
    ended = _ended_states(record, elements, states, watcher)
    for element in elements:
        why = loss_reason(ended.get(element, {}), record, element)
        if why is not None:
            verdict.lost[element] = why
            if ended[element]["State"].startswith("TIMEOUT"):
                verdict.timed_out_sizes.append(len(_bundle(record, element)))
    if verdict.lost:
        verdict.resubmit = others
    else:
        verdict.unexplained = _not_run_messages(record, others, element_of, ended)
    return verdict


def _bundle(record, element):
    array_id, _, position = element.partition("_")
    array = next(a for a in record["arrays"] if a["job_id"] == array_id)
    return array["bundles"][int(position)]


def _ended_states(record, elements, states, watcher):
    """``{element: {"State", "ExitCode", "ReqMem", "Timelimit"}}``: squeue's final state, sacct, stderr."""
    ended, ask = {}, []
    for element in elements:
        state = (states.get(element) or ("", ""))[0]
        if state and state not in ACTIVE_STATES and state not in ("FAILED", "CANCELLED"):
            ended[element] = {"State": state}  # TIMEOUT, COMPLETED...: squeue says enough
        else:
            ask.append(element)  # gone from squeue, or an exit code / who cancelled is needed
    found = watcher.final_states(ask) if ask else {}
    log_dir = Path(record["folder"]) / "logs"
    for element in ask:
        if element in found:
            ended[element] = found[element]
            continue
        text = _tail(log_dir / f"{element}.err") if (log_dir / f"{element}.err").exists() else ""
        marker = next((state for mark, state in STDERR_MARKERS if mark in text), None)
        squeue_state = (states.get(element) or ("", ""))[0]
        ended[element] = {"State": marker or squeue_state or "state unknown"}
    return ended


def loss_reason(fields, record, element):
    """Why an element's unfinished tasks run again (``"TIMEOUT (time limit 00:01:00)"``), or None.

    Examples
    --------
    >>> record = {"options": {"sbatch_options": ["--mem=100M", "--time=00:01:00"]}}
    >>> loss_reason({"State": "TIMEOUT"}, record, "41_0")    # squeue's state, the limit asked
    'TIMEOUT (time limit 00:01:00)'
    >>> loss_reason({"State": "FAILED", "ExitCode": "0:9"}, record, "41_0")
    'FAILED (killed by signal 9)'
    >>> loss_reason({"State": "FAILED", "ExitCode": "1:0"}, record, "41_0") is None   # exited 1: a task raised
    True
    >>> loss_reason({"State": "CANCELLED by 0"}, record, "41_0")
    'CANCELLED by 0 (not by this run)'
    >>> loss_reason({"State": "OUT_OF_MEMORY"}, record, "41_0")
    'OUT_OF_MEMORY (memory asked: --mem=100M)'
    """
    state = fields.get("State", "")
    name = state.split()[0] if state else ""
    if name == "TIMEOUT":
        limit = fields.get("Timelimit") or _asked(record, ("--time=", "-t"))
        return f"TIMEOUT (time limit {limit})" if limit else "TIMEOUT"
    if name == "OUT_OF_MEMORY":
        return f"OUT_OF_MEMORY (memory asked: {_memory_asked(fields, record)})"
    if name in RETRIED_STATES:
        return name
    if name == "CANCELLED":
        return f"{state} (not by this run)"
    signal = fields.get("ExitCode", "0:0").partition(":")[2]
    if name == "FAILED" and signal not in ("", "0"):
        return f"FAILED (killed by signal {signal})"
    return None


def _asked(record, prefixes):
    """The value of the last sbatch option starting with one of ``prefixes`` (``--time=`` / ``-t``), or None."""
    options = list(record.get("options", {}).get("sbatch_options", ()))
    value = None
    for position, option in enumerate(options):
        for prefix in prefixes:
            if option.startswith(prefix) and len(option) > len(prefix):
                value = option[len(prefix):]
            elif option == prefix and position + 1 < len(options):
                value = options[position + 1]
    return value


def _memory_asked(fields, record):
    asked = [o for o in record.get("options", {}).get("sbatch_options", ()) if o.startswith(("--mem", "--mem-per"))]
    if asked:
        return " ".join(asked)
    return f"ReqMem={fields['ReqMem']}" if fields.get("ReqMem") else "the partition's default"


def _not_run_messages(record, task_ids, element_of, ended):
    """The messages of unfinished tasks when nothing was lost (as before retries existed)."""
    log_dir = Path(record["folder"]) / "logs"
    messages = {}
    for task_id in task_ids:
        element = element_of[task_id]
        state = ended.get(element, {}).get("State", "CANCELLED by this run: a job it waits for failed")
        job_log = log_dir / f"{element}.err"
        detail = _tail(job_log) if job_log.exists() and job_log.stat().st_size else ""
        messages[task_id] = (f"Slurm job {element} ended ({state}) without its output: {detail}" if detail
                             else f"not run: Slurm job {element} ended ({state}) without running it")
    return messages


def describe_loss(verdict, workflow, attempt, max_retries, n_jobs):
    """The log line of a resubmission: which jobs were lost, in which task, what runs again.

    Examples
    --------
    >>> verdict = Verdict(lost={"41_0": "TIMEOUT (time limit 00:01:00)"},
    ...                   element_of={"fit-o0-i0-c0": "41_0", "final": "42_0"},
    ...                   resubmit=["fit-o0-i0-c0", "final"])
    >>> describe_loss(verdict, wf, attempt=1, max_retries=2, n_jobs=2)
    'Slurm job 41_0 ended TIMEOUT (time limit 00:01:00) in task fit-o0-i0-c0; resubmitting 2 unfinished tasks as 2 jobs (retry 1 of 2)'
    """
    first = {}
    for task_id in verdict.resubmit:  # dependency order: the first unfinished task of an element was running
        first.setdefault(verdict.element_of[task_id], task_id)
    losses = "; ".join(f"Slurm job {element} ended {why} in task {first.get(element, '?')}"
                       for element, why in sorted(verdict.lost.items()))
    smaller = " (bundles halved after a timeout)" if verdict.timed_out_sizes else ""
    return (f"{losses}; resubmitting {len(verdict.resubmit)} unfinished tasks as {n_jobs} jobs{smaller} "
            f"(retry {attempt} of {max_retries})")


def log_event(workdir, text, warn=True):
    """Append ``text`` to ``WORKDIR/submissions/slurm.log`` with the time, and warn with it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> workdir = pathlib.Path(tempfile.mkdtemp()); (workdir / "submissions").mkdir()
    >>> log_event(workdir, "resubmitting 2 tasks", warn=False)
    >>> (workdir / "submissions" / "slurm.log").read_text()[19:]
    ' resubmitting 2 tasks\\n'
    """
    path = Path(workdir) / "submissions" / LOG_FILE
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}\n"
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with open(descriptor, "a") as handle:
            handle.write(line)
    except OSError:
        pass  # the warning still says it
    if warn:
        warnings.warn(f"mempamal slurm: {text}", RuntimeWarning, stacklevel=3)


def _tail(path, limit=2000):
    return Path(path).read_text(errors="replace").strip()[-limit:]
