#!/usr/bin/python3
"""The LoRA step of lora_step.cpp in PyTorch 1.13 (Debian's python3-torch): the GPT-2 style model of
gpt_torch.py (vocab 8192, context 256, 6 layers, width 384, 6 heads, batch 8) with a hand-written
LoRA linear (PEFT's math: y = base(x) + (x A^T) B^T * alpha / r, A kaiming-uniform, B zero) on
c_attn, c_proj, c_fc and the MLP projection, r = 8, alpha 16; every base parameter has
requires_grad=False; AdamW on the adapters. With --autocast bf16 the forward pass and loss run under
torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's mixed precision on CPUs (as train_step_torch.py).
Prints one JSON line like lora_step.cpp.
usage: lora_step_torch.py [--autocast bf16] [--threads N] [--steps N] [--warmup N]
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt_torch import GPT, kernels

ap = argparse.ArgumentParser()
ap.add_argument("--autocast", choices=["bf16"])
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--warmup", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(1)
B, T, V, C, L, H = 8, 256, 8192, 384, 6, 6
R, ALPHA = 8, 16.0


class LoraLinear(nn.Module):
    def __init__(self, base):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(R, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, R))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = ALPHA / R

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling


model = GPT(L, C, H, V, T)
for p in model.parameters():
    p.requires_grad_(False)
for b in model.h:
    b.c_attn, b.c_proj = LoraLinear(b.c_attn), LoraLinear(b.c_proj)
    b.c_fc, b.mlp_proj = LoraLinear(b.c_fc), LoraLinear(b.mlp_proj)
trainable = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(trainable, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.0)
x = torch.randint(0, V, (B, T))
y = torch.randint(0, V, (B, T))


def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast == "bf16"):
        loss = F.cross_entropy(model(x).view(-1, V), y.view(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    opt.step()
    return float(loss)


for _ in range(args.warmup):
    step()
t0 = time.perf_counter()
for _ in range(args.steps):
    loss = step()
dt = (time.perf_counter() - t0) / args.steps
print(json.dumps({"impl": "pytorch", "autocast": args.autocast, "threads": args.threads, "tokens_per_s": round(B * T / dt, 1),
                  "s_per_step": round(dt, 4),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "loss": round(loss, 4), "trainable": sum(p.numel() for p in trainable),
                  "torch": torch.__version__, "aten": kernels()[0], "openblas_core": kernels()[1]}))
