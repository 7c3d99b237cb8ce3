#!/bin/sh
# Opening a GGUF file with a 151,936-token vocabulary (Qwen2's size): this tree against an earlier
# commit, alternately, 4 rounds. Builds bench/compare/gguf_open.cpp with each tree's GGUF reader.
#   bench/compare/gguf_open.sh [BASE_REV]     (default 72910ba: arrays as one object per element)
set -eu
cd "$(dirname "$0")/../.."
base_rev="${1:-72910ba}"
work="$(mktemp -d)"
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/base" "$base_rev" >/dev/null 2>&1
cmake --preset dev >/dev/null  # for the generated version header
build() {  # build TREE OUT
  srcs="$1/src/io/gguf.cpp $1/src/io/file.cpp $1/src/tensor/layout.cpp"
  [ -f "$1/src/core/error.cpp" ] && srcs="$srcs $1/src/core/error.cpp"
  # shellcheck disable=SC2086
  g++ -std=c++20 -O2 -DNDEBUG -I"$1/include" -I"$1/src" -Ibuild/dev/include \
    bench/compare/gguf_open.cpp $srcs -o "$2"
}
build "$work/base" "$work/before"
build . "$work/after"
"$work/after" write "$work/vocab.gguf"
for round in 1 2 3 4; do
  printf 'round %s  %s: ' "$round" "$base_rev"; "$work/before" open "$work/vocab.gguf"
  printf 'round %s  this tree: ' "$round"; "$work/after" open "$work/vocab.gguf"
done
