#!/usr/bin/python3
"""Times training steps in scholar (f32, and bf16 matrix products) and in PyTorch 1.13 (at its best,
and as the environment sets it), alternately, and prints medians of tokens/s and of the per-round
ratios, peak resident memory and the cores each run used.

Configurations (train_step.cpp): small (GPT-2 style 6 x 384, vocab 8192, batch 8 x 256), gpt2-small
(124M, vocab 50257, batch 4 x 256) and llama (8 x 512, GQA 8/4, SwiGLU 1408, vocab 32000, batch
4 x 512); AdamW, forward, backward, clipping and the optimizer step. Each round runs every
implementation once (A B C D A B C D ...) so drifts in machine speed hit all of them. torch_best_bf16
is PyTorch's own mixed precision (torch.autocast on CPU with bf16, oneDNN's bf16 products). PyTorch at
its best: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, ATEN_CPU_CAPABILITY=avx512 (runs.py); every
run gets OMP_WAIT_POLICY=PASSIVE and N threads means N cores for both libraries (runs.py).

usage: bench/compare/train_step.py BUILD_DIR [--configs small gpt2-small llama] [--rounds 3]
       [--steps 5] [--threads 1 2] [--markdown]
"""
import argparse
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import runs  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("build_dir")
ap.add_argument("--configs", nargs="+", default=["small"], choices=["small", "gpt2-small", "llama"])
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
ap.add_argument("--markdown", action="store_true")
args = ap.parse_args()

ours = [os.path.join(args.build_dir, "bench", "train_step")]
theirs = ["/usr/bin/python3", os.path.join(here, "train_step_torch.py")]
runners = {"scholar_f32": (ours, dict(runs.ENV_AS_IS, SCHOLAR_MATMUL_PRECISION="f32")),
           "scholar_bf16": (ours, dict(runs.ENV_AS_IS, SCHOLAR_MATMUL_PRECISION="bf16")),
           "torch_best": (theirs, runs.ENV_BEST),
           "torch_best_bf16": (theirs + ["--autocast", "bf16"], runs.ENV_BEST),
           "torch_env": (theirs, runs.ENV_AS_IS)}

for config in args.configs:
    for t in args.threads:
        r = runs.alternate(runners, t, args.rounds, args.steps, args.warmup, ["--config", config])
        tb, te = r["torch_best"][-1], r["torch_env"][-1]
        print(f"\n## {config}, {t} thread(s): {args.rounds} alternating rounds of {args.steps} steps "
              f"({r['scholar_f32'][-1]['params'] / 1e6:.1f}M parameters)")
        print(f"scholar: {r['scholar_bf16'][-1]['system']}")
        print(f"PyTorch {tb['torch']} at its best: ATen {tb['aten']}, OpenBLAS {tb['openblas_core']}; "
              f"as the environment sets it: ATen {te['aten']}, OpenBLAS {te['openblas_core']}")
        if args.markdown:
            print("| run | tokens/s | scholar f32 / this | scholar bf16 / this | peak MB | cores used |")
            print("|---|---:|---:|---:|---:|---:|")
        for k in runners:
            rate, mem = runs.median(r, k, "tokens_per_s"), runs.median(r, k, "peak_rss_mb")
            f32 = runs.median_ratio(r, "scholar_f32", k, "tokens_per_s")
            bf = runs.median_ratio(r, "scholar_bf16", k, "tokens_per_s")
            cores = runs.median(r, k, "cores_used")
            if args.markdown:
                print(f"| {k} | {rate:.0f} | {f32:.2f}x | {bf:.2f}x | {mem:.0f} | {cores:.2f} |")
            else:
                print(f"{k:>13} {rate:>9.0f} tok/s  f32/this {f32:5.2f}x  bf16/this {bf:5.2f}x  "
                      f"{mem:6.0f} MB  {cores:.2f} cores")
        sys.stdout.flush()
