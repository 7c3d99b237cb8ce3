#!/usr/bin/python3
"""Per-op overhead of the autograd graph, scholar against PyTorch eager, alternating runs.
usage: bench/compare/op_overhead.py BUILD_DIR [--rounds 3]"""
import argparse
import json
import os
import statistics
import subprocess

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("build_dir")
ap.add_argument("--rounds", type=int, default=3)
args = ap.parse_args()
ours, theirs = [], []
for _ in range(args.rounds):
    ours.append(json.loads(subprocess.run([os.path.join(args.build_dir, "bench", "op_overhead")], check=True,
                                          capture_output=True, text=True).stdout)["us_per_op"])
    theirs.append(json.loads(subprocess.run(["/usr/bin/python3", os.path.join(here, "op_overhead_torch.py")],
                                            check=True, capture_output=True, text=True,
                                            env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE")).stdout)["us_per_op"])
s, p = statistics.median(ours), statistics.median(theirs)
print("# a chain of 1,000 small ops (16 floats), forward + backward, microseconds per op, median of rounds")
print(f"scholar {s:.2f} us/op   PyTorch {p:.2f} us/op   PyTorch / scholar = {p / s:.1f}x")
