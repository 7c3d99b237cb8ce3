#!/bin/sh
# Writes tests/data/llama_cpp/: two small models trained by scholar on the Jargon File (GPT-2 and
# Llama families, exported as F32 GGUF with their tokenizers), and greedy.json: llama.cpp's greedy
# continuations of a few prompts for each model at F32 and at Q8_0 (the Q8_0 file is scholar's
# export of the F32 one). tests/infer/test_llama_cpp.cpp checks that scholar picks the same tokens.
#
#   tests/reference/make_llama_cpp_fixtures.sh [--retrain]
#
# Needs: a release build (cmake --preset release && cmake --build --preset release), the Jargon File
# (Debian package jargon-text), and llama.cpp from tests/reference/get_llama_cpp.sh.
set -eu
cd "$(dirname "$0")/../.."
out=tests/data/llama_cpp
bin=build/release/examples
llama_dir=$(tests/reference/get_llama_cpp.sh build/llama.cpp)
mkdir -p "$out" build/fixtures
for family in gpt2 llama; do
  if [ ! -f "$out/$family-f32.gguf" ] || [ "${1:-}" = "--retrain" ]; then
    rm -rf "build/fixtures/$family"
    "$bin/train_lm/train_lm" --out "build/fixtures/$family" --family "$family" --vocab 512 \
      --layers 2 --width 64 --heads 4 --context 64 --batch 16 --steps 2000 --eval-every 500 \
      --sample-every 5000 --threads 1 --seed 1
    "$bin/generate/generate" --model "build/fixtures/$family/checkpoint.safetensors" \
      --save-gguf "$out/$family-f32.gguf" --type f32
  fi
  "$bin/generate/generate" --model "$out/$family-f32.gguf" --save-gguf "build/fixtures/$family-q8_0.gguf" --type q8_0
done
prompts="The hacker|A kludge is|In the beginning was the|foo bar baz"
run() {  # model file -> JSON
  old_ifs=$IFS
  IFS='|'
  # shellcheck disable=SC2086
  LLAMA_CPP_DIR="$llama_dir" node tests/reference/llama_cpp_greedy.mjs "$1" 24 $prompts
  IFS=$old_ifs
}
{
  printf '{"generator": "tests/reference/make_llama_cpp_fixtures.sh", "llama_cpp": "node-llama-cpp@3.21.1",\n'
  printf ' "texts": ["The hacker", "A kludge is", "In the beginning was the", "foo bar baz"]'
  for family in gpt2 llama; do
    printf ',\n "%s-f32": %s' "$family" "$(run "$out/$family-f32.gguf")"
    printf ',\n "%s-q8_0": %s' "$family" "$(run "build/fixtures/$family-q8_0.gguf")"
  done
  printf '}\n'
} > "$out/greedy.json.tmp"
mv "$out/greedy.json.tmp" "$out/greedy.json"
ls -l "$out"
