#!/usr/bin/python3
"""HNSW search: scholar beside hnswlib and FAISS IndexHNSWFlat, on the same data, in one run.

For each dataset (a: 200,000 x 128 L2, 1,000 Gaussian clusters; b: 100,000 x 384 cosine, 500
clusters; 1,000 queries each) and round, one process (bench index_bench) builds the three indexes one
after another (M = 16, ef_construction = 200, 2 threads; the order reverses every round) and records
each build's time and the memory it keeps, then measures single-thread queries/s and recall@10 over
a sweep of ef with the engines taking turns pass by pass, so a drift in the machine's speed touches
all of them alike. The report gives, per engine, the median build time and memory and the queries/s
at the first ef whose recall@10 reaches 0.90, 0.95 and 0.99, with scholar's ratio to hnswlib as the
median of the per-round ratios; it also draws recall against queries/s.

usage: bench/compare/index.py [--rounds 2] [--data a,b] [--engines scholar,hnswlib,faiss]
                              [--plot docs/images/index_recall_qps.png] [--report-only]
Needs a release build with index_bench (scripts/deps.sh bench; cmake --preset release &&
cmake --build --preset release --target index_bench). FAISS's OpenMP threads are told not to spin
(OMP_WAIT_POLICY=PASSIVE), as the machine has two cores."""
import argparse
import json
import os
import statistics
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.normpath(os.path.join(here, "..", ".."))
ap = argparse.ArgumentParser()
ap.add_argument("--rounds", type=int, default=2)
ap.add_argument("--data", default="a,b")
ap.add_argument("--engines", default="scholar,hnswlib,faiss")
ap.add_argument("--plot", default=os.path.join(root, "docs", "images", "index_recall_qps.png"))
ap.add_argument("--json", default=os.path.join(root, "build", "bench_index", "results.json"),
                help="where the raw results are written")
ap.add_argument("--report-only", action="store_true",
                help="no runs: print the table and draw the plot from --json")
args = ap.parse_args()

binary = os.path.join(root, "build", "release", "bench", "index_bench")
if not os.path.exists(binary):
    sys.exit("build index_bench first: scripts/deps.sh bench && cmake --preset release && "
             "cmake --build --preset release --target index_bench")
cache = os.path.join(root, "build", "bench_index")
os.makedirs(cache, exist_ok=True)
env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
engines = args.engines.split(",")
targets = (0.90, 0.95, 0.99)
names = {"a": "a: 200k x 128, L2", "b": "b: 100k x 384, cosine"}


def run(order, data):
    out = subprocess.run([binary, "--engines", ",".join(order), "--data", data, "--cache", cache],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)["engines"]


def at_recall(sweep, target):
    """(ef, qps) at the first ef whose recall reaches target, or None."""
    for p in sweep:
        if p["recall"] >= target:
            return p["ef"], p["qps"]
    return None


results = {}
for data in [] if args.report_only else args.data.split(","):
    runs = {e: [] for e in engines}
    for r in range(args.rounds):
        order = engines if r % 2 == 0 else list(reversed(engines))
        res = run(order, data)
        for e in order:
            runs[e].append(res[e])
            print(f"  {data} round {r + 1} {e}: build {res[e]['build_s']:.1f} s, "
                  f"{res[e]['memory_bytes'] / 2**20:.0f} MiB", file=sys.stderr, flush=True)
    results[data] = runs

if args.report_only:
    with open(args.json) as f:
        results = json.load(f)
else:
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


for data, runs in results.items():
    print(f"\n### {names[data]}\n")
    head = "| engine | build (2 threads) | memory |"
    for t in targets:
        head += f" q/s at recall {t:.2f} (ef) |"
    print(head)
    print("|" + "---|" * (3 + len(targets)))
    for e in engines:
        b = med([x["build_s"] for x in runs[e]])
        m = med([x["memory_bytes"] / 2**20 for x in runs[e]])
        row = f"| {e} | {b:.1f} s | {m:.0f} MiB |"
        for t in targets:
            pts = [at_recall(x["sweep"], t) for x in runs[e]]
            q = med([p[1] if p else None for p in pts])
            ef = med([p[0] if p else None for p in pts])
            row += f" {fmt(q, '.0f')} ({fmt(ef, '.0f')}) |"
        print(row)
    if "scholar" in runs and "hnswlib" in runs:
        s, h = runs["scholar"], runs["hnswlib"]
        n = min(len(s), len(h))
        line = "| scholar / hnswlib |"
        line += f" {med([s[i]['build_s'] / h[i]['build_s'] for i in range(n)]):.2f}x |"
        line += f" {med([s[i]['memory_bytes'] / h[i]['memory_bytes'] for i in range(n)]):.2f}x |"
        for t in targets:
            ratios = []
            for i in range(n):
                ps, ph = at_recall(s[i]["sweep"], t), at_recall(h[i]["sweep"], t)
                ratios.append(ps[1] / ph[1] if ps and ph else None)
            line += f" {fmt(med(ratios), '.2f')}x |"
        print(line)

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("no plot: python3-matplotlib is not installed (scripts/deps.sh bench)")
fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.2), squeeze=False)
for ax, (data, runs) in zip(axes[0], results.items()):
    for e in engines:
        efs = [p["ef"] for p in runs[e][0]["sweep"]]
        rec = [med([x["sweep"][i]["recall"] for x in runs[e]]) for i in range(len(efs))]
        qps = [med([x["sweep"][i]["qps"] for x in runs[e]]) for i in range(len(efs))]
        pts = []
        for r, q in zip(rec, qps):  # from recall 0.85 up to the first ef reaching 0.999
            if r >= 0.85:
                pts.append((r, q))
            if r >= 0.999:
                break
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=e)
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries/s (1 thread)")
    ax.set_title(names[data])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
fig.tight_layout()
os.makedirs(os.path.dirname(args.plot), exist_ok=True)
fig.savefig(args.plot, dpi=80)
print(f"\nplot: {os.path.relpath(args.plot, root)}")
