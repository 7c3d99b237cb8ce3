#!/usr/bin/python3
"""KV cache types: scholar beside llama.cpp's llama-bench at the same cache type, in one run.

For each cache type (f16, bf16, q8_0, q4_0; llama-bench takes no f32 cache) it alternates the two programs (A B A B ...) on the Q8_0
benchmark model, each decoding 64 tokens after a 512-token context (llama-bench -d 512 -n 64 with
-ctk/-ctv; infer_bench --depth 512 --tg 64 --cache-type), and prints tokens/s (medians), the median
of the per-round ratios, and the bytes each cached token takes: scholar's measured
(Session::cache_bytes / cells) and llama.cpp's from ggml's type sizes (both store ggml's block
layouts, so the bytes per token are equal by construction). llama.cpp needs flash attention for a
quantized V cache: it runs with -fa on for q8_0/q4_0 and its default (auto) otherwise.

usage: bench/compare/kv_cache.py [--rounds 3] [--threads 2] [--types f16,bf16,q8_0,q4_0]"""
import argparse
import json
import os
import statistics
import subprocess
import sys

import llama_anchor

ap = argparse.ArgumentParser()
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--types", default="f16,bf16,q8_0,q4_0")
ap.add_argument("--depth", type=int, default=512)
ap.add_argument("--tg", type=int, default=64)
ap.add_argument("--models", default=llama_anchor.default_models)
args = ap.parse_args()

ours = llama_anchor.release_binary("bench", "infer_bench")
llama_bench = llama_anchor.llama_bench()
llama_anchor.bench_models(args.models)
model = os.path.join(args.models, "llama124m-q8_0.gguf")
layers, kv_width = 12, 768  # the benchmark model's shape (make_bench_models.py)
block = {"f16": (1, 2), "bf16": (1, 2), "q8_0": (32, 34), "q4_0": (32, 18)}


def run_ours(t):
    out = subprocess.run([ours, model, "--threads", str(args.threads), "--pp", "0", "--tg",
                          str(args.tg), "--depth", str(args.depth), "--cache-type", t, "--reps", "3"],
                         check=True, capture_output=True, text=True).stdout
    r = [json.loads(line) for line in out.splitlines() if line.startswith("{")][0]
    cells = args.depth + args.tg + 8
    return r["tokens_per_s"], r["cache_bytes"] / cells


def run_llama(t):
    fa = "on" if t.startswith("q") else "auto"
    out = subprocess.run([llama_bench, "-m", model, "-p", "0", "-n", str(args.tg), "-d",
                          str(args.depth), "-t", str(args.threads), "-ctk", t, "-ctv", t, "-fa", fa,
                          "-r", "3", "-o", "json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]["avg_ts"]


print(f"llama-bench: {llama_bench}; model {model}; {args.threads} threads; "
      f"tg{args.tg} after {args.depth} tokens")
print()
print("| cache | bytes per token, scholar | llama.cpp (ggml sizes) | llama.cpp tok/s | scholar tok/s "
      "| ratio |")
print("|---|---|---|---|---|---|")
for t in args.types.split(","):
    ratios, a, b = [], [], []
    per_token = 0
    for _ in range(args.rounds):
        ll = run_llama(t)
        us, per_token = run_ours(t)
        a.append(ll)
        b.append(us)
        ratios.append(us / ll)
    values, nbytes = block[t]
    ggml = 2 * layers * kv_width // values * nbytes
    print(f"| {t} | {per_token:.0f} | {ggml} | {statistics.median(a):.1f} | "
          f"{statistics.median(b):.1f} | {statistics.median(ratios):.2f} |", flush=True)
