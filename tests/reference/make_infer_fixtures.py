#!/usr/bin/python3
"""Writes tests/data/infer/{gpt2,llama,qwen2,llama31}/: small random-weight models as Hugging Face
directories (config.json, model.safetensors) and expected.safetensors with PyTorch's results:
  prompt            [T] token ids
  logits_f32        [T, V] logits of the prompt with the float32 weights
  logits_f16        [T, V] the same with every weight matrix rounded to float16 (what a F16 file holds)
  greedy_f32/f16    [N] greedy continuation, each step a full forward pass over the whole sequence
                    (no cache), so it checks scholar's KV cache independently
GPT-2: Conv1D weights [in, out], LayerNorm, GELU (tanh), learned positions, tied head. Llama:
rotate_half RoPE, RMSNorm, SwiGLU, grouped-query attention, untied head. Qwen2: Llama plus q/k/v
biases, tied head. Llama31: Llama with Llama 3.1's RoPE scaling (rope_type llama3). tests/infer/test_infer.cpp checks scholar against these.
Run: /usr/bin/python3 tests/reference/make_infer_fixtures.py"""
import json
import math
import os

import torch
import torch.nn.functional as F

from st_write import save

here = os.path.dirname(os.path.abspath(__file__))
T_PROMPT, N_GREEDY = 12, 10


def gpt2_params(c, g):
    C, V, L, Fh = c["n_embd"], c["vocab_size"], c["n_layer"], 4 * c["n_embd"]
    p = {"transformer.wte.weight": torch.randn(V, C, generator=g) * 0.3,
         "transformer.wpe.weight": torch.randn(c["n_positions"], C, generator=g) * 0.1}
    for i in range(L):
        h = f"transformer.h.{i}."
        p[h + "ln_1.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        p[h + "ln_1.bias"] = 0.1 * torch.randn(C, generator=g)
        p[h + "attn.c_attn.weight"] = torch.randn(C, 3 * C, generator=g) * 0.15
        p[h + "attn.c_attn.bias"] = torch.randn(3 * C, generator=g) * 0.05
        p[h + "attn.c_proj.weight"] = torch.randn(C, C, generator=g) * 0.1
        p[h + "attn.c_proj.bias"] = torch.randn(C, generator=g) * 0.05
        p[h + "ln_2.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        p[h + "ln_2.bias"] = 0.1 * torch.randn(C, generator=g)
        p[h + "mlp.c_fc.weight"] = torch.randn(C, Fh, generator=g) * 0.1
        p[h + "mlp.c_fc.bias"] = torch.randn(Fh, generator=g) * 0.05
        p[h + "mlp.c_proj.weight"] = torch.randn(Fh, C, generator=g) * 0.1
        p[h + "mlp.c_proj.bias"] = torch.randn(C, generator=g) * 0.05
    p["transformer.ln_f.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
    p["transformer.ln_f.bias"] = 0.1 * torch.randn(C, generator=g)
    return p


def gpt2_forward(c, p, ids):
    C, H = c["n_embd"], c["n_head"]
    D, T = C // H, ids.shape[0]
    x = p["transformer.wte.weight"][ids] + p["transformer.wpe.weight"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(c["n_layer"]):
        h = f"transformer.h.{i}."
        a = F.layer_norm(x, (C,), p[h + "ln_1.weight"], p[h + "ln_1.bias"], 1e-5)
        q, k, v = (a @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"]).split(C, -1)
        q, k, v = (t.view(T, H, D).transpose(0, 1) for t in (q, k, v))
        s = ((q @ k.transpose(-1, -2)) / math.sqrt(D)).masked_fill(~mask, float("-inf"))
        o = (s.softmax(-1) @ v).transpose(0, 1).reshape(T, C)
        x = x + o @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"]
        m = F.layer_norm(x, (C,), p[h + "ln_2.weight"], p[h + "ln_2.bias"], 1e-5)
        m = F.gelu(m @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"], approximate="tanh")
        x = x + m @ p[h + "mlp.c_proj.weight"] + p[h + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (C,), p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], 1e-5)
    return x @ p["transformer.wte.weight"].t()


def llama_params(c, g):
    C, V, L = c["hidden_size"], c["vocab_size"], c["num_hidden_layers"]
    Hkv, D, Fh = c["num_key_value_heads"], C // c["num_attention_heads"], c["intermediate_size"]
    bias = c["model_type"] == "qwen2"
    p = {"model.embed_tokens.weight": torch.randn(V, C, generator=g) * 0.3}
    for i in range(L):
        h = f"model.layers.{i}."
        p[h + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        p[h + "self_attn.q_proj.weight"] = torch.randn(C, C, generator=g) * 0.15
        p[h + "self_attn.k_proj.weight"] = torch.randn(Hkv * D, C, generator=g) * 0.15
        p[h + "self_attn.v_proj.weight"] = torch.randn(Hkv * D, C, generator=g) * 0.15
        if bias:
            p[h + "self_attn.q_proj.bias"] = torch.randn(C, generator=g) * 0.1
            p[h + "self_attn.k_proj.bias"] = torch.randn(Hkv * D, generator=g) * 0.1
            p[h + "self_attn.v_proj.bias"] = torch.randn(Hkv * D, generator=g) * 0.1
        p[h + "self_attn.o_proj.weight"] = torch.randn(C, C, generator=g) * 0.1
        p[h + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        p[h + "mlp.gate_proj.weight"] = torch.randn(Fh, C, generator=g) * 0.1
        p[h + "mlp.up_proj.weight"] = torch.randn(Fh, C, generator=g) * 0.1
        p[h + "mlp.down_proj.weight"] = torch.randn(C, Fh, generator=g) * 0.1
    p["model.norm.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
    if not c["tie_word_embeddings"]:
        p["lm_head.weight"] = torch.randn(V, C, generator=g) * 0.1
    return p


def scaled_inv_freq(c, inv):
    """RoPE frequencies after config.json's rope_scaling, as transformers computes them (linear:
    all divided by factor; llama3: Llama 3.1's rule, by wavelength)."""
    rs = c.get("rope_scaling")
    if not rs:
        return inv
    if rs["rope_type"] == "linear":
        return inv / rs["factor"]
    assert rs["rope_type"] == "llama3"
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv
    out = torch.where(wavelen > old / low, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    blended = (1 - smooth) * inv / factor + smooth * inv
    medium = (wavelen >= old / high) & (wavelen <= old / low)
    return torch.where(medium, blended, out)


def llama_forward(c, p, ids):
    C, H, Hkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    D, eps, T = C // H, c["rms_norm_eps"], ids.shape[0]
    inv = scaled_inv_freq(c, 1.0 / (c["rope_theta"] ** (torch.arange(0, D, 2).double() / D)))
    freqs = torch.outer(torch.arange(T).double(), inv)
    cos = torch.cat([freqs.cos()] * 2, -1).float()[None]
    sin = torch.cat([freqs.sin()] * 2, -1).float()[None]

    def rot(t):
        return torch.cat([-t[..., D // 2:], t[..., :D // 2]], -1)

    def rms(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def lin(x, name):
        y = x @ p[name + ".weight"].t()
        return y + p[name + ".bias"] if name + ".bias" in p else y

    x = p["model.embed_tokens.weight"][ids]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(c["num_hidden_layers"]):
        h = f"model.layers.{i}."
        a = rms(x, p[h + "input_layernorm.weight"])
        q = lin(a, h + "self_attn.q_proj").view(T, H, D).transpose(0, 1)
        k = lin(a, h + "self_attn.k_proj").view(T, Hkv, D).transpose(0, 1)
        v = lin(a, h + "self_attn.v_proj").view(T, Hkv, D).transpose(0, 1)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = k.repeat_interleave(H // Hkv, 0), v.repeat_interleave(H // Hkv, 0)
        s = ((q @ k.transpose(-1, -2)) / math.sqrt(D)).masked_fill(~mask, float("-inf"))
        o = (s.softmax(-1) @ v).transpose(0, 1).reshape(T, C)
        x = x + o @ p[h + "self_attn.o_proj.weight"].t()
        m = rms(x, p[h + "post_attention_layernorm.weight"])
        m = F.silu(m @ p[h + "mlp.gate_proj.weight"].t()) * (m @ p[h + "mlp.up_proj.weight"].t())
        x = x + m @ p[h + "mlp.down_proj.weight"].t()
    head = p.get("lm_head.weight", p["model.embed_tokens.weight"])
    return rms(x, p["model.norm.weight"]) @ head.t()


def build(name, cfg, make, forward, seed):
    g = torch.Generator().manual_seed(seed)
    params = {k: v.contiguous() for k, v in make(cfg, g).items()}
    # Matrices rounded to float16 (vectors stay float32, as in GGUF files).
    p16 = {k: (v.half().float() if v.dim() == 2 else v) for k, v in params.items()}
    prompt = torch.randint(0, cfg["vocab_size"], (T_PROMPT,), generator=g)
    out = {"prompt": prompt.to(torch.int32)}
    with torch.no_grad():
        for tag, p in (("f32", params), ("f16", p16)):
            out["logits_" + tag] = forward(cfg, p, prompt)
            ids = prompt.clone()
            for _ in range(N_GREEDY):
                nxt = forward(cfg, p, ids)[-1].argmax()
                ids = torch.cat([ids, nxt.view(1)])
            out["greedy_" + tag] = ids[T_PROMPT:].to(torch.int32)
    d = os.path.join(here, "..", "data", "infer", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    save(os.path.join(d, "model.safetensors"), params, {"format": "pt"})
    save(os.path.join(d, "expected.safetensors"), out,
         {"generator": "tests/reference/make_infer_fixtures.py", "torch": torch.__version__})
    print("wrote", os.path.normpath(d))


torch.manual_seed(0)
build("gpt2", {"model_type": "gpt2", "vocab_size": 96, "n_positions": 32, "n_embd": 64,
               "n_layer": 2, "n_head": 4, "layer_norm_epsilon": 1e-5}, gpt2_params, gpt2_forward, 11)
base = {"vocab_size": 96, "max_position_embeddings": 32, "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0}
build("llama", dict(base, model_type="llama", tie_word_embeddings=False), llama_params,
      llama_forward, 12)
build("qwen2", dict(base, model_type="qwen2", tie_word_embeddings=True, rope_theta=1000000.0),
      llama_params, llama_forward, 13)
# Llama 3.1's RoPE scaling; with 16-wide heads and an original context of 256, pairs 0-2 keep their
# frequency, pair 3 is blended and pairs 4-7 are divided by 8.
build("llama31", dict(base, model_type="llama", tie_word_embeddings=False, rope_scaling={
    "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 256}), llama_params, llama_forward, 14)
