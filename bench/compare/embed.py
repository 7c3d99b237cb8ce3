#!/usr/bin/python3
"""Sentence embedding in scholar beside PyTorch, alternating: a random-weight BERT of
all-MiniLM-L6-v2's shape, batches of 32 texts of 128 tokens (embed.cpp, embed_torch.py). Each round
runs scholar at f32 (and f16, Q8_0; and f32 weights with bf16 products, SCHOLAR_MATMUL_PRECISION=bf16),
PyTorch at its best (and with its own bf16 mixed precision, torch.autocast) (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
unset, ATEN_CPU_CAPABILITY=avx512) and PyTorch with the environment as it is (both with
OMP_WAIT_POLICY=PASSIVE). Prints medians of sentences/s and of the per-round ratios (goal: >= 2x
PyTorch).
usage: bench/compare/embed.py BUILD_DIR [--rounds 3] [--steps 5] [--threads 1 2]
"""
import argparse
import os
import statistics

import runs

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("build_dir")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
args = ap.parse_args()

ours = os.path.join(args.build_dir, "bench", "embed_bench")
torch_script = os.path.join(here, "embed_torch.py")
configs = {"scholar_f32": [ours], "scholar_f16": [ours, "--type", "f16"],
           "scholar_q8_0": [ours, "--type", "q8_0"], "scholar_bf16": [ours],
           "torch_best": ["/usr/bin/python3", torch_script],
           "torch_best_bf16": ["/usr/bin/python3", torch_script, "--autocast", "bf16"],
           "torch_env": ["/usr/bin/python3", torch_script]}
med = statistics.median
for t in args.threads:
    r = {k: [] for k in configs}
    for _ in range(args.rounds):
        for k, cmd in configs.items():
            env = runs.ENV_BEST if k.startswith("torch_best") else runs.ENV_AS_IS
            if k == "scholar_bf16":
                env = dict(env, SCHOLAR_MATMUL_PRECISION="bf16")
            r[k].append(runs.run(cmd, t, args.steps, env))
    tb, te = r["torch_best"][-1], r["torch_env"][-1]
    print(f"\n## {t} thread(s), {args.rounds} alternating rounds of {args.steps} batches of 32 x 128")
    print(f"scholar: {r['scholar_f32'][-1]['system']}")
    print(f"PyTorch {tb['torch']} at its best: ATen {tb['aten']}, OpenBLAS {tb['openblas_core']}, "
          f"form {tb['form']}; as the environment sets it: ATen {te['aten']}, "
          f"OpenBLAS {te['openblas_core']}, form {te['form']}")
    print("| run | sentences/s | scholar f32 / this | scholar Q8_0 / this | scholar bf16 / this | cores used |")
    print("|---|---|---|---|---|---|")
    for k in configs:
        rate = med(x["sentences_per_s"] for x in r[k])
        f32 = med(a["sentences_per_s"] / b["sentences_per_s"] for a, b in zip(r["scholar_f32"], r[k]))
        q8 = med(a["sentences_per_s"] / b["sentences_per_s"] for a, b in zip(r["scholar_q8_0"], r[k]))
        bf = med(a["sentences_per_s"] / b["sentences_per_s"] for a, b in zip(r["scholar_bf16"], r[k]))
        cores = med(x["cores_used"] for x in r[k])
        print(f"| {k} | {rate:.1f} | {f32:.2f}x | {q8:.2f}x | {bf:.2f}x | {cores:.2f} |")
