#!/bin/sh
# Writes llama.cpp's tokenizations of the texts in tests/reference/pretokenize_texts.json:
#
# tests/data/llama_cpp/pretokenize.json: one byte-level BPE vocabulary (the Llama fixture model's,
#   tests/data/llama_cpp/llama-f32.gguf) under each pre-tokenizer scholar implements: gpt-2,
#   llama-bpe (Llama 3) and qwen2. The GGUF variants differ only in tokenizer.ggml.pre, set by
#   gguf-py's own gguf_new_metadata.py.
# tests/data/llama_cpp/spm-vocab.gguf + spm.json: a SentencePiece-style vocabulary
#   (tokenizer.ggml.model "llama") made by make_spm_fixture.py, and its tokenizations with and
#   without special-token parsing.
#
# tests/text/test_pretokenizers.cpp and test_spm.cpp check that scholar produces the same ids.
# Needs: Python 3 with NumPy (/usr/bin/python3), Node.js, and llama.cpp from
# tests/reference/get_llama_cpp.sh.
set -eu
cd "$(dirname "$0")/../.."
llama_dir=$(tests/reference/get_llama_cpp.sh build/llama.cpp)
texts=tests/reference/pretokenize_texts.json
tokenize() {  # model [special] -> JSON
  LLAMA_CPP_DIR="$llama_dir" node tests/reference/llama_cpp_tokenize.mjs "$1" "$texts" ${2:-}
}
mkdir -p build/fixtures
out=tests/data/llama_cpp/pretokenize.json
{
  printf '{"generator": "tests/reference/make_tokenizer_fixtures.sh", "llama_cpp": "node-llama-cpp@3.21.1",\n'
  printf ' "vocabulary": "tests/data/llama_cpp/llama-f32.gguf",\n'
  printf ' "texts": %s' "$(tr -d '\n' < "$texts")"
  for pre in gpt-2 llama-bpe qwen2; do
    PYTHONPATH="$llama_dir/src/gguf-py" /usr/bin/python3 \
      "$llama_dir/src/gguf-py/gguf/scripts/gguf_new_metadata.py" --pre-tokenizer "$pre" --force \
      tests/data/llama_cpp/llama-f32.gguf "build/fixtures/pre-$pre.gguf" >/dev/null
    printf ',\n "%s": %s' "$pre" "$(tokenize "build/fixtures/pre-$pre.gguf")"
  done
  printf '}\n'
} > "$out.tmp"
mv "$out.tmp" "$out"

spm=tests/data/llama_cpp/spm-vocab.gguf
/usr/bin/python3 tests/reference/make_spm_fixture.py "$llama_dir/src" tests/data/llama_cpp/llama-f32.gguf "$spm"
out=tests/data/llama_cpp/spm.json
{
  printf '{"generator": "tests/reference/make_tokenizer_fixtures.sh", "llama_cpp": "node-llama-cpp@3.21.1",\n'
  printf ' "vocabulary": "%s",\n' "$spm"
  printf ' "texts": %s,\n' "$(tr -d '\n' < "$texts")"
  printf ' "plain": %s,\n' "$(tokenize "$spm")"
  printf ' "special": %s}\n' "$(tokenize "$spm" special)"
} > "$out.tmp"
mv "$out.tmp" "$out"
ls -l tests/data/llama_cpp/pretokenize.json "$spm" "$out"
