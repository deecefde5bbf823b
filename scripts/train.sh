#!/usr/bin/env bash
# Builds the main job and runs it; arguments go to galaxy10_train (no arguments: the paper's
# network on the embedded synthetic Galaxy10, generated on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHUBBLE_BUILD_TESTS=ON -DHUBBLE_BUILD_EXAMPLES=ON -DHUBBLE_BUILD_BENCHMARKS=ON
cmake --build "$build" -j"$(nproc)" --target galaxy10_train
exec "$build/examples/galaxy10_train" "$@"
