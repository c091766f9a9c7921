"""What Slurm is asked to run: job arrays of bundles, their scripts, the export.

Shared by the ``slurm`` backend (which calls ``sbatch`` itself) and
``wf.export(path, format="slurm")`` (a bash script that makes the same calls).

Bundles of one dependency level that wait on the same arrays become one
**job array**; element ``i`` of the array runs bundle ``i`` with
``python -m mempamal task WORKDIR ID [ID ...]``.  An array depends on the
arrays of the levels below with ``--dependency=afterok:<job id>`` (a whole
array is ``ok`` when all its elements exited 0), so a level starts once the
levels it needs have finished.  A failed task makes its bundle exit 1: the
arrays above then never start (Slurm reports ``DependencyNeverSatisfied``)
and their tasks are reported as not run.
"""

import shlex
from dataclasses import dataclass

from ..local import THREAD_VARIABLES


@dataclass(frozen=True)
class JobArray:
    """One ``sbatch --array`` submission: bundles of one level with the same dependencies.

    Examples
    --------
    >>> from mempamal.backends.bundles import Bundle
    >>> array = JobArray(0, 0, (Bundle("bundle-0-0", ("score-o0",), (), 0, 0.1),), ())
    >>> array.size, array.name
    (1, 'level0-a0')
    """

    index: int
    level: int
    bundles: tuple
    after: tuple  # indices of the arrays this one waits for

    @property
    def size(self):
        """Number of array elements (one per bundle)."""
        return len(self.bundles)

    @property
    def name(self):
        """Readable name, also the end of the Slurm job name: ``level<L>-a<index>``."""
        return f"level{self.level}-a{self.index}"


def plan_arrays(bundles):
    """Group ``bundles`` (lowest level first) into :class:`JobArray` s, in submission order.

    Examples
    --------
    >>> from mempamal.backends.bundles import Bundle
    >>> bundles = [Bundle("bundle-0-0", ("a",), (), 0, 1.0), Bundle("bundle-0-1", ("b",), (), 0, 1.0),
    ...            Bundle("bundle-1-0", ("c",), ("bundle-0-0", "bundle-0-1"), 1, 1.0)]
    >>> [(a.size, a.after) for a in plan_arrays(bundles)]
    [(2, ()), (1, (0,))]
    """
    array_of, key_index, members = {}, {}, []
    for bundle in bundles:
        after = tuple(sorted({array_of[dep] for dep in bundle.deps}))
        key = (bundle.level, after)
        if key not in key_index:
            key_index[key] = len(members)
            members.append((bundle.level, after, []))
        members[key_index[key]][2].append(bundle)
        array_of[bundle.id] = key_index[key]
    return [JobArray(index, level, tuple(group), after) for index, (level, after, group) in enumerate(members)]


def split_arrays(arrays, max_size):
    """Cut every array into pieces of at most ``max_size`` elements (Slurm's ``MaxArraySize``).

    A piece keeps its level; an array that waited for a cut one waits for
    every piece of it, so a level still starts only when all it needs has
    finished.  ``max_size`` None: ``arrays`` unchanged.

    Examples
    --------
    >>> from mempamal.backends.bundles import Bundle
    >>> bundles = [Bundle(f"bundle-0-{i}", (f"t{i}",), (), 0, 1.0) for i in range(9)]
    >>> bundles.append(Bundle("bundle-1-0", ("final",), tuple(b.id for b in bundles), 1, 1.0))
    >>> [(a.name, a.size, a.after) for a in split_arrays(plan_arrays(bundles), 4)]
    [('level0-a0', 4, ()), ('level0-a1', 4, ()), ('level0-a2', 1, ()), ('level1-a3', 1, (0, 1, 2))]
    """
    if max_size is None or all(array.size <= max_size for array in arrays):
        return list(arrays)
    pieces_of, result = {}, []
    for array in arrays:
        after = tuple(sorted(piece for index in array.after for piece in pieces_of[index]))
        pieces_of[array.index] = []
        for start in range(0, array.size, max_size):
            pieces_of[array.index].append(len(result))
            result.append(JobArray(len(result), array.level, array.bundles[start:start + max_size], after))
    return result


def array_script(array, python, workdir, allow_version_mismatch=False):
    """The batch script of ``array``: element ``$SLURM_ARRAY_TASK_ID`` runs its bundle.

    ``allow_version_mismatch``: the tasks run even under other library
    versions than the build's (``mempamal task --allow-version-mismatch``).

    Examples
    --------
    >>> from mempamal.backends.bundles import Bundle
    >>> array = JobArray(0, 0, (Bundle("bundle-0-0", ("score-o0", "score-o1"), (), 0, 0.2),), ())
    >>> lines = array_script(array, "/venv/bin/python", "/shared/runs/iris").splitlines()
    >>> [line for line in lines if line.startswith("  0)")]
    ['  0) set -- score-o0 score-o1 ;;']
    >>> lines[-1]
    'exec /venv/bin/python -m mempamal task /shared/runs/iris "$@"'
    """
    lines = [
        "#!/usr/bin/env bash",
        f"# mempamal: job array {array.name}, {array.size} bundle(s) of level {array.level}.",
        "# Element i runs bundle i: its tasks one after the other, one output each.",
        "set -u",
        'threads="${SLURM_CPUS_PER_TASK:-1}"',
    ]
    # BLAS/OpenMP pools get the CPUs Slurm gave the job, not every core of the node.
    lines += [f'export {name}="$threads"' for name in THREAD_VARIABLES]
    lines.append('case "${SLURM_ARRAY_TASK_ID:-0}" in')
    for position, bundle in enumerate(array.bundles):
        lines.append(f"  {position}) set -- {' '.join(shlex.quote(t) for t in bundle.task_ids)} ;;")
    lines += [
        '  *) echo "mempamal: no bundle for array index ${SLURM_ARRAY_TASK_ID:-}" >&2; exit 2 ;;',
        "esac",
        f'exec {shlex.quote(str(python))} -m mempamal task {"--allow-version-mismatch " * allow_version_mismatch}'
        f'{shlex.quote(str(workdir))} "$@"',
    ]
    return "\n".join(lines) + "\n"


def sbatch_arguments(array, job_ids, log_dir, partition=None, sbatch_options=(), throttle=None, prefix="mempamal",
                     time=None):
    """``sbatch`` options (no script) for ``array`` given the job ids of earlier arrays.

    ``throttle`` K: at most K elements run at once (``--array=0-N%K``);
    ``time``: ``--time`` (the user's ``sbatch_options`` come last and win).

    Examples
    --------
    >>> from mempamal.backends.bundles import Bundle
    >>> array = JobArray(1, 1, (Bundle("bundle-1-0", ("final",), ("bundle-0-0",), 1, 0.5),), (0,))
    >>> sbatch_arguments(array, ["41"], "/wd/submissions/logs", partition="debug")[:4]
    ['--parsable', '--job-name=mempamal-level1-a1', '--array=0-0', '--dependency=afterok:41']
    """
    arguments = ["--parsable", f"--job-name={prefix}-{array.name}",
                 f"--array=0-{array.size - 1}" + (f"%{throttle}" if throttle else "")]
    if array.after:
        arguments.append("--dependency=afterok:" + ":".join(str(job_ids[i]) for i in array.after))
    # sbatch expands %-patterns in file names: a literal % in the path is %%
    log_dir = str(log_dir).replace("%", "%%")
    arguments += [f"--output={log_dir}/%A_%a.out", f"--error={log_dir}/%A_%a.err"]
    if partition:
        arguments.append(f"--partition={partition}")
    if time:
        arguments.append(f"--time={time}")
    return arguments + list(sbatch_options)


def export_text(arrays, python, workdir, log_dir, max_array_size=None):
    """A bash script submitting ``arrays`` with ``sbatch --parsable``, dependencies included.

    ``max_array_size``: the ``MaxArraySize`` the arrays were cut for
    (:func:`split_arrays`), said in the script's header.

    Extra arguments of the script go to every ``sbatch`` call
    (``bash run.sh --partition=long --time=1:00:00``).

    Examples
    --------
    >>> from mempamal.backends.bundles import make_bundles
    >>> bundles = make_bundles(wf, [task.id for task in wf.tasks], tasks_per_job=8)
    >>> text = export_text(plan_arrays(bundles), "/venv/bin/python", "/shared/wd", "/shared/wd/logs")
    >>> text.count("sbatch --parsable")
    3
    """
    lines = [
        "#!/usr/bin/env bash",
        "# mempamal workflow for Slurm: submits every task as job arrays of bundles,",
        "# each array waiting (--dependency=afterok) for the arrays it needs.",
        "# Usage: bash THIS_FILE [sbatch options for every job, e.g. --partition=long]",
        "# Tasks already finished are skipped by the jobs; submit again to resume.",
        *([f"# Arrays of at most {max_array_size} jobs (the site's MaxArraySize when written; "
           "export again with max_array_size= for another site)."] if max_array_size else []),
        "set -euo pipefail",
        'EXTRA=("$@")',
        f"mkdir -p {shlex.quote(str(log_dir))}",
    ]
    for array in arrays:
        variable = f"JOB{array.index}"
        arguments = sbatch_arguments(array, [f"${{JOB{i}}}" for i in range(len(arrays))], log_dir)
        # the dependency expands $JOBn at submission time; everything else is literal
        rendered = [f'"{argument}"' if argument.startswith("--dependency=") else shlex.quote(argument)
                    for argument in arguments]
        marker = f"MEMPAMAL_ARRAY_{array.index}"
        lines.append(f'{variable}=$(sbatch {" ".join(rendered)} "${{EXTRA[@]}}" <<\'{marker}\'')
        lines.append(array_script(array, python, workdir).rstrip("\n"))
        lines.append(marker)
        lines.append(")")
        lines.append(f"{variable}=${{{variable}%%;*}}  # --parsable may print 'id;cluster'")
        lines.append(f'echo "mempamal: {array.name} ({array.size} jobs) submitted as job ${variable}"')
    return "\n".join(lines) + "\n"
