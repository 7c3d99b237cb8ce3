#!/bin/sh
# Builds scholar (release) and runs the bundled demo: a tour of the library with timings.
# Installs missing Debian packages first. Extra arguments go to the tour program.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh demo
cmake --preset release
cmake --build --preset release -j "$(nproc)" --target tour
exec build/release/examples/tour/tour "$@"
