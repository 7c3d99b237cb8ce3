#!/bin/sh
# Builds the libFuzzer targets (clang, AddressSanitizer + UBSan) and runs each one: first over every
# input ever kept in tests/fuzz/regressions/TARGET (inputs that once crashed a loader), then fuzzing
# for SECONDS (default 60) from seeds in tests/data. A crash stops the run and leaves the input in
# build/fuzz/crashes/TARGET; once fixed, copy it into tests/fuzz/regressions/TARGET.
#   scripts/fuzz.sh [SECONDS]
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
scripts/deps.sh fuzz
cmake --preset fuzz
cmake --build --preset fuzz -j "$(nproc)"
for t in fuzz_gguf fuzz_safetensors fuzz_json fuzz_index fuzz_rag; do
  bin=build/fuzz/tests/fuzz/$t
  reg=tests/fuzz/regressions/$t
  corpus=build/fuzz/corpus/$t
  mkdir -p "$corpus" "build/fuzz/crashes/$t"
  case $t in
    fuzz_gguf) seeds="$(find tests/data/gguf -name '*.gguf') tests/data/llama_cpp/llama-lora.gguf" ;;
    fuzz_safetensors) seeds=$(find tests/data -name '*.safetensors' -size -64k) ;;
    fuzz_json) seeds=$(find tests/data -name '*.json' -size -64k) ;;
    fuzz_index) seeds="" && SCHOLAR_FUZZ_SEEDS="$corpus" "$bin" -runs=0 "$corpus" >/dev/null 2>&1 ;;
    fuzz_rag) seeds="tests/data/wordpiece/vocab.txt" &&
      SCHOLAR_FUZZ_SEEDS="$corpus" "$bin" -runs=0 "$corpus" >/dev/null 2>&1 ;;
  esac
  i=0
  for f in $seeds; do  # several seeds share a file name
    i=$((i + 1))
    cp "$f" "$corpus/seed$i-$(basename "$f")"
  done
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
    echo "== $t: replaying $(ls "$reg" | wc -l) regression inputs"
    "$bin" "$reg"/*
  fi
  echo "== $t: fuzzing for $secs s"
  "$bin" -max_total_time="$secs" -max_len=200000 -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="build/fuzz/crashes/$t/" "$corpus" 2>&1 | grep -E "^#[0-9]+.*(DONE|pulse)|ERROR|stat::number_of_executed_units|SUMMARY" || true
  if [ -n "$(ls -A "build/fuzz/crashes/$t")" ]; then
    echo "fuzz.sh: $t found crashing inputs in build/fuzz/crashes/$t" >&2
    exit 1
  fi
done
