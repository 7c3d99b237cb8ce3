#!/usr/bin/env python3
"""One data-parallel training step on this 2-core machine, three ways, alternated round by round
(A B C A B C ...): one process of 2 threads, 2 MPI ranks of 1 thread, and 2 ranks with sharded
optimizer state (ZeRO stage 1). The global batch is the same in all three. Prints each run's JSON
line, then medians: tokens/s, seconds per step, seconds a rank waited for the gradient average
(and weight broadcast) per step, peak memory and optimizer state per rank.

Needs scholar's release build with MPI:
  cmake --preset release -DSCHOLAR_MPI=ON && cmake --build --preset release --target distributed
  bench/compare/distributed.py [--config small|gpt2-small] [--rounds 3] [--steps 5] [--warmup 2]"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.join(HERE, "..", "..", "build", "release", "bench", "distributed")

# Open MPI: root is allowed (containers), and no cross-memory-attach single copy (not permitted
# in most containers; shared memory copies through a buffer instead).
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none", OPENBLAS_NUM_THREADS="1")


def runners(config, steps, warmup):
    args = [BIN, "--config", config, "--steps", str(steps), "--warmup", str(warmup)]
    mpi = ["mpiexec", "-np", "2", "--bind-to", "core"]
    return {
        "1 rank x 2 threads": (args, dict(MPI_ENV, SCHOLAR_NUM_THREADS="2")),
        "2 ranks x 1 thread": (mpi + args, dict(MPI_ENV, SCHOLAR_NUM_THREADS="1")),
        "2 ranks x 1 thread, sharded": (mpi + args + ["--shard"], dict(MPI_ENV, SCHOLAR_NUM_THREADS="1")),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="small", choices=["small", "gpt2-small"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: build the release preset with -DSCHOLAR_MPI=ON (see --help)")
    runs = runners(a.config, a.steps, a.warmup)
    results = {name: [] for name in runs}
    for _ in range(a.rounds):
        for name, (cmd, env) in runs.items():
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
            res = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
            print(name, json.dumps(res), flush=True)
            results[name].append(res)
    base = "1 rank x 2 threads"
    print(f"\nconfig {a.config}, medians of {a.rounds} alternated rounds, {a.steps} timed steps each")
    print(f"{'layout':30} {'tokens/s':>9} {'vs 1x2':>7} {'s/step':>7} {'comm s':>7} {'RSS MB':>7} "
          f"{'opt MB':>7}")
    for name, rs in results.items():
        ratio = statistics.median(r["tokens_per_s"] / b["tokens_per_s"] for r, b in zip(rs, results[base]))
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        print(f"{name:30} {med('tokens_per_s'):9.1f} {ratio:7.3f} {med('s_per_step'):7.3f} "
              f"{med('comm_s_per_step'):7.4f} {med('peak_rss_mb_per_rank'):7.1f} "
              f"{med('optimizer_state_mb_per_rank'):7.1f}")
    print(f"gradient bytes averaged per step: {results[base][0]['allreduce_mb_per_step']:.1f} MB")


if __name__ == "__main__":
    main()
