#!/bin/sh
# The sampling chain's cost per token (bench/compare/sampler_chain.cpp): this tree against an
# earlier commit, alternately, 4 rounds.
#   bench/compare/sampler_chain.sh [BASE_REV]   (default 72910ba: processors rebuilt their state
#                                                from the whole history every token)
set -eu
cd "$(dirname "$0")/../.."
base_rev="${1:-72910ba}"
work="$(mktemp -d)"
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/base" "$base_rev" >/dev/null 2>&1
# Each tree's library, built the same way (Release, no tests, benchmarks or examples).
lib() {  # lib TREE BUILD_DIR
  cmake -S "$1" -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSCHOLAR_BUILD_TESTS=OFF \
    -DSCHOLAR_BUILD_BENCH=OFF -DSCHOLAR_BUILD_EXAMPLES=OFF -DSCHOLAR_INSTALL=OFF >/dev/null
  cmake --build "$2" --target scholar >/dev/null
}
build() {  # build TREE OUT
  flags=""
  grep -q "void accept(int32_t" "$1/include/scholar/generate/generate.hpp" &&
    flags="-DSCHOLAR_SAMPLER_ACCEPT"
  lib "$1" "$2.build"
  # shellcheck disable=SC2086
  g++ -std=c++20 -O2 -DNDEBUG $flags -I"$1/include" -I"$2.build/include" \
    -isystem /usr/include/eigen3 bench/compare/sampler_chain.cpp "$2.build/libscholar.a" \
    -lpthread -o "$2"
}
build "$work/base" "$work/before"
build . "$work/after"
for round in 1 2 3 4; do
  printf 'round %s  %s: ' "$round" "$base_rev"; "$work/before"
  printf 'round %s  this tree: ' "$round"; "$work/after"
done
