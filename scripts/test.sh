#!/usr/bin/env bash
# Builds everything (library tests, examples, benchmarks) and runs the test suite.
# Used by the README and by .ci/run. BUILD_DIR overrides the build folder (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHUBBLE_BUILD_TESTS=ON -DHUBBLE_BUILD_EXAMPLES=ON -DHUBBLE_BUILD_BENCHMARKS=ON
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" -j"$(nproc)" --output-on-failure --timeout 900
