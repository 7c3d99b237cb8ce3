"""Shared by the scripts that time scholar beside PyTorch (distill_step.py, lora_step.py): the two
environments PyTorch runs in, and one timed run that prints a JSON line.

ENV_AS_IS is this environment with OMP_WAIT_POLICY=PASSIVE (PyTorch's OpenMP threads otherwise spin
between operations); ENV_BEST also unsets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE and sets
ATEN_CPU_CAPABILITY=avx512, so the anchor runs its own fastest kernels."""
import json
import os
import subprocess

ENV_AS_IS = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
ENV_BEST = {k: v for k, v in ENV_AS_IS.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
ENV_BEST["ATEN_CPU_CAPABILITY"] = "avx512"


def run(cmd, threads, steps, env, warmup=2):
    """Runs cmd --threads T --steps S --warmup W and returns the JSON object of its last line."""
    out = subprocess.run(cmd + ["--threads", str(threads), "--steps", str(steps), "--warmup", str(warmup)],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])
