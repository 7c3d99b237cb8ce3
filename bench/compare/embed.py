#!/usr/bin/python3
"""Sentence embedding in scholar beside PyTorch, alternating: a random-weight BERT of
all-MiniLM-L6-v2's shape, batches of 32 texts of 128 tokens (embed.cpp, embed_torch.py). Each round
runs scholar at f32, f16 and Q8_0 and with f32 weights and bf16 products
(SCHOLAR_MATMUL_PRECISION=bf16); PyTorch at its best (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset,
ATEN_CPU_CAPABILITY=avx512), also with its own bf16 mixed precision (torch.autocast); and PyTorch
with the environment as it is (all with OMP_WAIT_POLICY=PASSIVE, N threads on N cores: runs.py).
Prints medians of sentences/s and of the per-round ratios (goal: >= 2x PyTorch).
usage: bench/compare/embed.py BUILD_DIR [--rounds 3] [--steps 5] [--threads 1 2]
"""
import argparse
import os

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
torch = ["/usr/bin/python3", torch_script]
bf16 = dict(runs.ENV_AS_IS, SCHOLAR_MATMUL_PRECISION="bf16")
runners = {"scholar_f32": ([ours], runs.ENV_AS_IS),
           "scholar_f16": ([ours, "--type", "f16"], runs.ENV_AS_IS),
           "scholar_q8_0": ([ours, "--type", "q8_0"], runs.ENV_AS_IS),
           "scholar_bf16": ([ours], bf16),
           "torch_best": (torch, runs.ENV_BEST),
           "torch_best_bf16": (torch + ["--autocast", "bf16"], runs.ENV_BEST),
           "torch_env": (torch, runs.ENV_AS_IS)}
for t in args.threads:
    r = runs.alternate(runners, t, args.rounds, args.steps)
    tb, te = r["torch_best"][-1], r["torch_env"][-1]
    print(f"\n## {t} thread(s), {args.rounds} alternating rounds of {args.steps} batches of 32 x 128")
    print(f"scholar: {r['scholar_f32'][-1]['system']}")
    print(f"PyTorch {tb['torch']} at its best: ATen {tb['aten']}, OpenBLAS {tb['openblas_core']}, "
          f"form {tb['form']}; as the environment sets it: ATen {te['aten']}, "
          f"OpenBLAS {te['openblas_core']}, form {te['form']}")
    print("| run | sentences/s | scholar f32 / this | scholar Q8_0 / this | scholar bf16 / this | cores used |")
    print("|---|---|---|---|---|---|")
    for k in runners:
        rate = runs.median(r, k, "sentences_per_s")
        f32, q8, bf = (runs.median_ratio(r, ours_k, k, "sentences_per_s")
                       for ours_k in ("scholar_f32", "scholar_q8_0", "scholar_bf16"))
        print(f"| {k} | {rate:.1f} | {f32:.2f}x | {q8:.2f}x | {bf:.2f}x | "
              f"{runs.median(r, k, 'cores_used'):.2f} |")
