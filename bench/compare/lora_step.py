#!/usr/bin/python3
"""A LoRA training step in scholar beside the same step in PyTorch, alternating, plus scholar's
LoRA over quantized bases and full fine-tuning of the same model for memory.

GPT-2 style 6 x 384, vocabulary 8192, batch 8 x 256, LoRA r = 8 (alpha 16) on the attention and MLP
projections (lora_step.cpp, lora_step_torch.py). Each round runs scholar LoRA (f32 base; again with
bf16 matrix products), PyTorch at its best (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset,
ATEN_CPU_CAPABILITY=avx512; again under its own mixed precision, torch.autocast with bf16) and
PyTorch with the environment as it is (all with OMP_WAIT_POLICY=PASSIVE), then scholar over Q8_0
and Q4_0 bases and full fine-tuning. Prints medians over rounds: tokens/s and peak memory, and the per-round ratio
of scholar to each PyTorch run (the goal is >= 1.5x with no more memory).
usage: bench/compare/lora_step.py BUILD_DIR [--rounds 3] [--steps 5] [--threads 1 2]
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

ours = os.path.join(args.build_dir, "bench", "lora_step")
torch_script = os.path.join(here, "lora_step_torch.py")
env_as_is, env_best = runs.ENV_AS_IS, runs.ENV_BEST


def run(cmd, threads, env):
    return runs.run(cmd, threads, args.steps, env)


med = statistics.median
configs = {"lora": [ours], "lora_bf16": [ours], "torch_best": ["/usr/bin/python3", torch_script],
           "torch_best_bf16": ["/usr/bin/python3", torch_script, "--autocast", "bf16"],
           "torch_env": ["/usr/bin/python3", torch_script], "qlora_q8_0": [ours, "--base", "q8_0"],
           "qlora_q4_0": [ours, "--base", "q4_0"], "full": [ours, "--full"]}
for t in args.threads:
    r = {k: [] for k in configs}
    for _ in range(args.rounds):
        for k, cmd in configs.items():
            env = env_best if k.startswith("torch_best") else env_as_is
            if k == "lora_bf16":
                env = dict(env, SCHOLAR_MATMUL_PRECISION="bf16")
            r[k].append(run(cmd, t, env))
    tb, te = r["torch_best"][-1], r["torch_env"][-1]
    print(f"\n## {t} thread(s), {args.rounds} alternating rounds of {args.steps} steps")
    print(f"scholar: {r['lora'][-1]['system']}")
    print(f"PyTorch {tb['torch']} at its best: ATen {tb['aten']}, OpenBLAS {tb['openblas_core']}; "
          f"as the environment sets it: ATen {te['aten']}, OpenBLAS {te['openblas_core']}")
    print("| step | trainable | tokens/s | peak MB | cores used | scholar LoRA / this | "
          "scholar LoRA bf16 / this |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    names = {"lora": "scholar LoRA, f32 base", "lora_bf16": "scholar LoRA, f32 base, bf16 products",
             "torch_best": "PyTorch LoRA at its best",
             "torch_best_bf16": "PyTorch LoRA at its best, autocast bf16",
             "torch_env": "PyTorch LoRA, environment as is", "qlora_q8_0": "scholar LoRA, Q8_0 base",
             "qlora_q4_0": "scholar LoRA, Q4_0 base", "full": "scholar full fine-tuning"}
    for k, name in names.items():
        ratio = med([a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(r["lora"], r[k])])
        ratio_bf16 = med([a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(r["lora_bf16"], r[k])])
        print(f"| {name} | {r[k][-1]['trainable']} | {med(x['tokens_per_s'] for x in r[k]):.0f} | "
              f"{med(x['peak_rss_mb'] for x in r[k]):.0f} | {med(x['cores_used'] for x in r[k]):.2f} | "
              f"{'' if k == 'lora' else f'{ratio:.2f}'} | "
              f"{'' if k == 'lora_bf16' else f'{ratio_bf16:.2f}'} |")
