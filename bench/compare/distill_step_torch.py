#!/usr/bin/python3
"""The distillation step of distill_step.cpp in PyTorch 1.13 (Debian's python3-torch): GPT-2 style
student 2 x 128 (4 heads) and teacher 6 x 384 (6 heads), vocabulary 8192, batch 16 x 128, AdamW.
  plain: the student's cross-entropy step
  live:  the teacher's forward under no_grad, then
         0.5 * T^2 * kl_div(log_softmax(s / T), log_softmax(t / T), log_target=True) + 0.5 * CE
         on the full logits (T = 2), backward, clipping, AdamW
Prints one JSON line like distill_step.cpp, with the ATen CPU capability and BLAS in use.
usage: distill_step_torch.py --mode plain|live [--threads N] [--steps N] [--warmup N]
"""
import argparse
import json
import resource
import time

import torch
import torch.nn.functional as F

from gpt_torch import GPT, kernels



ap = argparse.ArgumentParser()
ap.add_argument("--mode", choices=["plain", "live"], default="plain")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--warmup", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(1)
B, T, V, TEMP, ALPHA = 16, 128, 8192, 2.0, 0.5


student = GPT(2, 128, 4, V, T)
teacher = GPT(6, 384, 6, V, T).eval() if args.mode == "live" else None
decay = [p for p in student.parameters() if p.dim() >= 2]
no_decay = [p for p in student.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=3e-4, betas=(0.9, 0.95))
g = torch.Generator().manual_seed(2)
tokens = torch.randint(0, V, ((args.warmup + args.steps) * B * T + 1,), generator=g)
teacher_seconds = 0.0


def step(i):
    global teacher_seconds
    w = tokens[i * B * T: (i + 1) * B * T + 1]
    x, y = w[:-1].view(B, T), w[1:].view(B, T)
    opt.zero_grad(set_to_none=True)
    s = student(x)
    ce = F.cross_entropy(s.view(-1, V), y.reshape(-1))
    if teacher is None:
        loss = ce
    else:
        t0 = time.perf_counter()
        with torch.no_grad():
            t = teacher(x)
        teacher_seconds += time.perf_counter() - t0
        kd = F.kl_div(F.log_softmax(s.view(-1, V) / TEMP, -1), F.log_softmax(t.view(-1, V) / TEMP, -1),
                      reduction="batchmean", log_target=True)
        loss = ALPHA * TEMP * TEMP * kd + (1 - ALPHA) * ce
    loss.backward()
    torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
    opt.step()
    return float(loss)


for i in range(args.warmup):
    step(i)
teacher_seconds = 0.0
t0 = time.perf_counter()
for i in range(args.steps):
    loss = step(args.warmup + i)
dt = (time.perf_counter() - t0) / args.steps
print(json.dumps({"impl": "pytorch", "mode": args.mode, "threads": args.threads,
                  "tokens_per_s": round(B * T / dt, 1), "s_per_step": round(dt, 4),
                  "teacher_s_per_step": round(teacher_seconds / args.steps, 4),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "loss": round(loss, 4), "torch": torch.__version__,
                  "aten": kernels()[0], "openblas_core": kernels()[1]}))
