#!/usr/bin/env bash
# Long fuzzing runs of hubble's input readers (tests/fuzz, docs/hardening.md).
#   scripts/fuzz.sh [SECONDS] [TARGET...]      TARGET: galaxy10 checkpoint picture (default: all)
# SECONDS per target (default 600). Builds the targets with Clang in $FUZZ_BUILD (default
# build-fuzz), writes the seed corpora there, then runs each target in turn:
#   corpus     $FUZZ_DIR/corpus/<target>/     kept between runs: each run starts from what the
#                                              last one found (plus the seeds and regressions)
#   findings   $FUZZ_DIR/artifacts/<target>/  crash-*, leak-*, timeout-*, oom-* reproducers
#   log        $FUZZ_DIR/logs/<target>-<UTC time>.log
#   hdf5       $FUZZ_DIR/artifacts/<target>/hdf5/  inputs that crash inside libhdf5 itself: set
#                                              aside, fuzzing resumes (tests/fuzz/run_fuzzer.sh)
# FUZZ_DIR defaults to $FUZZ_BUILD/runs. Runs are nice'd. Replay one input (with the ASAN_OPTIONS
# below): $FUZZ_BUILD/tests/fuzz/fuzz_<target> <file>.
# A crash in hubble: minimise it (fuzz_<target> -minimize_crash=1 -runs=10000 <file>), add it to
# tests/fuzz/regressions/<target>/ (CI replays that folder) and fix the reader.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
((${#targets[@]} == 0)) && targets=(galaxy10 checkpoint picture)
build=${FUZZ_BUILD:-build-fuzz}
dir=${FUZZ_DIR:-$build/runs}
cxx=$(command -v clang++-14 || command -v clang++) || { echo "fuzz.sh: clang++ not found (scripts/install-deps.sh)" >&2; exit 1; }

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" -DHUBBLE_BUILD_FUZZERS=ON \
  -DHUBBLE_BUILD_TESTS=OFF -DHUBBLE_BUILD_EXAMPLES=OFF -DHUBBLE_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" -R '^fuzz\.corpus$' --output-on-failure >/dev/null  # the seeds

fuzz_src=$PWD/tests/fuzz
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:quarantine_size_mb=64"
export LSAN_OPTIONS="suppressions=$fuzz_src/hdf5_leaks.supp"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export OMP_NUM_THREADS=1
status=0
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/fuzz_$t
  [[ -x $bin ]] || { echo "fuzz.sh: no target '$t' (galaxy10, checkpoint, picture)" >&2; exit 2; }
  mkdir -p "$dir/logs"
  log=$dir/logs/$t-$(date -u +%Y%m%dT%H%M%S).log
  echo "fuzz.sh: $t for $seconds s -> $log"
  inputs=("$build/tests/fuzz/seeds/$t")
  [[ -d tests/fuzz/regressions/$t ]] && inputs+=("tests/fuzz/regressions/$t")  # pictures only
  if ! nice bash tests/fuzz/run_fuzzer.sh "$bin" "$seconds" "$dir/corpus/$t" "$dir/artifacts/$t" \
      "${inputs[@]}" >"$log" 2>&1; then
    status=1
    echo "fuzz.sh: $t: a finding in hubble; see $log and $dir/artifacts/$t/"
  fi
  grep '^run_fuzzer:' "$log" | tail -3
done
exit $status
