#!/bin/sh
# Writes tests/data/bert/llama_cpp/: the tiny BERT of make_bert_fixtures.py as llama.cpp's BERT GGUF,
# written by llama.cpp's own gguf-py (bert_to_gguf.py: its GGUFWriter, its tensor name map and the
# phantom-space vocabulary of its converter), and llama.cpp's token ids and mean-pooled embeddings
# for the fixture's texts (llama_cpp_embed.cpp, llama.cpp's C API). tests/rag/test_embedder.cpp
# checks that scholar reads the file, tokenizes and embeds as llama.cpp does, and writes the same
# tensors and keys.
#
#   tests/reference/make_bert_llama_cpp_fixtures.sh
#
# Needs: g++, python3-torch and numpy (scripts/deps.sh fixtures), llama.cpp from
# tests/reference/get_llama_cpp.sh.
set -eu
cd "$(dirname "$0")/../.."
out=tests/data/bert/llama_cpp
mkdir -p "$out"
llama_dir=$(tests/reference/get_llama_cpp.sh build/llama.cpp)
src=$llama_dir/src
libs=$llama_dir/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
/usr/bin/python3 tests/reference/bert_to_gguf.py "$src" tests/data/bert/minilm_tiny "$out/bert-f32.gguf"
tool_dir=build/fixtures/llama_cpp_c
mkdir -p "$tool_dir"
for f in "$libs"/*.so*; do ln -sf "$(realpath "$f")" "$tool_dir/"; done
g++ -std=c++17 -O2 -I "$src/include" -I "$src/ggml/include" tests/reference/llama_cpp_embed.cpp \
  -L "$libs" -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so \
  -Wl,-rpath,"$(realpath "$tool_dir")" -o "$tool_dir/llama_cpp_embed"
# The texts of expected.json that fit llama.cpp's context unchanged (the fixture's longest text is
# cut by scholar at max_seq_length; llama.cpp is given whole texts).
/usr/bin/python3 - "$tool_dir/llama_cpp_embed" "$out" <<'PY'
import json, subprocess, sys
tool, out = sys.argv[1], sys.argv[2]
texts = json.load(open("tests/data/bert/expected.json", encoding="utf-8"))["texts"]
texts = [t for t in texts if len(t) < 120] + ["hacker hackers hacking kludge", "What is cruft?"]
r = json.loads(subprocess.run([tool, out + "/bert-f32.gguf"] + texts, check=True,
                              capture_output=True, text=True).stdout)
r["texts"] = texts
json.dump(r, open(out + "/embeddings.json", "w", encoding="utf-8"), ensure_ascii=False)
print(f"llama.cpp embedded {len(texts)} texts")
PY
