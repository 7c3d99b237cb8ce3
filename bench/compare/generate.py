#!/usr/bin/python3
"""The speed a user sees: examples/generate (greedy, 128 new tokens, the whole program's loop:
decoding, the sampler over 50k logits, log-probabilities, detokenizing, streaming) beside llama.cpp's
llama-bench tg128 on the same GGUF file, alternating, medians of the per-round ratios. Both run with
their defaults (memory-mapped weights; llama.cpp's f16 KV cache, scholar's f32).

usage: bench/compare/generate.py [--rounds 4] [--threads 2] [--types f32,f16,q8_0,q4_0]"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

import llama_anchor

ap = argparse.ArgumentParser()
ap.add_argument("--rounds", type=int, default=4)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--types", default="f32,f16,q8_0,q4_0")
ap.add_argument("--models", default=llama_anchor.default_models)
args = ap.parse_args()

ours = llama_anchor.release_binary("examples", "generate", "generate")
llama_bench = llama_anchor.llama_bench()
llama_anchor.bench_models(args.models)


def run_ours(model):
    p = subprocess.run([ours, "--model", model, "--prompt", "The quick brown fox", "--temperature",
                        "0", "--max-tokens", "128", "--threads", str(args.threads)],
                       check=True, capture_output=True)  # random weights: any bytes
    err = p.stderr.decode("utf-8", "replace")
    m = re.search(r"generation: (\d+) tokens, ([0-9.]+) tokens/s", err)
    if not m:
        sys.exit("generate printed no speed:\n" + err)
    return float(m.group(2)), int(m.group(1))


def run_llama(model):
    out = subprocess.run([llama_bench, "-m", model, "-p", "0", "-n", "128", "-t",
                          str(args.threads), "-r", "1", "-o", "json"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)[0]["avg_ts"]


print(f"{args.threads} threads, {args.rounds} rounds, alternating")
print()
print("| type | llama-bench tg128 tok/s | generate tok/s (tokens) | ratio |")
print("|---|---|---|---|")
for t in args.types.split(","):
    model = os.path.join(args.models, f"llama124m-{t}.gguf")
    a, b, ratios, n = [], [], [], 0
    for _ in range(args.rounds):
        ll = run_llama(model)
        us, n = run_ours(model)
        a.append(ll)
        b.append(us)
        ratios.append(us / ll)
    print(f"| {t} | {statistics.median(a):.1f} | {statistics.median(b):.1f} ({n}) | "
          f"{statistics.median(ratios):.2f} |", flush=True)
