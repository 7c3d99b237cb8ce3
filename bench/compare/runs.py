"""Shared by the scripts that time scholar beside PyTorch (distill_step.py, lora_step.py, embed.py,
train_step.py): the two environments PyTorch runs in, and one timed run that prints a JSON line.

ENV_AS_IS is this environment with OMP_WAIT_POLICY=PASSIVE (PyTorch's OpenMP threads otherwise spin
between operations); ENV_BEST also unsets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE and sets
ATEN_CPU_CAPABILITY=avx512, so the anchor runs its own fastest kernels.

"N threads" means N cores for every program. torch.set_num_threads(N) does not reach Debian's
OpenBLAS, which is the pthread build and otherwise starts one thread per core inside every
product, so a "1 thread" PyTorch run would use both cores of this machine. run() therefore sets
OPENBLAS_NUM_THREADS and OMP_NUM_THREADS to N for each run, and reports the cores a run actually
used (CPU seconds over wall seconds of the whole process, start-up included) as "cores_used"."""
import json
import os
import resource
import statistics
import subprocess
import time

ENV_AS_IS = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
ENV_BEST = {k: v for k, v in ENV_AS_IS.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
ENV_BEST["ATEN_CPU_CAPABILITY"] = "avx512"


def _cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd, threads, steps, env, warmup=2, extra=()):
    """Runs cmd --threads T --steps S --warmup W [extra] on T cores and returns the JSON object of
    its last line, with "cores_used" added."""
    env = dict(env, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    out = subprocess.run(cmd + ["--threads", str(threads), "--steps", str(steps), "--warmup", str(warmup),
                                *extra], check=True, capture_output=True, text=True, env=env).stdout
    wall = time.perf_counter() - wall0
    res = json.loads(out.strip().splitlines()[-1])
    res["cores_used"] = round((_cpu_seconds() - cpu0) / wall, 2)
    return res


def alternate(runners, threads, rounds, steps, warmup=2, extra=()):
    """Runs every (cmd, env) of `runners` once per round, in order, for `rounds` rounds (A B C A B C
    ...) so that drifts in the machine's speed hit all of them; returns {name: [result per round]}."""
    results = {name: [] for name in runners}
    for _ in range(rounds):
        for name, (cmd, env) in runners.items():
            results[name].append(run(cmd, threads, steps, env, warmup, extra))
    return results


def median(results, name, key):
    """The median over rounds of results[name][i][key]."""
    return statistics.median(x[key] for x in results[name])


def median_ratio(results, num, den, key):
    """The median over rounds of the per-round ratio results[num][i][key] / results[den][i][key]."""
    return statistics.median(a[key] / b[key] for a, b in zip(results[num], results[den]))
