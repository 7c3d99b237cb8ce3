"""What the comparisons with llama.cpp share: scholar's release binaries, llama.cpp's own
llama-bench (built by build_llama_bench.sh) and the benchmark models (make_bench_models.py)."""
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.normpath(os.path.join(here, "..", ".."))
default_models = os.path.join(root, "build", "bench_models")


def release_binary(*parts):
    """A program of the release build; exits with the command to build it if it is missing."""
    path = os.path.join(root, "build", "release", *parts)
    if not os.path.exists(path):
        sys.exit("build the release preset first: cmake --preset release && "
                 "cmake --build --preset release")
    return path


def llama_bench():
    """The path of llama-bench, built on first use."""
    out = subprocess.run([os.path.join(here, "build_llama_bench.sh")], check=True,
                         capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def bench_models(directory):
    """Writes the benchmark models into `directory` unless they are there already."""
    subprocess.run([sys.executable, os.path.join(here, "make_bench_models.py"), directory],
                   check=True)
