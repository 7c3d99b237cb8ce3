#!/usr/bin/python3
"""The training configurations of train_step.cpp in PyTorch 1.13 (Debian's python3-torch), AdamW:
small (GPT-2 style: learned positions, LayerNorm, GELU tanh, fused QKV, tied embeddings, eager
attention as in Hugging Face's GPT-2; vocab 8192, context 256, 6 layers x 384, 6 heads, batch 8),
gpt2-small (the same family at 124M: vocab 50257, 12 x 768, batch 4 x 256) and llama (Hugging
Face's Llama written out: vocab 32000, 8 x 512, 8 heads with 4 KV heads, SwiGLU 1408, batch 4 x 512).
With --autocast bf16 the forward pass and loss run under torch.autocast("cpu", dtype=torch.bfloat16),
PyTorch's mixed precision on CPUs (linear layers and matmuls in bf16 through oneDNN, f32 weights and
optimizer). Prints one JSON line like train_step.cpp.
usage: train_step_torch.py [--config NAME] [--autocast bf16] [--threads N] [--steps N] [--warmup N]
"""
import argparse
import json
import resource
import time

import torch
import torch.nn.functional as F

from gpt_torch import GPT, Llama, kernels

ap = argparse.ArgumentParser()
ap.add_argument("--config", choices=["small", "gpt2-small", "llama"], default="small")
ap.add_argument("--autocast", choices=["bf16"])
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--warmup", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(1)
if args.config == "small":
    B, T, V = 8, 256, 8192
    model = GPT(6, 384, 6, V, T)
elif args.config == "gpt2-small":
    B, T, V = 4, 256, 50257
    model = GPT(12, 768, 12, V, 1024)
else:
    B, T, V = 4, 512, 32000
    model = Llama(8, 512, 8, 4, 1408, V, T)
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=3e-4, betas=(0.9, 0.95))
x = torch.randint(0, V, (B, T))
y = torch.randint(0, V, (B, T))


def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast == "bf16"):
        loss = F.cross_entropy(model(x).view(-1, V), y.view(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return float(loss)


for _ in range(args.warmup):
    step()
t0 = time.perf_counter()
for _ in range(args.steps):
    loss = step()
dt = (time.perf_counter() - t0) / args.steps
aten, core = kernels()
print(json.dumps({"impl": "pytorch", "config": args.config, "autocast": args.autocast, "threads": args.threads, "tokens_per_s": round(B * T / dt, 1),
                  "s_per_step": round(dt, 4),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "loss": round(loss, 4), "params": sum(p.numel() for p in model.parameters()),
                  "torch": torch.__version__, "aten": aten, "openblas_core": core}))
