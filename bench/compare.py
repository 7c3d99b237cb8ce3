#!/usr/bin/env python3
"""Runs a Google Benchmark binary with interleaved repetitions and prints speed ratios.

Benchmarks are named <op>/<implementation>/<args>. Each runs --reps times in random interleaved
order (--benchmark_enable_random_interleaving), so slow and fast phases of the machine hit every
implementation alike; ratios are taken per repetition and the median is reported, beside the rate
each benchmark reports (bytes_per_second, or a GFLOP/s counter).

usage:
  bench/compare.py BUILD/bench/bench_kernels --ours scholar --vs eigen scalar
  bench/compare.py BUILD/bench/bench_matmul --ours scholar scholar_into --vs cblas
options: --reps N (default 9), --filter REGEX, --min-time S, --markdown, --threshold R
Exits with status 1 if a ratio of the first --ours implementation to the first --vs one falls below
--threshold (default: report only).
"""
import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict


def rate(b):
    if "bytes_per_second" in b:
        return b["bytes_per_second"] / 1e9, "GB/s"
    if "GFLOP/s" in b:
        return b["GFLOP/s"], "GFLOP/s"
    return 1e9 / b["real_time"], "runs/s"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--ours", nargs="+", default=["scholar"])
    ap.add_argument("--vs", nargs="+", default=["eigen"])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--min-time", default="0.05")
    ap.add_argument("--filter", default=".")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--threshold", type=float, default=None)
    args = ap.parse_args()
    out = subprocess.run(
        [args.binary, f"--benchmark_repetitions={args.reps}",
         "--benchmark_enable_random_interleaving=true", f"--benchmark_min_time={args.min_time}",
         f"--benchmark_filter={args.filter}", "--benchmark_format=json"],
        check=True, capture_output=True, text=True).stdout
    data = json.loads(out)
    runs = defaultdict(list)
    unit = "?"
    order = []
    for b in data["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        parts = b["run_name"].split("/")
        op, impl, case = parts[0], parts[1], "/".join(parts[2:])
        value, unit = rate(b)
        runs[(op, case, impl)].append(value)
        if (op, case) not in order:
            order.append((op, case))
    impls = args.ours + args.vs
    ctx = data["context"]
    print(f"# {ctx.get('scholar_isa', '')} {ctx.get('num_cpus')} CPUs, {args.reps} interleaved "
          f"repetitions, medians, {unit}")
    head = ["op", "case"] + impls + [f"{o}/{v}" for o in args.ours for v in args.vs]
    def case_key(c):
        return [int(p) if p.isdigit() else p for p in c.replace(":", "/").split("/")]
    order.sort(key=lambda oc: (oc[0], case_key(oc[1])))
    table = []
    worst = None
    for op, case in order:
        vals = {i: runs.get((op, case, i), []) for i in impls}
        if not all(vals.values()):
            continue
        cells = [op, case] + [f"{statistics.median(vals[i]):.1f}" for i in impls]
        for o in args.ours:
            for v in args.vs:
                m = min(len(vals[o]), len(vals[v]))
                r = statistics.median(vals[o][k] / vals[v][k] for k in range(m))
                cells.append(f"{r:.2f}")
                if o == args.ours[0] and v == args.vs[0]:
                    worst = r if worst is None else min(worst, r)
        table.append(cells)
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for cells in table:
            print("| " + " | ".join(cells) + " |")
    else:
        widths = [max(len(str(r[c])) for r in [head] + table) + 2 for c in range(len(head))]
        for r in [head] + table:
            print("".join(f"{str(x):>{w}}" for x, w in zip(r, widths)))
    if worst is not None:
        print(f"# lowest {args.ours[0]}/{args.vs[0]}: {worst:.2f}")
    if args.threshold is not None and worst is not None and worst < args.threshold:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
