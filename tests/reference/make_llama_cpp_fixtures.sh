#!/bin/sh
# Writes tests/data/llama_cpp/: two small models trained by scholar on the Jargon File (GPT-2 and
# Llama families, exported as F32 GGUF with their tokenizers), a student distilled by scholar
# (examples/distill), and greedy.json: llama.cpp's greedy
# continuations of a few prompts for each model at F32 and at Q8_0 (the Q8_0 file is scholar's
# export of the F32 one), in two settings:
#   "exact": an F32 KV cache and no flash attention (attention in f32, as scholar computes it),
#            with the 5 largest logits of every step, from llama.cpp's C API
#            (tests/reference/llama_cpp_logits.cpp), which must choose the same tokens as the node
#            binding (its continuations end with the end-of-generation token, where there is one);
#   "defaults": node-llama-cpp's defaults (F16 KV cache, flash attention accumulated in f16).
# Besides F32 and Q8_0, "llama-rope" is the F32 Llama model given Llama 3.1's RoPE scaling by
# tests/reference/add_rope_freqs.py. "llama-lora" is the F32 Llama model with a LoRA adapter scholar
# trained over it (examples/finetune), as llama.cpp's LoRA GGUF.
# tests/infer/test_llama_cpp.cpp checks that scholar picks the same tokens and logits.
#
#   tests/reference/make_llama_cpp_fixtures.sh [--retrain]
#
# Needs: g++, a release build (cmake --preset release && cmake --build --preset release), the
# Jargon File (Debian package jargon-text), llama.cpp from tests/reference/get_llama_cpp.sh, and
# numpy for add_rope_freqs.py (scripts/deps.sh fixtures).
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
# A student distilled by scholar from a teacher it trained (examples/distill, live logit
# distillation, Llama family), exported as F32 GGUF.
if [ ! -f "$out/distilled-f32.gguf" ] || [ "${1:-}" = "--retrain" ]; then
  rm -rf build/fixtures/distilled
  "$bin/distill/distill" --out build/fixtures/distilled --vocab 512 --teacher-layers 4 \
    --teacher-width 128 --teacher-heads 4 --teacher-steps 600 --student-layers 2 \
    --student-width 64 --student-heads 4 --steps 600 --context 64 --ways kd --seeds 1 \
    --threads 1 --export "$out/distilled-f32.gguf"
fi
# A LoRA adapter scholar trains over the Llama model (examples/finetune --base, on the Jargon File,
# r 8 on every linear layer) and writes as a llama.cpp LoRA GGUF.
if [ ! -f "$out/llama-lora.gguf" ] || [ "${1:-}" = "--retrain" ]; then
  rm -rf build/fixtures/lora
  "$bin/finetune/finetune" --base "$out/llama-f32.gguf" --out build/fixtures/lora --ways lora \
    --context 64 --batch 16 --steps 200 --lora-lr 3e-3 --rank 8 --alpha 16 --sft-steps 0 \
    --threads 1
  cp build/fixtures/lora/lora/adapter.gguf "$out/llama-lora.gguf"
fi
# llama.cpp's C API, for the logits behind its greedy choices (built against the bundled libraries).
src=$llama_dir/src
libs=$llama_dir/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
tool_dir=build/fixtures/llama_cpp_c
logits_tool=$tool_dir/llama_cpp_logits
mkdir -p "$tool_dir"
# The backends are loaded from the executable's directory: link the libraries beside it.
for f in "$libs"/*.so*; do ln -sf "$(realpath "$f")" "$tool_dir/"; done
g++ -std=c++17 -O2 -I "$src/include" -I "$src/ggml/include" tests/reference/llama_cpp_logits.cpp \
  -L "$libs" -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so \
  -Wl,-rpath,"$(realpath "$tool_dir")" -o "$logits_tool"

prompts="The hacker|A kludge is|In the beginning was the|foo bar baz"
greedy() {  # [--exact] model file -> JSON
  old_ifs=$IFS
  IFS='|'
  # shellcheck disable=SC2086
  LLAMA_CPP_DIR="$llama_dir" node tests/reference/llama_cpp_greedy.mjs "$@" 24 $prompts
  IFS=$old_ifs
}
# The Llama model with Llama 3.1's RoPE scaling (factor 4, frequency factors 1 and 4, original
# context 32), stored as llama.cpp's converter stores it (rope_freqs.weight, computed by numpy).
PYTHONPATH="$src/gguf-py" /usr/bin/python3 tests/reference/add_rope_freqs.py "$src" \
  "$out/llama-f32.gguf" build/fixtures/llama-rope.gguf 4 1 4 32
tmp=build/fixtures/llama_cpp_runs
rm -rf "$tmp"
mkdir -p "$tmp"
for key in gpt2-f32 gpt2-q8_0 llama-f32 llama-q8_0 llama-rope distilled-f32 llama-lora; do
  lora=""
  case $key in
    llama-lora) file=$out/llama-f32.gguf; lora="--lora $out/llama-lora.gguf" ;;
    *-f32) file=$out/$key.gguf ;;
    *) file=build/fixtures/$key.gguf ;;
  esac
  # shellcheck disable=SC2086
  greedy --exact $lora "$file" > "$tmp/$key.exact.json"
  # shellcheck disable=SC2086
  greedy $lora "$file" > "$tmp/$key.default.json"
  /usr/bin/python3 -c 'import json,sys; [print(" ".join(map(str, p))) for p in json.load(open(sys.argv[1]))["prompts"]]' \
    "$tmp/$key.exact.json" > "$tmp/$key.prompts"
  i=0
  while read -r ids; do
    # shellcheck disable=SC2086
    "$logits_tool" $lora "$file" 24 5 $ids > "$tmp/$key.logits.$i.json"
    i=$((i + 1))
  done < "$tmp/$key.prompts"
done
/usr/bin/python3 - "$tmp" "$out/greedy.json.tmp" <<'PY'
import json, sys
tmp, dest = sys.argv[1], sys.argv[2]
texts = ["The hacker", "A kludge is", "In the beginning was the", "foo bar baz"]
doc = {"generator": "tests/reference/make_llama_cpp_fixtures.sh", "llama_cpp": "node-llama-cpp@3.21.1",
       "texts": texts, "exact": {}, "defaults": {}}
for key in ["gpt2-f32", "gpt2-q8_0", "llama-f32", "llama-q8_0", "llama-rope", "distilled-f32",
            "llama-lora"]:
    exact = json.load(open(f"{tmp}/{key}.exact.json"))
    exact["top"] = []
    for i, greedy in enumerate(exact["greedy"]):
        c = json.load(open(f"{tmp}/{key}.logits.{i}.json"))
        # The node binding and the C API must have run the same computation (the binding
        # stops before an end-of-generation token, the C API includes it).
        if c["greedy"][:len(greedy)] != greedy or len(c["greedy"]) > len(greedy) + 1:
            sys.exit(f"{key} prompt {i}: the C API chose {c['greedy']}, node-llama-cpp {greedy}")
        exact["greedy"][i] = c["greedy"]
        exact["top"].append(c["top"])
    doc["exact"][key] = exact
    doc["defaults"][key] = json.load(open(f"{tmp}/{key}.default.json"))
with open(dest, "w") as f:
    json.dump(doc, f, separators=(",", ":"))
    f.write("\n")
PY
mv "$out/greedy.json.tmp" "$out/greedy.json"
ls -l "$out"
