#!/usr/bin/python3
"""Writes a vocabulary-only GGUF (no tensors) whose tokenizer is SentencePiece-style
(tokenizer.ggml.model = "llama", as in Llama 2's files): <unk>, <s>, </s>, the 256 byte pieces
<0x00>..<0xFF>, the printable ASCII characters, then the pieces of the byte-level BPE vocabulary of
tests/data/llama_cpp/llama-f32.gguf that are valid UTF-8, spaces written U+2581, each scored by its
merge rank (earlier merges score higher). Uses gguf-py from llama.cpp's source (its reader and
writer, not scholar's).

usage: make_spm_fixture.py LLAMA_CPP_SRC SOURCE.gguf OUT.gguf"""
import sys

src_dir, source, out = sys.argv[1:4]
sys.path.insert(0, src_dir + "/gguf-py")
import gguf  # noqa: E402


def strings(reader, key):
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def gpt2_byte_decoder():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


r = gguf.GGUFReader(source)
dec = gpt2_byte_decoder()
merges = strings(r, "tokenizer.ggml.merges")
pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)]
pieces += [("<0x%02X>" % b, 0.0, 6) for b in range(256)]
seen = {p[0] for p in pieces}
for c in range(0x20, 0x7F):
    t = "\u2581" if c == 0x20 else chr(c)
    pieces.append((t, -1e4 - c, 1))
    seen.add(t)
for rank, m in enumerate(merges):
    a, b = m.split(" ")
    try:
        text = bytes(dec[ch] for ch in a + b).decode("utf-8")
    except UnicodeDecodeError:
        continue
    text = text.replace(" ", "\u2581")
    if text in seen:
        continue
    seen.add(text)
    pieces.append((text, -float(rank), 1))

w = gguf.GGUFWriter(out, "llama")
for key in ("llama.context_length", "llama.embedding_length", "llama.block_count",
            "llama.feed_forward_length", "llama.attention.head_count",
            "llama.attention.head_count_kv", "llama.attention.layer_norm_rms_epsilon",
            "llama.rope.dimension_count"):
    f = r.fields[key]
    v = f.parts[f.data[0]][0]
    if key.endswith("epsilon"):
        w.add_float32(key, float(v))
    else:
        w.add_uint32(key, int(v))
w.add_tokenizer_model("llama")
w.add_token_list([p[0] for p in pieces])
w.add_token_scores([p[1] for p in pieces])
w.add_token_types([p[2] for p in pieces])
w.add_unk_token_id(0)
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_add_space_prefix(True)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"{out}: {len(pieces)} pieces")
