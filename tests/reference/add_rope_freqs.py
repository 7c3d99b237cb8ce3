#!/usr/bin/python3
"""Copies a llama-architecture GGUF file and gives it Llama 3.1's RoPE scaling the way llama.cpp's
converter (convert_hf_to_gguf.py) stores it: a rope_freqs.weight tensor of head_dim / 2 factors
that divide each rotation pair's frequency. The factors are computed here with numpy from the
rope_scaling parameters (rope_type llama3), independently of scholar. Uses gguf-py from
llama.cpp's source for reading and writing.

usage: add_rope_freqs.py LLAMA_CPP_SRC IN.gguf OUT.gguf FACTOR LOW_FREQ_FACTOR HIGH_FREQ_FACTOR
                         ORIGINAL_CONTEXT"""
import math
import sys

import numpy as np

src_dir, source, out = sys.argv[1:4]
factor, low, high = (float(v) for v in sys.argv[4:7])
original = int(sys.argv[7])
sys.path.insert(0, src_dir + "/gguf-py")
import gguf  # noqa: E402

r = gguf.GGUFReader(source)
arch = r.fields["general.architecture"].contents()
if arch != "llama":
    sys.exit(f"{source}: architecture {arch}; llama.cpp reads rope_freqs for llama only")
head_dim = (r.fields["llama.embedding_length"].contents() //
            r.fields["llama.attention.head_count"].contents())
base = r.fields["llama.rope.freq_base"].contents()

factors = []
for i in range(0, head_dim, 2):
    freq = 1.0 / base ** (i / head_dim)
    wavelen = 2 * math.pi / freq
    if wavelen < original / high:
        factors.append(1.0)
    elif wavelen > original / low:
        factors.append(factor)
    else:
        smooth = (original / wavelen - low) / (high - low)
        factors.append(1.0 / ((1 - smooth) / factor + smooth))

w = gguf.GGUFWriter(out, arch)
for field in r.fields.values():
    if field.name == "general.architecture" or field.name.startswith("GGUF."):
        continue
    vtype = field.types[0]
    sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
    w.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
w.add_tensor("rope_freqs.weight", np.array(factors, dtype=np.float32))
for t in r.tensors:
    w.add_tensor(t.name, t.data, raw_shape=t.data.shape, raw_dtype=t.tensor_type)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"wrote {out}: rope_freqs {np.round(factors, 4).tolist()}")
