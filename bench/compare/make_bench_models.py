#!/usr/bin/python3
"""Writes the inference benchmark's models: a Llama-shape model of 124M parameters (GPT-2's
vocabulary of 50257, width 768, 12 layers, 12 heads, SwiGLU 2048, tied output) with random weights,
as GGUF files in F32, F16, BF16, Q8_0 and Q4_0, written by gguf-py (llama.cpp's own writer and
quantizers). Speed does not depend on the values, so random weights are a fair test.

usage: bench/compare/make_bench_models.py OUT_DIR [LLAMA_CPP_DIR]   (default build/llama.cpp)"""
import os
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.join(here, "..", "..")
out_dir = sys.argv[1]
llama_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "build", "llama.cpp")
sys.path.insert(0, os.path.join(llama_dir, "src", "gguf-py"))
import gguf  # noqa: E402
from gguf import GGMLQuantizationType as Q  # noqa: E402

V, C, L, H, F = 50257, 768, 12, 12, 2048
merges = [m for m in open(os.path.join(root, "tests", "data", "gpt2", "vocab.bpe"),
                          encoding="utf-8").read().split("\n")[1:] if m]
bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + n)
        n += 1
tokens = [chr(c) for c in cs] + [m.replace(" ", "") for m in merges] + ["<|endoftext|>"]
assert len(tokens) == V
os.makedirs(out_dir, exist_ok=True)
for name, qt, ftype in (("f32", Q.F32, 0), ("f16", Q.F16, 1), ("bf16", Q.BF16, 32), ("q8_0", Q.Q8_0, 7),
                        ("q4_0", Q.Q4_0, 2)):
    path = os.path.join(out_dir, f"llama124m-{name}.gguf")
    if os.path.exists(path):
        continue
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(1024)
    w.add_embedding_length(C)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(H)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(C // H)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(ftype)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types([1] * (V - 1) + [3])
    w.add_token_merges(merges)
    w.add_bos_token_id(V - 1)
    w.add_eos_token_id(V - 1)
    rng = np.random.default_rng(0)

    def add(tname, shape, ones=False):
        a = np.ones(shape, np.float32) if ones else rng.standard_normal(shape, dtype=np.float32) * 0.02
        if ones or qt == Q.F32:
            w.add_tensor(tname, a)
        elif qt == Q.F16:
            w.add_tensor(tname, a.astype(np.float16))
        else:
            w.add_tensor(tname, gguf.quants.quantize(a, qt), raw_dtype=qt)

    add("token_embd.weight", (V, C))
    for i in range(L):
        p = f"blk.{i}."
        add(p + "attn_norm.weight", (C,), ones=True)
        for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
            add(p + t + ".weight", (C, C))
        add(p + "ffn_norm.weight", (C,), ones=True)
        add(p + "ffn_gate.weight", (F, C))
        add(p + "ffn_up.weight", (F, C))
        add(p + "ffn_down.weight", (C, F))
    add("output_norm.weight", (C,), ones=True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote", path)
