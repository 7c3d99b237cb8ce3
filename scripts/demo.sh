#!/bin/sh
# Builds scholar (release) and runs the bundled demo. Installs missing Debian packages first.
#   1. tour      tensors, kernels, matrix products, files, with timings on this machine
#   2. train_lm  trains a BPE tokenizer and a small GPT on the Jargon File (about a minute and a
#                half on 2 cores), printing samples; output in build/demo/train_lm
#   3. generate  streams text from that model with sampling, exports it to a Q8_0 GGUF file (which
#                llama.cpp can run) and decodes from the GGUF with beam search
#   4. distill   a small teacher and a student taught five ways (hard labels, live and cached
#                logit distillation, sequence-level, on-policy); output in build/demo/distill
#   5. finetune  a base trained on FOLDOC adapted to the Jargon File with LoRA, taught to answer
#                questions (SFT), and the adapter run by the inference engine; build/demo/finetune
#   6. rag       an embedder trained on FOLDOC, FOLDOC indexed in a store (dense + BM25), searched,
#                and questions answered by the fine-tuned model from its sources; build/demo/rag
# `scripts/demo.sh --quick` shortens them.
set -eu
cd "$(dirname "$0")/.."
quick=""
steps=1500
embed_steps=600
if [ "${1:-}" = "--quick" ]; then quick="--quick"; steps=200; embed_steps=150; fi
scripts/deps.sh demo
cmake --preset release
cmake --build --preset release -j "$(nproc)" --target tour train_lm generate distill finetune rag

echo "== 1. tour of the base layers =="
build/release/examples/tour/tour $quick

echo
echo "== 2. train a tokenizer and a small GPT on the Jargon File =="
rm -rf build/demo/train_lm
build/release/examples/train_lm/train_lm --out build/demo/train_lm --vocab 2048 --layers 4 \
  --width 128 --heads 4 --context 64 --batch 16 --steps "$steps" --eval-every 100 --sample-every 500

echo
echo "== 3. generate: sampling from the checkpoint, then beam search on a Q8_0 GGUF export =="
build/release/examples/generate/generate --model build/demo/train_lm/checkpoint.safetensors \
  --prompt "A hacker is" --temperature 0.8 --top-k 40 --top-p 0.95 --seed 1 --max-tokens 60 \
  --save-gguf build/demo/train_lm/model-q8_0.gguf --type q8_0
build/release/examples/generate/generate --model build/demo/train_lm/model-q8_0.gguf \
  --prompt "A hacker is" --beams 4 --max-tokens 30

echo
echo "== 4. distill: a teacher teaches a student five ways =="
rm -rf build/demo/distill
build/release/examples/distill/distill --quick --out build/demo/distill

echo
echo "== 5. finetune: LoRA on a new domain, then questions and answers (SFT) =="
rm -rf build/demo/finetune
build/release/examples/finetune/finetune --quick --out build/demo/finetune

echo
echo "== 6. rag: an embedder trained on FOLDOC, a store, search, and answers with sources =="
rm -rf build/demo/rag
rag=build/release/examples/rag/rag
foldoc=/usr/share/dictd/foldoc.dict.dz
$rag train-embedder $foldoc --out build/demo/rag/embedder --steps "$embed_steps" --batch 32
$rag index $foldoc --store build/demo/rag/foldoc.store --embedder build/demo/rag/embedder
$rag search "what is a kludge" --store build/demo/rag/foldoc.store --k 3 --dense-weight 0.1
$rag search "memory that forgets its contents when the power goes off" \
  --store build/demo/rag/foldoc.store --k 3 --dense-weight 0.1
# The demo's generator is the small base of part 5 (a 64-token context): its answers show the
# plumbing (retrieval, numbered sources cut to fit, streaming); any GGUF model answers properly.
for q in "What is a daemon?" "What is cruft?"; do
  $rag ask "$q" --store build/demo/rag/foldoc.store --k 2 --dense-weight 0.1 --prompt compact \
    --model build/demo/finetune/base/checkpoint.safetensors --max-tokens 16 --temperature 0.7 \
    --top-k 40 --seed 1
done
