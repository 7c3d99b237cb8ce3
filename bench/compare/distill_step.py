#!/usr/bin/python3
"""A distillation step in scholar beside a plain training step, and beside PyTorch, alternating.

Student GPT-2 style 2 x 128, teacher 6 x 384, vocabulary 8192, batch 16 x 128 (distill_step.cpp and
distill_step_torch.py). Each round runs, in turn: scholar plain, cache and live; PyTorch live at its
best (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, ATEN_CPU_CAPABILITY=avx512) and PyTorch live with
the environment as it is; all PyTorch runs get OMP_WAIT_POLICY=PASSIVE. Prints medians over rounds:
  - scholar's cache step time over its plain step time (the goal is <= 1.15),
  - scholar live against PyTorch live, tokens/s and peak memory (the goal is >= 1.5x, no more memory),
  - the teacher's forward per step on each side.
usage: bench/compare/distill_step.py BUILD_DIR [--rounds 3] [--steps 5] [--threads 1 2]
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

ours = os.path.join(args.build_dir, "bench", "distill_step")
torch_script = os.path.join(here, "distill_step_torch.py")
env_as_is, env_best = runs.ENV_AS_IS, runs.ENV_BEST


def run(cmd, threads, env):
    return runs.run(cmd, threads, args.steps, env)


med = statistics.median
for t in args.threads:
    r = {k: [] for k in ("plain", "cache", "live", "live_bf16", "torch_best", "torch_env")}
    for _ in range(args.rounds):
        for mode in ("plain", "cache", "live"):
            r[mode].append(run([ours, "--mode", mode], t, env_as_is))
        r["live_bf16"].append(run([ours, "--mode", "live"], t,
                                  dict(env_as_is, SCHOLAR_MATMUL_PRECISION="bf16")))
        r["torch_best"].append(run(["/usr/bin/python3", torch_script, "--mode", "live"], t, env_best))
        r["torch_env"].append(run(["/usr/bin/python3", torch_script, "--mode", "live"], t, env_as_is))
    tb, te = r["torch_best"][-1], r["torch_env"][-1]
    print(f"\n## {t} thread(s), {args.rounds} alternating rounds of {args.steps} steps")
    print(f"scholar: {r['live'][-1]['system']}")
    print(f"PyTorch {tb['torch']} at its best: ATen {tb['aten']}, OpenBLAS {tb['openblas_core']}; "
          f"as the environment sets it: ATen {te['aten']}, OpenBLAS {te['openblas_core']}")
    ratio = med([c["s_per_step"] / p["s_per_step"] for c, p in zip(r["cache"], r["plain"])])
    print(f"scholar step: plain {med(x['s_per_step'] for x in r['plain']) * 1e3:.1f} ms, "
          f"distillation from the top-K cache {med(x['s_per_step'] for x in r['cache']) * 1e3:.1f} ms "
          f"({ratio:.2f}x plain), live teacher {med(x['s_per_step'] for x in r['live']) * 1e3:.1f} ms "
          f"(teacher forward {med(x['teacher_s_per_step'] for x in r['live']) * 1e3:.1f} ms)")
    print("| live distillation step | tokens/s | peak MB | teacher forward ms | cores used | scholar / this |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| scholar | {med(x['tokens_per_s'] for x in r['live']):.0f} | "
          f"{med(x['peak_rss_mb'] for x in r['live']):.0f} | "
          f"{med(x['teacher_s_per_step'] for x in r['live']) * 1e3:.1f} | "
          f"{med(x['cores_used'] for x in r['live']):.2f} | |")
    for key, name in (("live_bf16", "scholar, bf16 products"), ("torch_best", "PyTorch at its best"),
                      ("torch_env", "PyTorch, environment as is")):
        ratio = med([a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(r["live"], r[key])])
        print(f"| {name} | {med(x['tokens_per_s'] for x in r[key]):.0f} | "
              f"{med(x['peak_rss_mb'] for x in r[key]):.0f} | "
              f"{med(x['teacher_s_per_step'] for x in r[key]) * 1e3:.1f} | "
              f"{med(x['cores_used'] for x in r[key]):.2f} | {ratio:.2f} |")
