#!/usr/bin/python3
"""Plots a training log (log.csv from train::Trainer) to a PNG: training loss per step and
validation loss where measured. Needs python3-matplotlib (scripts/deps.sh fixtures does not
install it; apt-get install python3-matplotlib).
usage: scripts/plot_loss.py LOG_CSV OUT_PNG [--title TEXT]"""
import argparse
import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("log")
ap.add_argument("out")
ap.add_argument("--title", default="training loss")
args = ap.parse_args()
steps, loss, vsteps, vloss = [], [], [], []
with open(args.log) as f:
    for row in csv.DictReader(f):
        steps.append(int(row["step"]))
        loss.append(float(row["loss"]))
        if row["val_loss"]:
            vsteps.append(int(row["step"]))
            vloss.append(float(row["val_loss"]))
fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
ax.plot(steps, loss, lw=0.8, alpha=0.6, label="training loss (per step)")
ax.plot(vsteps, vloss, "o-", ms=3, lw=1.5, label="validation loss")
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy (nats per token)")
ax.set_title(args.title)
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
fig.savefig(args.out)
print("wrote", args.out)
