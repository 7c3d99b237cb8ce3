#!/usr/bin/python3
"""Writes tests/data/gguf/tiny_types.gguf with gguf-py (llama.cpp's own GGUF writer): metadata of
every value type and one tensor of each storage type scholar reads (F32, F16, BF16, Q8_0, Q4_0),
plus tests/data/gguf/tiny_types.safetensors holding the float values the tensors stand for
(gguf-py's dequantization). tests/io/test_gguf.cpp reads the file, checks every value, and writes it
back with io::GgufWriter, which must give the same bytes.

The other files in tests/data/gguf (tiny_*.gguf) are scholar's own GGUF exports of the models in
tests/data/infer, seeds for the fuzz target tests/fuzz/fuzz_gguf.cpp:
  build/release/examples/generate/generate --model tests/data/infer/llama \
      --save-gguf tests/data/gguf/tiny_llama_q4_0.gguf --type q4_0
  (qwen2 -> tiny_qwen2_q8_0.gguf --type q8_0, gpt2 -> tiny_gpt2_f16.gguf --type f16)

usage: tests/reference/make_gguf_fixtures.py [LLAMA_CPP_DIR]   (default: build/llama.cpp, made by
       tests/reference/get_llama_cpp.sh)"""
import os
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
llama_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "build", "llama.cpp")
sys.path.insert(0, os.path.join(llama_dir, "src", "gguf-py"))
import gguf  # noqa: E402
from gguf import GGMLQuantizationType as Q  # noqa: E402

sys.path.insert(0, here)
import st_write  # noqa: E402

out_dir = os.path.join(here, "..", "data", "gguf")
os.makedirs(out_dir, exist_ok=True)
path = os.path.join(out_dir, "tiny_types.gguf")
rng = np.random.default_rng(4)

w = gguf.GGUFWriter(path, "llama")
w.add_uint32("general.alignment", 32)
w.add_uint8("test.u8", 200)
w.add_int8("test.i8", -100)
w.add_uint16("test.u16", 60000)
w.add_int16("test.i16", -30000)
w.add_uint32("test.u32", 4000000000)
w.add_int32("test.i32", -2000000000)
w.add_float32("test.f32", 0.1)
w.add_uint64("test.u64", 1 << 40)
w.add_int64("test.i64", -(1 << 40))
w.add_float64("test.f64", 0.1)
w.add_bool("test.bool", True)
w.add_string("test.string", "h\u00e9llo")
w.add_array("test.strings", ["a", "", "\u2603"])
w.add_array("test.ints", [1, -2, 3])
w.add_array("test.floats", [0.5, -1.5])

values = {}
f32 = rng.standard_normal((3, 5)).astype(np.float32)
w.add_tensor("t.f32", f32)
values["t.f32"] = f32
f16 = rng.standard_normal((2, 7)).astype(np.float16)
w.add_tensor("t.f16", f16)
values["t.f16"] = f16.astype(np.float32)
bf = rng.standard_normal((4, 3)).astype(np.float32)
bfq = gguf.quants.quantize(bf, Q.BF16)
w.add_tensor("t.bf16", bfq, raw_dtype=Q.BF16)
values["t.bf16"] = gguf.quants.dequantize(bfq, Q.BF16)
for q, name in ((Q.Q8_0, "t.q8_0"), (Q.Q4_0, "t.q4_0")):
    x = rng.standard_normal((3, 64)).astype(np.float32)
    b = gguf.quants.quantize(x, q)
    w.add_tensor(name, b, raw_dtype=q)
    values[name] = gguf.quants.dequantize(b, q)
v1 = rng.standard_normal(9).astype(np.float32)
w.add_tensor("t.vec", v1)
values["t.vec"] = v1
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

import torch  # noqa: E402
st_write.save(os.path.join(out_dir, "tiny_types.safetensors"),
              {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in values.items()})
print("wrote", path)
