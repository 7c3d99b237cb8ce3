#!/usr/bin/python3
"""Writes tests/data/distill_torch.safetensors: the distillation loss and its student gradient as
PyTorch computes them, for scholar's autograd::distill_loss.

Run with Debian's python3-torch (1.13):  /usr/bin/python3 tests/reference/make_distill_fixtures.py
The C++ test tests/autograd/test_distill.cpp reads the file.

Definitions (float64 here, stored as float32), per position whose target is not -100, averaged:
  loss = alpha * T^2 * D + (1 - alpha) * cross_entropy(student, targets)
  forward KL: F.kl_div(log q, log p, log_target=True).sum(-1)      = KL(p || q)
  reverse KL: F.kl_div(log p, log q, log_target=True).sum(-1)      = KL(q || p)
  JSD (beta): m = beta p + (1 - beta) q (as Hugging Face TRL's generalized_jsd_loss),
              beta * KL(p || m) + (1 - beta) * KL(q || m)
with p = softmax(teacher / T), q = softmax(student / T). Top-K: the teacher gives log p at its K
most likely ids (one slot per row of the first position left unused, id -1); both distributions
are reduced to K + 1 buckets (the K ids and the tail holding the rest of the mass, floored at 1e-12
where its log is taken) and D is computed between the bucket distributions.
"""
import math
import os

import torch
import torch.nn.functional as F

from st_write import save

torch.manual_seed(20261204)
B, T_, V, K = 2, 6, 100, 5
student = (torch.randn(B, T_, V) * 2).double()
teacher = (torch.randn(B, T_, V) * 3).double()
targets = torch.randint(0, V, (B, T_), dtype=torch.int32)
targets[0, 2] = -100
targets[1, 5] = -100
mask = targets != -100
out = {"student": student.float(), "teacher": teacher.float(), "targets": targets}


def divergence(ls, lt, kind, beta):
    if kind == "forward_kl":
        return F.kl_div(ls, lt, reduction="none", log_target=True).sum(-1)
    if kind == "reverse_kl":
        return F.kl_div(lt, ls, reduction="none", log_target=True).sum(-1)
    lm = torch.logsumexp(torch.stack([ls + math.log(1 - beta), lt + math.log(beta)]), 0)
    return (beta * F.kl_div(lm, lt, reduction="none", log_target=True).sum(-1) +
            (1 - beta) * F.kl_div(lm, ls, reduction="none", log_target=True).sum(-1))


def buckets(lp_full, ids, valid):
    """log of the K + 1 bucket masses of a log-distribution over V (the ids, then the tail), and
    which buckets exist (an unused slot has none)."""
    top = torch.gather(lp_full, -1, ids.clamp(min=0).long())
    top = torch.where(valid, top, torch.zeros_like(top))
    tail = (1 - (top.exp() * valid).sum(-1, keepdim=True)).clamp(min=1e-12).log()
    ok = torch.cat([valid, torch.ones_like(valid[..., :1])], -1)
    return torch.cat([top, tail], -1), ok


def bucket_divergence(lq, lp, ok, kind, beta):
    """D between bucket distributions, written out (kl_div would give 0 * inf for unused slots)."""
    q, p = lq.exp() * ok, lp.exp() * ok
    if kind == "forward_kl":
        return (p * (lp - lq)).sum(-1)
    if kind == "reverse_kl":
        return (q * (lq - lp)).sum(-1)
    lm = torch.where(ok, beta * p + (1 - beta) * q, torch.ones_like(p)).log()
    return beta * (p * (lp - lm)).sum(-1) + (1 - beta) * (q * (lq - lm)).sum(-1)


for T in (1.0, 2.0, 4.0):
    lt = F.log_softmax(teacher / T, -1)
    ids = torch.topk(lt, K, -1).indices.int()
    ids[0, 0, K - 1] = -1  # an unused slot
    valid = ids >= 0
    out[f"T{T:g}.top_ids"] = ids
    out[f"T{T:g}.top_log_probs"] = torch.where(valid, torch.gather(lt, -1, ids.clamp(min=0).long()),
                                               torch.zeros(1, dtype=lt.dtype)).float()
    for kind, beta in (("forward_kl", 0.5), ("reverse_kl", 0.5), ("jsd", 0.5), ("jsd", 0.1)):
        for alpha in (0.5, 1.0):
            for top in (False, True):
                s = student.clone().requires_grad_()
                ls = F.log_softmax(s / T, -1)
                if top:
                    lq, ok = buckets(ls, ids, valid)
                    lp, _ = buckets(lt, ids, valid)
                    d = bucket_divergence(lq, lp, ok, kind, beta)
                else:
                    d = divergence(ls, lt, kind, beta)
                soft = d[mask].mean()
                hard = F.cross_entropy(s.view(-1, V), targets.view(-1).long(), ignore_index=-100)
                loss = alpha * T * T * soft + (1 - alpha) * hard
                loss.backward()
                key = f"T{T:g}.{kind}{'' if kind != 'jsd' else beta}.a{alpha:g}.{'top' if top else 'full'}"
                out[key + ".loss"] = loss.detach().float().reshape(1)
                out[key + ".soft"] = soft.detach().float().reshape(1)
                out[key + ".hard"] = hard.detach().float().reshape(1)
                out[key + ".grad"] = s.grad.float()

path = os.path.join(os.path.dirname(__file__), "..", "data", "distill_torch.safetensors")
save(path, out, {"source": "tests/reference/make_distill_fixtures.py", "torch": torch.__version__})
print(path, os.path.getsize(path), "bytes,", len(out), "tensors")
