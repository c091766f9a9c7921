"""Run every benchmark case, then print one summary table (``make bench``).

    .venv/bin/python benchmarks/run_all.py            # full run (~10 min on 2 cores)
    .venv/bin/python benchmarks/run_all.py --quick    # smoke run (~1 min)
    .venv/bin/python benchmarks/run_all.py --only bench_overhead
    .venv/bin/python benchmarks/run_all.py --scale    # also the 1,000,000-task case (~10 min more)

Each case runs in its own Python process (a clean worker pool and no state
left by another case) and prints its own details; the table at the end is
the one the README shows.  Exit status 1 when some case's scores differ
from scikit-learn's or a case crashed; missed speed targets are reported,
not fatal (timings depend on the machine).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = ["bench_nested_cv", "bench_shared_prefix", "bench_overhead", "bench_nested_parallelism", "bench_memory"]
#: Run only with --scale: long, and a million files on disk.
SCALE_CASES = ["bench_scale"]


def run_case(name, extra_args):
    command = [sys.executable, str(HERE / f"{name}.py"), *extra_args]
    process = subprocess.Popen(command, cwd=HERE, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    summary = None
    for line in process.stdout:
        if line.startswith("BENCH-JSON "):
            summary = json.loads(line[len("BENCH-JSON "):])
        else:
            print(line, end="", flush=True)
    process.wait()
    if process.returncode != 0 or summary is None:
        return {"case": name, "crashed": True}
    return summary


def _verdict(summary):
    if summary.get("quick"):
        return " (n/a: quick run)"
    return "" if summary["ok"] else " (missed)"


def table(summaries):
    lines = ["| case | scikit-learn (best setting) | mempamal local | ratio | target | identical | notes |",
             "|---|---|---|---|---|---|---|"]
    for s in summaries:
        if s.get("crashed"):
            lines.append(f"| {s['case']} | crashed | | | | | |")
            continue
        if s.get("scale"):  # no scikit-learn counterpart: mempamal's own figures
            lines.append(
                f"| {s['case']} | n/a | build {s['build']:.2f} s, status {s['status']:.2f} s, "
                f"load {s['load']:.2f} s | | {s['target']}{_verdict(s)} | n/a | peak RSS {s['rss_gb']:.2f} GB, "
                f"tasks.json {s['table_bytes'] / 1e3:.0f} kB |")
            continue
        setting = s["sklearn_setting"].replace("sklearn ", "")
        lines.append(
            f"| {s['case']} | {s['sklearn']:.2f} s ({setting}) | {s['mempamal']:.2f} s | "
            f"**{s['ratio']:.2f}** | {s['target']}{_verdict(s)} | "
            f"{'yes' if s['identical'] else 'NO'} | {s['extra']} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small data, one repetition")
    parser.add_argument("--repeats", type=int, help="repetitions per variant (default: per case)")
    parser.add_argument("--only", action="append", choices=CASES + SCALE_CASES,
                        help="run only this case (repeatable)")
    parser.add_argument("--scale", action="store_true", help="also run the 1,000,000-task case (bench_scale)")
    args = parser.parse_args()
    extra = (["--quick"] if args.quick else []) + (["--repeats", str(args.repeats)] if args.repeats else [])
    start = time.perf_counter()
    names = args.only or (CASES + (SCALE_CASES if args.scale else []))
    # bench_scale takes no --repeats: one measurement of each figure.
    summaries = [run_case(name, [a for a in extra if name not in SCALE_CASES or a == "--quick"])
                 for name in names]
    print(f"\n== Summary ({'quick' if args.quick else 'full'} run, {os.cpu_count()} cores, "
          f"{time.perf_counter() - start:.0f} s; ratio = mempamal time / scikit-learn time)\n")
    print(table(summaries))
    bad = [s["case"] for s in summaries if s.get("crashed") or not s["identical"]]
    if bad:
        print(f"\nFAILED (crash or scores differing from scikit-learn): {bad}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
