"""The GPT-2-style model the PyTorch anchors train (train_step_torch.py, distill_step_torch.py,
lora_step_torch.py), as scholar's nn::TransformerLM builds it: learned positions, LayerNorm, GELU
(tanh), fused QKV, tied embeddings, eager causal attention as in Hugging Face's GPT-2, GPT-2
initialization; and kernels(), which says what ATen and OpenBLAS run."""
import ctypes
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, H, T):
        super().__init__()
        self.H = H
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.register_buffer("mask", torch.tril(torch.ones(T, T, dtype=torch.bool)))

    def forward(self, x):
        Bn, Tn, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(Bn, Tn, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(C // self.H)
        s = s.masked_fill(~self.mask[:Tn, :Tn], float("-inf"))
        y = (s.softmax(-1) @ v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, C, H, V, T):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.h = nn.ModuleList(Block(C, H, T) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        for name, p in self.named_parameters():  # GPT-2 initialization, as scholar's
            if p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.h:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.t()


def kernels():
    """ATen's CPU capability and the OpenBLAS core in use (the library torch loaded)."""
    cap = next((l.split(":")[1].strip() for l in torch.__config__.show().splitlines()
                if "CPU capability usage" in l), "?")
    core = "?"
    for name in ("libblas.so.3", "libopenblas.so.0"):
        try:
            f = ctypes.CDLL(name).openblas_get_corename
            f.restype = ctypes.c_char_p
            core = f().decode()
            break
        except (OSError, AttributeError):
            pass
    return cap, core
