#!/usr/bin/python3
"""Writes tests/data/kernels_torch.safetensors: inputs and PyTorch's outputs for scholar's kernels.

Run with Debian's python3-torch (1.13):  /usr/bin/python3 tests/reference/make_kernel_fixtures.py
The C++ test tests/kernels/test_torch_parity.cpp reads the file and compares scholar's results.
"""
import os

import torch
import torch.nn.functional as F

from st_write import save

torch.manual_seed(20261129)
out = {}

# Rows of logits for softmax and log-softmax, with a masked (-inf) column in one row.
x = torch.randn(4, 96) * 3
x[2, 5] = float("-inf")
out["softmax.x"] = x
out["softmax.y"] = torch.softmax(x, -1)
out["log_softmax.y"] = torch.log_softmax(x, -1)

# LayerNorm (GPT-2) and RMSNorm (Llama, as transformers computes it in float32), with gradients.
x = (torch.randn(4, 96) * 2 + 1).requires_grad_()
w = (torch.rand(96) + 0.5).requires_grad_()
b = torch.randn(96).requires_grad_()
dout = torch.randn(4, 96)
y = F.layer_norm(x, (96,), w, b, eps=1e-5)
y.backward(dout)
out.update({"ln.x": x, "ln.w": w, "ln.b": b, "ln.dout": dout, "ln.y": y, "ln.dx": x.grad,
            "ln.dw": w.grad, "ln.db": b.grad})

x = (torch.randn(4, 96) * 2).requires_grad_()
w = (torch.rand(96) + 0.5).requires_grad_()
y = w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))
y.backward(dout)
out.update({"rms.x": x, "rms.w": w, "rms.y": y, "rms.dx": x.grad, "rms.dw": w.grad})

# Activations.
x = (torch.randn(512) * 4).requires_grad_()
g = torch.randn(512)
y = F.gelu(x, approximate="tanh")
y.backward(g)
out.update({"act.x": x, "act.dout": g, "gelu.y": y, "gelu.dx": x.grad.clone()})
x.grad = None
y = F.gelu(x)  # the exact erf form (BERT's)
y.backward(g)
out.update({"gelu_erf.y": y, "gelu_erf.dx": x.grad.clone()})
x.grad = None
y = F.silu(x)
y.backward(g)
out.update({"silu.y": y, "silu.dx": x.grad.clone()})
gate = (torch.randn(512) * 3).requires_grad_()
up = torch.randn(512).requires_grad_()
y = F.silu(gate) * up
y.backward(g)
out.update({"swiglu.gate": gate, "swiglu.up": up, "swiglu.y": y, "swiglu.dgate": gate.grad,
            "swiglu.dup": up.grad})

# Rotary embeddings as transformers' Llama computes them (rotate_half), and in the interleaved
# (GPT-J / Meta complex-number) layout. q: [T, H, D].
T, H, D, base = 6, 2, 64, 10000.0
inv_freq = 1.0 / (base ** (torch.arange(0, D, 2).float() / D))
t = torch.arange(T).float()
freqs = torch.outer(t, inv_freq)  # [T, D/2]
cos, sin = freqs.cos(), freqs.sin()
q = torch.randn(T, H, D)
emb_cos = torch.cat([cos, cos], -1)[:, None, :]
emb_sin = torch.cat([sin, sin], -1)[:, None, :]


def rotate_half(v):
    return torch.cat([-v[..., D // 2:], v[..., : D // 2]], -1)


out.update({"rope.q": q, "rope.cos": cos, "rope.sin": sin,
            "rope.half": q * emb_cos + rotate_half(q) * emb_sin})
qc = torch.view_as_complex(q.reshape(T, H, D // 2, 2))
rot = torch.polar(torch.ones_like(freqs), freqs)[:, None, :]
out["rope.interleaved"] = torch.view_as_real(qc * rot).reshape(T, H, D)

# Matrix products, plain and batched.
a, bm = torch.randn(5, 7), torch.randn(7, 3)
out.update({"mm.a": a, "mm.b": bm, "mm.c": a @ bm})
a, bm = torch.randn(2, 3, 4), torch.randn(2, 4, 5)
out.update({"bmm.a": a, "bmm.b": bm, "bmm.c": torch.bmm(a, bm)})

# Conversions to bf16 and f16 (round to nearest even), including ties and overflow.
v = torch.randn(1000) * torch.exp(torch.randn(1000) * 8)
v[:6] = torch.tensor([65504.0, 65520.0, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 2.0 ** -25, -0.0])
out.update({"cvt.x": v, "cvt.bf16": v.to(torch.bfloat16), "cvt.f16": v.to(torch.float16)})

# A product in bf16 (torch.set_float32_matmul_precision("medium")'s arithmetic): operands rounded to
# bf16 by torch, products summed in double. Odd sizes exercise the edges of scholar's panels.
a, bm = torch.randn(37, 69), torch.randn(69, 45)
out.update({"mm_bf16.a": a, "mm_bf16.b": bm,
            "mm_bf16.c": (a.bfloat16().double() @ bm.bfloat16().double()).float()})

path = os.path.join(os.path.dirname(__file__), "..", "data", "kernels_torch.safetensors")
save(path, out, {"generator": "tests/reference/make_kernel_fixtures.py",
                 "torch": torch.__version__})
print("wrote", os.path.normpath(path), os.path.getsize(path), "bytes")
