#!/usr/bin/python3
"""op_overhead.cpp in PyTorch eager mode: 1,000 small ops forward and backward, time per op."""
import json
import statistics
import time

import torch

torch.set_num_threads(1)
x = torch.ones(16, requires_grad=True)
y = torch.full((16,), 1e-4, requires_grad=True)
times = []
for _ in range(200):
    t0 = time.perf_counter()
    z = x
    for i in range(1000):
        z = z * 1.0001 if i % 2 == 0 else z + y
    z.sum().backward()
    times.append((time.perf_counter() - t0) / 1000)
    x.grad = None
    y.grad = None
print(json.dumps({"impl": "pytorch", "us_per_op": round(statistics.median(times) * 1e6, 3)}))
