#!/bin/sh
# Installs the Debian 12 packages scholar needs, and only those missing. This script owns the list.
#   scripts/deps.sh build     compiler, CMake, Ninja, Eigen, xsimd, OpenBLAS, zlib
#   scripts/deps.sh test      build + mpi + Catch2 and Google Benchmark (the test build compiles
#                             benches, and runs the data-parallel tests under mpiexec)
#   scripts/deps.sh mpi       Open MPI, for data-parallel training (cmake -DSCHOLAR_MPI=ON)
#   scripts/deps.sh demo      build + the text corpora the demo trains on (Jargon File, FOLDOC)
#   scripts/deps.sh fixtures  Python, PyTorch, NumPy, tqdm and Jinja2, to regenerate test fixtures
#                             (tests/reference/)
#   scripts/deps.sh bench     test + hnswlib, FAISS and matplotlib (bench/compare/index.py), Xapian
#                             and FOLDOC (bench/compare/bm25.py)
#   scripts/deps.sh fuzz      build + clang and libFuzzer (scripts/fuzz.sh)
# Several groups may be given. Needs root or sudo only when something is missing.
set -eu

BUILD="build-essential cmake ninja-build pkg-config libeigen3-dev libxsimd-dev libopenblas-dev zlib1g-dev"
MPI="openmpi-bin libopenmpi-dev"
TEST="catch2 libbenchmark-dev $MPI"
DEMO="jargon-text dict-foldoc"
FIXTURES="python3 python3-torch python3-numpy python3-tqdm python3-jinja2"
FUZZ="clang libclang-rt-14-dev"
BENCH="libhnswlib-dev libfaiss-dev python3-matplotlib python3-xapian dict-foldoc"

want=""
[ $# -eq 0 ] && set -- build
for group in "$@"; do
  case "$group" in
    build) want="$want $BUILD" ;;
    test) want="$want $BUILD $TEST" ;;
    mpi) want="$want $BUILD $MPI" ;;
    demo) want="$want $BUILD $DEMO" ;;
    bench) want="$want $BUILD $TEST $BENCH" ;;
    fixtures) want="$want $FIXTURES" ;;
    fuzz) want="$want $BUILD $FUZZ" ;;
    *) echo "deps.sh: unknown group '$group' (build, test, mpi, demo, bench, fixtures, fuzz)" >&2; exit 2 ;;
  esac
done

missing=""
for pkg in $want; do
  case " $missing " in *" $pkg "*) continue ;; esac
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $pkg"
  fi
done
[ -z "$missing" ] && exit 0

echo "Installing Debian packages:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "deps.sh: need root (or sudo) to install:$missing" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
