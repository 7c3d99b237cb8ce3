#!/bin/sh
# Builds scholar and runs its whole test suite. Installs missing Debian packages first.
#   scripts/test.sh           the "dev" preset (optimized, debug info, warnings as errors)
#   scripts/test.sh asan      AddressSanitizer + UndefinedBehaviorSanitizer
#   scripts/test.sh openblas  OpenBLAS as the GEMM backend
#   scripts/test.sh portable  without the x86 kernels (scalar paths only)
set -eu
cd "$(dirname "$0")/.."
preset="${1:-dev}"
scripts/deps.sh test
cmake --preset "$preset"
cmake --build --preset "$preset" -j "$(nproc)"
ctest --preset "$preset"
