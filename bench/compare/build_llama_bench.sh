#!/bin/sh
# Builds llama.cpp's own llama-bench tool from the source that node-llama-cpp@3.21.1 ships, against
# the prebuilt CPU libraries in the same package (it loads the best variant for this CPU, "zen4"
# here), into DIR/bench/llama-bench. Prints the path.
#   bench/compare/build_llama_bench.sh [DIR]      (default: build/llama.cpp)
set -eu
cd "$(dirname "$0")/../.."
dir=$(tests/reference/get_llama_cpp.sh "${1:-build/llama.cpp}")
src=$dir/src
libs=$dir/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
out=$dir/bench
mkdir -p "$out"
if [ ! -x "$out/llama-bench" ]; then
  # The backends are loaded from the executable's directory: link the libraries beside it.
  for f in "$libs"/*.so*; do ln -sf "$f" "$out/"; done
  g++ -std=c++17 -O2 -DNDEBUG -I "$src/include" -I "$src/ggml/include" -I "$src/common" \
    -I "$src/vendor" -I "$src/tools/llama-bench" \
    "$src/tools/llama-bench/llama-bench.cpp" "$src/tools/llama-bench/main.cpp" \
    -L "$libs" -l:libllama-common.so -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so \
    -Wl,-rpath,"$out" -o "$out/llama-bench"
fi
echo "$out/llama-bench"
