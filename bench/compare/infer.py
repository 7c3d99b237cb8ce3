#!/usr/bin/python3
"""Inference speed: scholar beside llama.cpp's own llama-bench, on the same GGUF files, in one run.

For each model type (F32, F16, Q8_0, Q4_0) and thread count (1, 2) it alternates the two programs
(A B A B ...), each measuring pp128 (a 128-token prompt into an empty cache) and tg128 (128 tokens
generated one at a time), and prints tokens/s (medians) and the median of the per-round ratios.
Decode is limited by memory bandwidth, so it also measures the machine's read bandwidth and prints
each decode figure as a percentage of the roofline: bandwidth / (weight bytes read per token).

With --matmul-precision bf16, scholar runs its prompt products in bf16 (SCHOLAR_MATMUL_PRECISION);
llama.cpp's bf16 counterpart is the bf16 model type (its AVX512_BF16 dot products).

usage: bench/compare/infer.py [--rounds 3] [--types f32,f16,bf16,q8_0,q4_0] [--threads 1,2]
                              [--matmul-precision f32|bf16]
Needs: a release build (infer_bench), llama.cpp from tests/reference/get_llama_cpp.sh; builds
llama-bench (bench/compare/build_llama_bench.sh) and the models (make_bench_models.py) if missing.
Set OMP_WAIT_POLICY=PASSIVE is not needed: llama.cpp uses its own thread pool."""
import argparse
import json
import os
import statistics
import subprocess
import sys

import llama_anchor

ap = argparse.ArgumentParser()
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--types", default="f32,f16,q8_0,q4_0")
ap.add_argument("--threads", default="1,2")
ap.add_argument("--models", default=llama_anchor.default_models)
ap.add_argument("--matmul-precision", choices=["f32", "bf16"], default="f32")
args = ap.parse_args()

ours = llama_anchor.release_binary("bench", "infer_bench")
llama_bench = llama_anchor.llama_bench()
llama_anchor.bench_models(args.models)


def run_ours(model, threads):
    out = subprocess.run([ours, model, "--threads", str(threads), "--reps", "3"], check=True,
                         capture_output=True, text=True,
                         env=dict(os.environ, SCHOLAR_MATMUL_PRECISION=args.matmul_precision)).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {r["test"]: r for r in rows}


def run_llama(model, threads):
    out = subprocess.run([llama_bench, "-m", model, "-p", "128", "-n", "128", "-t", str(threads),
                          "-r", "3", "-o", "json"], check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)
    res = {}
    for r in rows:
        test = f"pp{r['n_prompt']}" if r["n_gen"] == 0 else f"tg{r['n_gen']}"
        res[test] = r["avg_ts"]
    return res


threads_list = [int(t) for t in args.threads.split(",")]
bandwidth = {}
for t in threads_list:
    out = subprocess.run([ours, "--bandwidth", "--threads", str(t)], check=True,
                         capture_output=True, text=True).stdout
    bandwidth[t] = json.loads(out)["bytes_per_s"]
    print(f"memory read bandwidth, {t} thread(s): {bandwidth[t] / 1e9:.1f} GB/s", flush=True)

print(f"\n| type | threads | test | llama.cpp tok/s | scholar tok/s | ratio | scholar % of roofline |")
print("|---|---|---|---|---|---|---|")
for typ in args.types.split(","):
    model = os.path.join(args.models, f"llama124m-{typ}.gguf")
    for t in threads_list:
        ratios = {"pp128": [], "tg128": []}
        ts = {"pp128": ([], []), "tg128": ([], [])}
        bpt = 0
        for _ in range(args.rounds):
            a = run_ours(model, t)
            b = run_llama(model, t)
            bpt = a["tg128"]["bytes_per_token"]
            for test in ("pp128", "tg128"):
                ts[test][0].append(a[test]["tokens_per_s"])
                ts[test][1].append(b[test])
                ratios[test].append(a[test]["tokens_per_s"] / b[test])
        for test in ("pp128", "tg128"):
            s, l = statistics.median(ts[test][0]), statistics.median(ts[test][1])
            roof = ""
            if test == "tg128":
                roof = f"{100 * s * bpt / bandwidth[t]:.0f}%"
            print(f"| {typ} | {t} | {test} | {l:.1f} | {s:.1f} | {statistics.median(ratios[test]):.2f} | {roof} |",
                  flush=True)
