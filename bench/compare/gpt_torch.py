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


class RMSNorm(nn.Module):
    def __init__(self, C, eps=1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(C)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class LlamaBlock(nn.Module):
    """Hugging Face's LlamaDecoderLayer written out: RMSNorm, rotary positions (rotate_half),
    grouped-query attention (KV heads repeated), SwiGLU MLP, no biases."""

    def __init__(self, C, H, KV, FF, T):
        super().__init__()
        self.H, self.KV, self.D = H, KV, C // H
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(C), RMSNorm(C)
        self.q_proj, self.o_proj = nn.Linear(C, C, bias=False), nn.Linear(C, C, bias=False)
        self.k_proj = nn.Linear(C, KV * self.D, bias=False)
        self.v_proj = nn.Linear(C, KV * self.D, bias=False)
        self.gate_proj, self.up_proj = nn.Linear(C, FF, bias=False), nn.Linear(C, FF, bias=False)
        self.down_proj = nn.Linear(FF, C, bias=False)
        self.register_buffer("mask", torch.tril(torch.ones(T, T, dtype=torch.bool)))

    def forward(self, x, cos, sin):
        Bn, Tn, C = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(Bn, Tn, self.H, self.D).transpose(1, 2)
        k = self.k_proj(h).view(Bn, Tn, self.KV, self.D).transpose(1, 2)
        v = self.v_proj(h).view(Bn, Tn, self.KV, self.D).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(self.H // self.KV, dim=1)
        v = v.repeat_interleave(self.H // self.KV, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.D)
        s = s.masked_fill(~self.mask[:Tn, :Tn], float("-inf"))
        x = x + self.o_proj((s.softmax(-1) @ v).transpose(1, 2).reshape(Bn, Tn, C))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    """The Llama-style model of scholar's TransformerConfig::llama: untied head, final RMSNorm."""

    def __init__(self, L, C, H, KV, FF, V, T, theta=10000.0):
        super().__init__()
        self.embed_tokens = nn.Embedding(V, C)
        self.layers = nn.ModuleList(LlamaBlock(C, H, KV, FF, T) for _ in range(L))
        self.norm, self.lm_head = RMSNorm(C), nn.Linear(C, V, bias=False)
        D = C // H
        inv = theta ** (-torch.arange(0, D, 2).float() / D)
        ang = torch.outer(torch.arange(T).float(), inv)
        self.register_buffer("cos", torch.cat((ang, ang), -1).cos())
        self.register_buffer("sin", torch.cat((ang, ang), -1).sin())
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx):
        Tn = idx.shape[1]
        x = self.embed_tokens(idx)
        for b in self.layers:
            x = b(x, self.cos[:Tn], self.sin[:Tn])
        return self.lm_head(self.norm(x))


def kernels():
    """ATen's CPU capability, and the OpenBLAS core and thread count in use (the library torch
    loaded)."""
    cap = next((l.split(":")[1].strip() for l in torch.__config__.show().splitlines()
                if "CPU capability usage" in l), "?")
    core = "?"
    for name in ("libblas.so.3", "libopenblas.so.0"):
        try:
            lib = ctypes.CDLL(name)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            n = lib.openblas_get_num_threads()
            core = f"{lib.openblas_get_corename().decode()}, {n} thread{'s' if n != 1 else ''}"
            break
        except (OSError, AttributeError):
            pass
    return cap, core
