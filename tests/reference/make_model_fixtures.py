#!/usr/bin/python3
"""Writes tests/data/{gpt2,llama}_tiny.safetensors: tiny models built in plain PyTorch 1.13 with
Hugging Face's parameter names and semantics, plus their logits, loss, every gradient, and the
weights after three AdamW steps. tests/train/test_torch_parity.cpp checks scholar against them.

GPT-2: learned positions, LayerNorm (eps 1e-5), GELU (tanh), Conv1D weights [in, out], fused QKV,
tied embeddings. Llama: RoPE (rotate_half), RMSNorm (eps 1e-6), SwiGLU, grouped-query attention,
untied head.
Run: /usr/bin/python3 tests/reference/make_model_fixtures.py
"""
import json
import math
import os

import torch
import torch.nn.functional as F

from st_write import save

B, T = 2, 8
STEPS = 3
ADAMW = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)


def gpt2_params(cfg, g):
    C, V, L = cfg["n_embd"], cfg["vocab_size"], cfg["n_layer"]
    p = {"transformer.wte.weight": torch.randn(V, C, generator=g) * 0.02,
         "transformer.wpe.weight": torch.randn(cfg["n_positions"], C, generator=g) * 0.02}
    for i in range(L):
        h = f"transformer.h.{i}."
        p[h + "ln_1.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        p[h + "ln_1.bias"] = 0.1 * torch.randn(C, generator=g)
        p[h + "attn.c_attn.weight"] = torch.randn(C, 3 * C, generator=g) * 0.1
        p[h + "attn.c_attn.bias"] = torch.randn(3 * C, generator=g) * 0.02
        p[h + "attn.c_proj.weight"] = torch.randn(C, C, generator=g) * 0.1
        p[h + "attn.c_proj.bias"] = torch.randn(C, generator=g) * 0.02
        p[h + "ln_2.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        p[h + "ln_2.bias"] = 0.1 * torch.randn(C, generator=g)
        p[h + "mlp.c_fc.weight"] = torch.randn(C, 4 * C, generator=g) * 0.1
        p[h + "mlp.c_fc.bias"] = torch.randn(4 * C, generator=g) * 0.02
        p[h + "mlp.c_proj.weight"] = torch.randn(4 * C, C, generator=g) * 0.1
        p[h + "mlp.c_proj.bias"] = torch.randn(C, generator=g) * 0.02
    p["transformer.ln_f.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
    p["transformer.ln_f.bias"] = 0.1 * torch.randn(C, generator=g)
    return p


def gpt2_forward(cfg, p, ids):
    C, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    D = C // H
    Bn, Tn = ids.shape
    x = p["transformer.wte.weight"][ids] + p["transformer.wpe.weight"][:Tn]
    mask = torch.tril(torch.ones(Tn, Tn, dtype=torch.bool))
    for i in range(L):
        h = f"transformer.h.{i}."
        a = F.layer_norm(x, (C,), p[h + "ln_1.weight"], p[h + "ln_1.bias"], 1e-5)
        qkv = a @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=-1)
        q, k, v = (t.view(Bn, Tn, H, D).transpose(1, 2) for t in (q, k, v))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        s = s.masked_fill(~mask, float("-inf"))
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + o @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"]
        m = F.layer_norm(x, (C,), p[h + "ln_2.weight"], p[h + "ln_2.bias"], 1e-5)
        m = F.gelu(m @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"], approximate="tanh")
        x = x + m @ p[h + "mlp.c_proj.weight"] + p[h + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (C,), p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], 1e-5)
    return x @ p["transformer.wte.weight"].t()


def llama_params(cfg, g):
    C, V, L = cfg["hidden_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    Hkv, D, Fh = cfg["num_key_value_heads"], C // cfg["num_attention_heads"], cfg["intermediate_size"]
    p = {"model.embed_tokens.weight": torch.randn(V, C, generator=g) * 0.02}
    for i in range(L):
        h = f"model.layers.{i}."
        p[h + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        p[h + "self_attn.q_proj.weight"] = torch.randn(C, C, generator=g) * 0.1
        p[h + "self_attn.k_proj.weight"] = torch.randn(Hkv * D, C, generator=g) * 0.1
        p[h + "self_attn.v_proj.weight"] = torch.randn(Hkv * D, C, generator=g) * 0.1
        p[h + "self_attn.o_proj.weight"] = torch.randn(C, C, generator=g) * 0.1
        p[h + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        p[h + "mlp.gate_proj.weight"] = torch.randn(Fh, C, generator=g) * 0.1
        p[h + "mlp.up_proj.weight"] = torch.randn(Fh, C, generator=g) * 0.1
        p[h + "mlp.down_proj.weight"] = torch.randn(C, Fh, generator=g) * 0.1
    p["model.norm.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
    p["lm_head.weight"] = torch.randn(V, C, generator=g) * 0.05
    return p


def rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def llama_forward(cfg, p, ids):
    C, H, Hkv, L = (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
                    cfg["num_hidden_layers"])
    D, eps, theta = C // H, cfg["rms_norm_eps"], cfg["rope_theta"]
    Bn, Tn = ids.shape
    inv = 1.0 / (theta ** (torch.arange(0, D, 2).float() / D))
    freqs = torch.outer(torch.arange(Tn).float(), inv)
    cos = torch.cat([freqs.cos()] * 2, -1)[None, None]
    sin = torch.cat([freqs.sin()] * 2, -1)[None, None]

    def rot(t):
        return torch.cat([-t[..., D // 2:], t[..., :D // 2]], -1)

    x = p["model.embed_tokens.weight"][ids]
    mask = torch.tril(torch.ones(Tn, Tn, dtype=torch.bool))
    for i in range(L):
        h = f"model.layers.{i}."
        a = rms(x, p[h + "input_layernorm.weight"], eps)
        q = (a @ p[h + "self_attn.q_proj.weight"].t()).view(Bn, Tn, H, D).transpose(1, 2)
        k = (a @ p[h + "self_attn.k_proj.weight"].t()).view(Bn, Tn, Hkv, D).transpose(1, 2)
        v = (a @ p[h + "self_attn.v_proj.weight"].t()).view(Bn, Tn, Hkv, D).transpose(1, 2)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        s = s.masked_fill(~mask, float("-inf"))
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + o @ p[h + "self_attn.o_proj.weight"].t()
        m = rms(x, p[h + "post_attention_layernorm.weight"], eps)
        m = F.silu(m @ p[h + "mlp.gate_proj.weight"].t()) * (m @ p[h + "mlp.up_proj.weight"].t())
        x = x + m @ p[h + "mlp.down_proj.weight"].t()
    return rms(x, p["model.norm.weight"], eps) @ p["lm_head.weight"].t()


def build(name, cfg, make, forward, seed):
    g = torch.Generator().manual_seed(seed)
    params = {k: v.contiguous() for k, v in make(cfg, g).items()}
    V = cfg["vocab_size"]
    ids = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    targets[0, 1] = -100  # an ignored position
    out = {f"w.{k}": v.clone() for k, v in params.items()}
    out["ids"] = ids.to(torch.int32)
    out["targets"] = targets.to(torch.int32)
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    logits = forward(cfg, leaves, ids)
    loss = F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-100)
    loss.backward()
    out["logits"] = logits.detach()
    out["loss"] = loss.detach().reshape(1)
    for k, v in leaves.items():
        out[f"grad.{k}"] = v.grad.clone()
    # Three AdamW steps on the same batch; no weight decay on rank-1 parameters.
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    decay = [v for v in leaves.values() if v.dim() >= 2]
    no_decay = [v for v in leaves.values() if v.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], **ADAMW)
    for _ in range(STEPS):
        opt.zero_grad()
        logits = forward(cfg, leaves, ids)
        F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-100).backward()
        opt.step()
    for k, v in leaves.items():
        out[f"step3.{k}"] = v.detach().clone()
    path = os.path.join(os.path.dirname(__file__), "..", "data", f"{name}.safetensors")
    save(path, out, {"config": json.dumps(cfg), "adamw": json.dumps(ADAMW), "steps": STEPS,
                     "generator": "tests/reference/make_model_fixtures.py", "torch": torch.__version__})
    print("wrote", os.path.normpath(path), os.path.getsize(path), "bytes; loss", float(loss))


torch.manual_seed(0)
build("gpt2_tiny", {"model_type": "gpt2", "vocab_size": 64, "n_positions": 16, "n_embd": 32,
                    "n_layer": 2, "n_head": 4, "layer_norm_epsilon": 1e-5},
      gpt2_params, gpt2_forward, 1)
build("llama_tiny", {"model_type": "llama", "vocab_size": 64, "max_position_embeddings": 16,
                     "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "intermediate_size": 48, "rms_norm_eps": 1e-6,
                     "rope_theta": 10000.0, "tie_word_embeddings": False},
      llama_params, llama_forward, 2)
