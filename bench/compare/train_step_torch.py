#!/usr/bin/python3
"""The training configuration of train_step.cpp in PyTorch 1.13 (Debian's python3-torch): GPT-2
style (learned positions, LayerNorm, GELU tanh, fused QKV, tied embeddings, eager attention as in
Hugging Face's GPT-2), vocab 8192, context 256, 6 layers, width 384, 6 heads, batch 8, AdamW.
Prints one JSON line like train_step.cpp.
usage: train_step_torch.py [--threads N] [--steps N] [--warmup N]
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--warmup", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(1)
B, T, V, C, L, H = 8, 256, 8192, 384, 6, 6


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.register_buffer("mask", torch.tril(torch.ones(T, T, dtype=torch.bool)))

    def forward(self, x):
        Bn, Tn, _ = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(Bn, Tn, H, C // H).transpose(1, 2) for t in (q, k, v))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(C // H)
        s = s.masked_fill(~self.mask[:Tn, :Tn], float("-inf"))
        y = (s.softmax(-1) @ v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.h = nn.ModuleList(Block() for _ in range(L))
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.h:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.t()


model = GPT()
for name, p in model.named_parameters():  # GPT-2 initialization, as scholar's TransformerLM
    if p.dim() >= 2:
        nn.init.normal_(p, 0.0, 0.02)
    elif name.endswith("bias"):
        nn.init.zeros_(p)
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=3e-4, betas=(0.9, 0.95))
x = torch.randint(0, V, (B, T))
y = torch.randint(0, V, (B, T))


def step():
    opt.zero_grad(set_to_none=True)
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
print(json.dumps({"impl": "pytorch", "threads": args.threads, "tokens_per_s": round(B * T / dt, 1),
                  "s_per_step": round(dt, 4),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "loss": round(loss, 4), "params": sum(p.numel() for p in model.parameters()),
                  "torch": torch.__version__}))
