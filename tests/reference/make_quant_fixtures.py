#!/usr/bin/python3
"""Writes tests/data/quant_ggml.safetensors: float blocks and their Q8_0 and Q4_0 encodings made by
gguf-py, llama.cpp's Python package (gguf/quants.py implements ggml's reference quantizers with
NumPy), plus gguf-py's dequantization of those bytes.

usage: tests/reference/make_quant_fixtures.py [LLAMA_CPP_DIR]   (default: build/llama.cpp, as made by
       tests/reference/get_llama_cpp.sh)"""
import os
import sys

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
llama_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "build", "llama.cpp")
sys.path.insert(0, os.path.join(llama_dir, "src", "gguf-py"))
import gguf  # noqa: E402
from gguf import GGMLQuantizationType as Q  # noqa: E402

sys.path.insert(0, here)
import st_write  # noqa: E402

rng = np.random.default_rng(20261129)
blocks = []
blocks.append(rng.standard_normal((40, 32)).astype(np.float32))            # typical weights
blocks.append((rng.standard_normal((8, 32)) * 1e-3).astype(np.float32))     # small scales
blocks.append(rng.uniform(-100, 100, (8, 32)).astype(np.float32))          # large values
special = np.zeros((8, 32), np.float32)
special[1, :] = 1.0                                       # constant block
special[2, 5], special[2, 9] = -3.0, 3.0                  # equal magnitudes: the first one sets d
special[3, :] = np.linspace(-1, 1, 32)                    # values landing on .5 after scaling
special[4, :] = np.arange(32) - 16                        # integers: exact ties in Q8_0
special[5, :] = 1e-30                                     # d underflows f16
special[6, 0] = -7.5                                      # one outlier
special[7, :] = rng.integers(-8, 8, 32) * 0.25            # exact Q4_0 grid
blocks.append(special)
x = np.concatenate(blocks).reshape(-1)

out = {"x": torch.from_numpy(x)}
for name, qt in (("q8_0", Q.Q8_0), ("q4_0", Q.Q4_0)):
    q = gguf.quants.quantize(x.reshape(1, -1), qt).reshape(-1)
    out[name] = torch.from_numpy(q.copy())
    out["dequant_" + name] = torch.from_numpy(gguf.quants.dequantize(q, qt).reshape(-1).astype(np.float32))
path = os.path.join(here, "..", "data", "quant_ggml.safetensors")
st_write.save(path, out, {"source": "gguf-py (llama.cpp, node-llama-cpp 3.21.1)", "blocks": str(len(x) // 32)})
print("wrote", path, os.path.getsize(path), "bytes")
