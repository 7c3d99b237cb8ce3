#!/usr/bin/python3
"""Writes LoRA adapters in PEFT's on-disk layout over the tiny models of make_model_fixtures.py,
and what PyTorch computes with them, for tests/finetune/test_lora.cpp.

PEFT (peft/tuners/lora/layer.py, peft 0.13) is not packaged for Debian 12, so its math and naming
are written out here with python3-torch:
  forward   y = base(x) + lora_B(lora_A(dropout(x))) * scaling, scaling = lora_alpha / r
            (lora_alpha / sqrt(r) with use_rslora); for GPT-2's Conv1D layers (fan_in_fan_out)
            lora_A is still [r, in] and lora_B [out, r]
  merge     W += scaling * (B @ A), transposed for fan_in_fan_out
  files     adapter_model.safetensors: base_model.model.<module>.lora_A.weight [r, in],
            base_model.model.<module>.lora_B.weight [out, r], plus <module>.bias when bias is
            "lora_only" or "all"; adapter_config.json with peft_type LORA and LoraConfig's fields
Each case writes tests/data/lora/<case>/adapter_{model.safetensors,config.json} and
tests/data/lora/<case>.expected.safetensors: logits and loss of the adapted model, the gradients of
every trainable tensor (the base frozen), and the logits of the merged model.
Run: /usr/bin/python3 tests/reference/make_lora_fixtures.py
"""
import json
import math
import os

import torch
import torch.nn.functional as F

from st_write import load, save

HERE = os.path.dirname(__file__)
DATA = os.path.normpath(os.path.join(HERE, "..", "data"))


def peft_config(r, alpha, targets, rslora, bias, base):
    # The fields PEFT 0.13's LoraConfig writes (defaults where the case does not set them).
    return {"alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": base,
            "bias": bias, "fan_in_fan_out": base.startswith("gpt2"), "inference_mode": True,
            "init_lora_weights": True, "layer_replication": None, "layers_pattern": None,
            "layers_to_transform": None, "loftq_config": {}, "lora_alpha": alpha,
            "lora_dropout": 0.0, "megatron_config": None, "megatron_core": "megatron.core",
            "modules_to_save": None, "peft_type": "LORA", "r": r, "rank_pattern": {},
            "revision": None, "target_modules": sorted(targets), "task_type": "CAUSAL_LM",
            "use_dora": False, "use_rslora": rslora}


class Lora:
    """The adapted layers: module name -> (A, B), and the scaling."""

    def __init__(self, r, alpha, rslora):
        self.r, self.scaling, self.ab = r, (alpha / math.sqrt(r) if rslora else alpha / r), {}

    def lin(self, x, p, module, conv1d):
        w = p[module + ".weight"]
        y = x @ w if conv1d else x @ w.t()
        if module + ".bias" in p:
            y = y + p[module + ".bias"]
        if module in self.ab:
            a, b = self.ab[module]
            y = y + (x @ a.t() @ b.t()) * self.scaling
        return y

    def merged(self, p, conv1d):
        q = dict(p)
        for m, (a, b) in self.ab.items():
            d = self.scaling * (b @ a)
            q[m + ".weight"] = p[m + ".weight"] + (d.t() if conv1d else d)
        return q


def gpt2_forward(c, p, ids, lora):
    C, H, L = c["n_embd"], c["n_head"], c["n_layer"]
    D = C // H
    Bn, Tn = ids.shape
    x = p["transformer.wte.weight"][ids] + p["transformer.wpe.weight"][:Tn]
    mask = torch.tril(torch.ones(Tn, Tn, dtype=torch.bool))
    for i in range(L):
        h = f"transformer.h.{i}."
        a = F.layer_norm(x, (C,), p[h + "ln_1.weight"], p[h + "ln_1.bias"], 1e-5)
        q, k, v = lora.lin(a, p, h + "attn.c_attn", True).split(C, dim=-1)
        q, k, v = (t.view(Bn, Tn, H, D).transpose(1, 2) for t in (q, k, v))
        s = ((q @ k.transpose(-1, -2)) / math.sqrt(D)).masked_fill(~mask, float("-inf"))
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + lora.lin(o, p, h + "attn.c_proj", True)
        m = F.layer_norm(x, (C,), p[h + "ln_2.weight"], p[h + "ln_2.bias"], 1e-5)
        m = F.gelu(lora.lin(m, p, h + "mlp.c_fc", True), approximate="tanh")
        x = x + lora.lin(m, p, h + "mlp.c_proj", True)
    x = F.layer_norm(x, (C,), p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], 1e-5)
    return x @ p["transformer.wte.weight"].t()


def llama_forward(c, p, ids, lora):
    C, H, Hkv, L = (c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"],
                    c["num_hidden_layers"])
    D, eps, theta = C // H, c["rms_norm_eps"], c["rope_theta"]
    Bn, Tn = ids.shape
    inv = 1.0 / (theta ** (torch.arange(0, D, 2).float() / D))
    freqs = torch.outer(torch.arange(Tn).float(), inv)
    cos = torch.cat([freqs.cos()] * 2, -1)[None, None]
    sin = torch.cat([freqs.sin()] * 2, -1)[None, None]

    def rot(t):
        return torch.cat([-t[..., D // 2:], t[..., :D // 2]], -1)

    def rms(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    x = p["model.embed_tokens.weight"][ids]
    mask = torch.tril(torch.ones(Tn, Tn, dtype=torch.bool))
    for i in range(L):
        h = f"model.layers.{i}."
        a = rms(x, p[h + "input_layernorm.weight"])
        q = lora.lin(a, p, h + "self_attn.q_proj", False).view(Bn, Tn, H, D).transpose(1, 2)
        k = lora.lin(a, p, h + "self_attn.k_proj", False).view(Bn, Tn, Hkv, D).transpose(1, 2)
        v = lora.lin(a, p, h + "self_attn.v_proj", False).view(Bn, Tn, Hkv, D).transpose(1, 2)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
        s = ((q @ k.transpose(-1, -2)) / math.sqrt(D)).masked_fill(~mask, float("-inf"))
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + lora.lin(o, p, h + "self_attn.o_proj", False)
        m = rms(x, p[h + "post_attention_layernorm.weight"])
        g = lora.lin(m, p, h + "mlp.gate_proj", False)
        x = x + lora.lin(F.silu(g) * lora.lin(m, p, h + "mlp.up_proj", False), p,
                         h + "mlp.down_proj", False)
    return rms(x, p["model.norm.weight"]) @ p["lm_head.weight"].t()


def build(case, model, forward, conv1d, r, alpha, rslora, bias, targets, seed):
    src, _ = load(os.path.join(DATA, f"{model}.safetensors"))
    cfg = json.loads(_["config"])
    params = {k[2:]: v for k, v in src.items() if k.startswith("w.")}
    ids, targets_t = src["ids"].long(), src["targets"].long()
    V = cfg["vocab_size"]
    g = torch.Generator().manual_seed(seed)
    lora = Lora(r, alpha, rslora)
    modules = sorted({k[:-len(".weight")] for k in params if k.endswith(".weight")
                      and any(k[:-len(".weight")].endswith("." + t) for t in targets)})
    adapter = {}
    for m in modules:
        w = params[m + ".weight"]
        fin, fout = (w.shape[0], w.shape[1]) if conv1d else (w.shape[1], w.shape[0])
        bound = 1 / math.sqrt(fin)  # kaiming_uniform_(a=sqrt(5)) on an [r, in] matrix
        a = (torch.rand(r, fin, generator=g) * 2 - 1) * bound
        b = torch.randn(fout, r, generator=g) * 0.1  # as if trained (PEFT starts it at zero)
        lora.ab[m] = (a, b)
        adapter[f"base_model.model.{m}.lora_A.weight"] = a
        adapter[f"base_model.model.{m}.lora_B.weight"] = b
        if bias == "lora_only" and m + ".bias" in params:  # a trained bias travels with it
            params[m + ".bias"] = params[m + ".bias"] + 0.05 * torch.randn(fout, generator=g)
            adapter[f"base_model.model.{m}.bias"] = params[m + ".bias"]

    # Gradients: base frozen; adapters (and lora_only biases) trainable.
    leaves = {k: v.clone() for k, v in params.items()}
    trainable = {}
    for m, (a, b) in lora.ab.items():
        a.requires_grad_()
        b.requires_grad_()
        trainable[m + ".lora_A.weight"], trainable[m + ".lora_B.weight"] = a, b
        if bias == "lora_only" and m + ".bias" in leaves:
            leaves[m + ".bias"].requires_grad_()
            trainable[m + ".bias"] = leaves[m + ".bias"]
    logits = forward(cfg, leaves, ids, lora)
    loss = F.cross_entropy(logits.view(-1, V), targets_t.view(-1), ignore_index=-100)
    loss.backward()
    out = {"logits": logits.detach(), "loss": loss.detach().reshape(1)}
    for k, v in trainable.items():
        out["grad." + k] = v.grad.clone()
    with torch.no_grad():
        plain = Lora(r, alpha, rslora)
        out["merged_logits"] = forward(cfg, lora.merged(params, conv1d), ids, plain)

    d = os.path.join(DATA, "lora", case)
    os.makedirs(d, exist_ok=True)
    save(os.path.join(d, "adapter_model.safetensors"), {k: v.detach() for k, v in adapter.items()},
         {"format": "pt"})
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(peft_config(r, alpha, targets, rslora, bias, model), f, indent=2, sort_keys=True)
        f.write("\n")
    path = os.path.join(DATA, "lora", f"{case}.expected.safetensors")
    save(path, out, {"model": model, "generator": "tests/reference/make_lora_fixtures.py",
                     "torch": torch.__version__})
    print("wrote", case, os.path.getsize(path), "bytes; loss", float(loss))


build("gpt2_tiny_r4", "gpt2_tiny", gpt2_forward, True, 4, 8.0, False, "lora_only",
      ["c_attn", "c_proj", "c_fc"], 11)
build("llama_tiny_rslora", "llama_tiny", llama_forward, False, 4, 16.0, True, "none",
      ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], 12)
