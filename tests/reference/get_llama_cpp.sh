#!/bin/sh
# Fetches llama.cpp as the npm package node-llama-cpp@3.21.1 ships it: prebuilt CPU libraries
# (including an AVX-512 "zen4" build) and the matching source as a git bundle. Used by the fixture
# scripts (gguf-py, the reference GGUF reader/writer and quantizers) and by bench/compare (llama-bench).
#
#   tests/reference/get_llama_cpp.sh [DIR]      (default: build/llama.cpp)
#
# Leaves DIR/node_modules (the package and its prebuilt binaries) and DIR/src (llama.cpp's source,
# gguf-py in DIR/src/gguf-py). Needs npm and git; idempotent.
set -eu
dir=${1:-build/llama.cpp}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ ! -d "$dir/node_modules/node-llama-cpp" ]; then
  # --ignore-scripts: the prebuilt binaries come as dependencies; the install script would only
  # look for a GPU toolchain.
  npm install --silent --ignore-scripts --no-audit --no-fund --prefix "$dir" node-llama-cpp@3.21.1
fi
if [ ! -d "$dir/src/.git" ]; then
  git -c advice.detachedHead=false clone --quiet "$dir/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$dir/src"
fi
echo "$dir"
