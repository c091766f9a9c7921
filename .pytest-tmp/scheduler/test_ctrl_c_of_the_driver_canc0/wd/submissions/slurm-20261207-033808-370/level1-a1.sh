#!/usr/bin/env bash
# mempamal: job array level1-a1, 2 bundle(s) of level 1.
# Element i runs bundle i: its tasks one after the other, one output each.
set -u
threads="${SLURM_CPUS_PER_TASK:-1}"
export OMP_NUM_THREADS="$threads"
export OPENBLAS_NUM_THREADS="$threads"
export MKL_NUM_THREADS="$threads"
export BLIS_NUM_THREADS="$threads"
export VECLIB_MAXIMUM_THREADS="$threads"
export NUMEXPR_NUM_THREADS="$threads"
case "${SLURM_ARRAY_TASK_ID:-0}" in
  0) set -- select-o0 select-o1 ;;
  1) set -- select-o2 select-all ;;
  *) echo "mempamal: no bundle for array index ${SLURM_ARRAY_TASK_ID:-}" >&2; exit 2 ;;
esac
exec /work/main/.venv/bin/python -m mempamal task /work/main/.pytest-tmp/scheduler/test_ctrl_c_of_the_driver_canc0/wd "$@"
