#!/usr/bin/python3
"""The sentence embedding of embed.cpp in PyTorch 1.13 (Debian's python3-torch): a BERT of
all-MiniLM-L6-v2's shape (vocab 30522, 6 layers x 384, 12 heads, FFN 1536), 32 sequences of 128
tokens, mean pooling and L2 normalization, under torch.inference_mode(). Two forms, the faster
counts: "manual" is transformers' BertModel written out (matmuls, softmax, erf GELU, LayerNorm), as
sentence-transformers runs it; "fastpath" is nn.TransformerEncoder in eval mode, which PyTorch 1.13
runs with its fused native encoder-layer kernel. Prints one JSON line like embed.cpp.
With --autocast bf16 the manual form runs under torch.autocast("cpu", dtype=torch.bfloat16) (PyTorch's
mixed precision: products in bf16 through oneDNN; the fast path rejects it).
usage: embed_torch.py [--autocast bf16] [--threads N] [--steps N] [--warmup N]
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt_torch import kernels

ap = argparse.ArgumentParser()
ap.add_argument("--autocast", choices=["bf16"])
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--warmup", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(1)
V, P, L, C, H, FF, B, T = 30522, 512, 6, 384, 12, 1536, 32, 128
D = C // H


class Manual(nn.Module):
    def __init__(self):
        super().__init__()
        self.word, self.pos, self.tok_type = nn.Embedding(V, C), nn.Embedding(P, C), nn.Embedding(2, C)
        self.ln = nn.LayerNorm(C, eps=1e-12)
        self.layers = nn.ModuleList()
        for _ in range(L):
            m = nn.Module()
            m.q, m.k, m.v, m.o = (nn.Linear(C, C) for _ in range(4))
            m.ln1, m.ln2 = nn.LayerNorm(C, eps=1e-12), nn.LayerNorm(C, eps=1e-12)
            m.up, m.down = nn.Linear(C, FF), nn.Linear(FF, C)
            self.layers.append(m)

    def forward(self, ids, mask):
        x = self.ln(self.word(ids) + self.pos(torch.arange(ids.shape[1]))[None] + self.tok_type.weight[0])
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for m in self.layers:
            def heads(t):
                return t.view(B, T, H, D).transpose(1, 2)
            q, k, v = heads(m.q(x)), heads(m.k(x)), heads(m.v(x))
            a = torch.softmax(q @ k.transpose(-1, -2) / D ** 0.5 + ext, -1) @ v
            x = m.ln1(x + m.o(a.transpose(1, 2).reshape(B, T, C)))
            x = m.ln2(x + m.down(F.gelu(m.up(x))))
        return x


class Fastpath(nn.Module):
    def __init__(self):
        super().__init__()
        self.word, self.pos, self.tok_type = nn.Embedding(V, C), nn.Embedding(P, C), nn.Embedding(2, C)
        self.ln = nn.LayerNorm(C, eps=1e-12)
        layer = nn.TransformerEncoderLayer(C, H, FF, dropout=0.0, activation="gelu",
                                           layer_norm_eps=1e-12, batch_first=True, norm_first=False)
        self.enc = nn.TransformerEncoder(layer, L, enable_nested_tensor=False)

    def forward(self, ids, mask):
        x = self.ln(self.word(ids) + self.pos(torch.arange(ids.shape[1]))[None] + self.tok_type.weight[0])
        return self.enc(x, src_key_padding_mask=mask == 0)


def embed(model, ids, mask):
    h = model(ids, mask)
    m = mask[..., None].float()
    return F.normalize((h * m).sum(1) / m.sum(1), dim=1)


ids = torch.randint(5, V, (B, T))
mask = torch.ones(B, T, dtype=torch.long)
best = None
# The fused fast path rejects autocast's bf16 activations in PyTorch 1.13, so autocast runs the
# manual form only.
forms = (("manual", Manual()),) if args.autocast else (("manual", Manual()), ("fastpath", Fastpath()))
for name, model in forms:
    model.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                enabled=args.autocast == "bf16"):
        for _ in range(args.warmup):
            embed(model, ids, mask)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            embed(model, ids, mask)
        s = time.perf_counter() - t0
    rate = B * args.steps / s
    if best is None or rate > best[1]:
        best = (name, rate, s / args.steps)
aten, core = kernels()
print(json.dumps({"sentences_per_s": round(best[1], 2), "seconds_per_batch": round(best[2], 4),
                  "form": best[0], "torch": torch.__version__, "aten": aten, "openblas_core": core,
                  "threads": args.threads, "autocast": args.autocast}))
