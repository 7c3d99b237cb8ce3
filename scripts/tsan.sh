#!/bin/sh
# Builds the concurrency tests with ThreadSanitizer and runs them: the thread pool's tests and every
# index test tagged [concurrency] (adds, removes, updates and searches from several threads at once).
# TSan reports a data race even when the results happen to come out right; any report fails the run.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh test
cmake --preset tsan
cmake --build --preset tsan -j "$(nproc)"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
build/tsan/tests/test_core
build/tsan/tests/test_index "[concurrency]"
