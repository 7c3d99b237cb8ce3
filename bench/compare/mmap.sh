#!/bin/sh
# Decoding speed with the weights memory-mapped (the default) and read into memory on huge pages
# (FileAccess::copy), alternated, ROUNDS rounds per cell; prints each cell's tokens/s and the median
# of the per-round ratios (read / mapped). Uses the models of bench/compare/make_bench_models.py.
#   bench/compare/mmap.sh [MODELS_DIR] [ROUNDS]     (default: build/bench_models 3)
set -eu
cd "$(dirname "$0")/../.."
dir=${1:-build/bench_models}
rounds=${2:-3}
bench=build/release/bench/infer_bench
for t in f32 f16 q8_0 q4_0; do
  for th in 1 2; do
    r=1
    while [ "$r" -le "$rounds" ]; do
      for m in 1 0; do
        printf '%s %s %s ' "$t" "$th" "$m"
        "$bench" "$dir/llama124m-$t.gguf" --pp 16 --tg 64 --reps 3 --threads "$th" --mmap "$m" |
          sed -n 's/.*"test": "tg64".*"tokens_per_s": \([0-9.]*\).*/\1/p'
      done
      r=$((r + 1))
    done
  done
done | /usr/bin/python3 -c '
import collections, statistics, sys
runs = collections.defaultdict(lambda: {"1": [], "0": []})
for line in sys.stdin:
    t, th, m, v = line.split()
    runs[(t, th)][m].append(float(v))
print("| type | threads | mapped tok/s | read into memory tok/s | ratio |")
print("|---|---|---|---|---|")
for (t, th), r in runs.items():
    ratio = statistics.median(b / a for a, b in zip(r["1"], r["0"]))
    mapped, read = (", ".join(map(str, r[m])) for m in ("1", "0"))
    print(f"| {t} | {th} | {mapped} | {read} | {ratio:.2f} |")
'
