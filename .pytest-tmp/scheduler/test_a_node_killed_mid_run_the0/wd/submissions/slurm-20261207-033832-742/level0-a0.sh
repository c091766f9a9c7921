#!/usr/bin/env bash
# mempamal: job array level0-a0, 12 bundle(s) of level 0.
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
  0) set -- fit-o0-i0-c0 ;;
  1) set -- fit-o0-i0-c1 ;;
  2) set -- fit-o0-i1-c0 ;;
  3) set -- fit-o0-i1-c1 ;;
  4) set -- fit-o1-i0-c0 ;;
  5) set -- fit-o1-i0-c1 ;;
  6) set -- fit-o1-i1-c0 ;;
  7) set -- fit-o1-i1-c1 ;;
  8) set -- fit-o2-i0-c0 ;;
  9) set -- fit-o2-i0-c1 ;;
  10) set -- fit-o2-i1-c0 ;;
  11) set -- fit-o2-i1-c1 ;;
  *) echo "mempamal: no bundle for array index ${SLURM_ARRAY_TASK_ID:-}" >&2; exit 2 ;;
esac
exec /work/main/.venv/bin/python -m mempamal task /work/main/.pytest-tmp/scheduler/test_a_node_killed_mid_run_the0/wd "$@"
