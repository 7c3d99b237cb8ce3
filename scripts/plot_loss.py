#!/usr/bin/python3
"""Plots training logs (log.csv from train::Trainer) to a PNG: training loss per step and
validation loss where measured, one colour per log (for example an f32 and a bf16 run of the same
setting). Needs python3-matplotlib (scripts/deps.sh fixtures does not install it; apt-get install
python3-matplotlib).
usage: scripts/plot_loss.py LOG_CSV [LOG_CSV ...] OUT_PNG [--labels NAME ...] [--title TEXT]"""
import argparse
import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("paths", nargs="+", help="one or more log.csv files, then the output PNG")
ap.add_argument("--labels", nargs="+", help="one name per log")
ap.add_argument("--title", default="training loss")
args = ap.parse_args()
if len(args.paths) < 2:
    ap.error("need at least one log and an output file")
logs, out = args.paths[:-1], args.paths[-1]
labels = args.labels or [""] * len(logs)
if len(labels) != len(logs):
    ap.error(f"{len(logs)} logs but {len(labels)} labels")

fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
for i, (log, label) in enumerate(zip(logs, labels)):
    steps, loss, vsteps, vloss = [], [], [], []
    with open(log) as f:
        for row in csv.DictReader(f):
            steps.append(int(row["step"]))
            loss.append(float(row["loss"]))
            if row["val_loss"]:
                vsteps.append(int(row["step"]))
                vloss.append(float(row["val_loss"]))
    colour = f"C{i}"
    prefix = f"{label}: " if label else ""
    ax.plot(steps, loss, lw=0.8, alpha=0.45, color=colour, label=f"{prefix}training loss (per step)")
    ax.plot(vsteps, vloss, "o-", ms=3, lw=1.5, color=colour, label=f"{prefix}validation loss")
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy (nats per token)")
ax.set_title(args.title)
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
fig.savefig(out)
print("wrote", out)
