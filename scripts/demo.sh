#!/bin/sh
# Builds scholar (release) and runs the bundled demo. Installs missing Debian packages first.
#   1. tour      tensors, kernels, matrix products, files, with timings on this machine
#   2. train_lm  trains a BPE tokenizer and a small GPT on the Jargon File (about a minute and a
#                half on 2 cores), printing samples; output in build/demo/train_lm
# `scripts/demo.sh --quick` shortens both.
set -eu
cd "$(dirname "$0")/.."
quick=""
steps=1500
if [ "${1:-}" = "--quick" ]; then quick="--quick"; steps=200; fi
scripts/deps.sh demo
cmake --preset release
cmake --build --preset release -j "$(nproc)" --target tour train_lm

echo "== 1. tour of the base layers =="
build/release/examples/tour/tour $quick

echo
echo "== 2. train a tokenizer and a small GPT on the Jargon File =="
rm -rf build/demo/train_lm
build/release/examples/train_lm/train_lm --out build/demo/train_lm --vocab 2048 --layers 4 \
  --width 128 --heads 4 --context 64 --batch 16 --steps "$steps" --eval-every 100 --sample-every 500
