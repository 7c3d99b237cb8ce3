#!/usr/bin/python3
"""Times one training configuration in scholar and in PyTorch, alternately, and prints the ratio.

GPT-2 style, vocab 8192, context 256, 6 layers, width 384, 6 heads, batch 8, AdamW, at 1 and 2
threads. Each round runs scholar then PyTorch (A B A B ...) so drifts in machine speed hit both; the
table gives medians over rounds of tokens/s, of the per-round ratio, and of peak resident memory.
PyTorch runs with OMP_WAIT_POLICY=PASSIVE (its OpenMP threads otherwise spin between operations).

usage: bench/compare/train_step.py BUILD_DIR [--rounds 3] [--steps 5] [--threads 1 2] [--markdown]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("build_dir")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
ap.add_argument("--markdown", action="store_true")
args = ap.parse_args()

ours = os.path.join(args.build_dir, "bench", "train_step")
env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")


def run(cmd, threads):
    out = subprocess.run(cmd + ["--threads", str(threads), "--steps", str(args.steps), "--warmup", "2"],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


rows = []
for t in args.threads:
    s_tps, p_tps, ratios, s_mem, p_mem = [], [], [], [], []
    for _ in range(args.rounds):
        a = run([ours], t)
        b = run(["/usr/bin/python3", os.path.join(here, "train_step_torch.py")], t)
        s_tps.append(a["tokens_per_s"])
        p_tps.append(b["tokens_per_s"])
        ratios.append(a["tokens_per_s"] / b["tokens_per_s"])
        s_mem.append(a["peak_rss_mb"])
        p_mem.append(b["peak_rss_mb"])
    rows.append((t, statistics.median(s_tps), statistics.median(p_tps), statistics.median(ratios),
                 statistics.median(s_mem), statistics.median(p_mem)))
    gemm = a["system"].split("GEMM: ")[-1]

print(f"# training step, GPT-2 style 6 x 384, vocab 8192, context 256, batch 8, AdamW; "
      f"{args.rounds} alternating rounds of {args.steps} steps; scholar GEMM: {gemm}")
if args.markdown:
    print("| threads | scholar tokens/s | PyTorch tokens/s | scholar / PyTorch | scholar peak MB | PyTorch peak MB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.0f} | {r[2]:.0f} | {r[3]:.2f} | {r[4]:.0f} | {r[5]:.0f} |")
else:
    print(f"{'threads':>7} {'scholar tok/s':>14} {'torch tok/s':>12} {'ratio':>6} {'scholar MB':>11} {'torch MB':>9}")
    for r in rows:
        print(f"{r[0]:>7} {r[1]:>14.0f} {r[2]:>12.0f} {r[3]:>6.2f} {r[4]:>11.0f} {r[5]:>9.0f}")
