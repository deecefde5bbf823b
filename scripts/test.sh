#!/usr/bin/env bash
# The test command of the README and of CI (.ci/run). Four stages, each in its own build folder:
#   plain     the Release build (library tests, examples, benchmarks) and its ctest      -> $build
#   sanitize  tests and examples with ASan + UBSan (HUBBLE_SANITIZE=ON), ctest -LE not_sanitized
#                                                                                         -> $build-asan
#   clang     the suite built with Clang 14 + libomp (the plain stage is GCC): library tests,
#             examples and the ctest subset whose result depends on the compiler (below), and the
#             README's code blocks compiled with clang++                                 -> $build-clang
#   fuzz      the libFuzzer targets (Clang): seeds, replay of seeds and regressions, a short run
#             of each target (HUBBLE_FUZZ_SECONDS, default 60)                            -> $build-fuzz
# Every stage runs even when an earlier one fails; the script fails if any did, and ends with
# each stage's time and ctest summary line. docs/hardening.md describes the checks.
# BUILD_DIR overrides the build folder (default: build); HUBBLE_TEST_STAGES picks stages
# (default "plain sanitize clang fuzz"); JOBS the build parallelism (default: nproc).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || exit 1
build=${BUILD_DIR:-build}
stages=${HUBBLE_TEST_STAGES:-plain sanitize clang fuzz}
jobs=${JOBS:-$(nproc)}
fuzz_seconds=${HUBBLE_FUZZ_SECONDS:-60}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
summary=()
failed=0

# run_stage NAME COMMAND...: runs the command, its output also kept to pick ctest's summary line.
run_stage() {
  local name=$1; shift
  local start=$SECONDS
  echo "=== stage $name: start $(date -u +%H:%M:%S)"
  "$@" 2>&1 | tee "$logs/$name.log"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E "tests passed|No tests were found" "$logs/$name.log" | tail -1)
  [[ -z $line ]] && line="(no ctest summary: the stage stopped before its tests)"
  summary+=("$(printf '%-9s %5ds  rc=%d  %s' "$name" $((SECONDS - start)) "$rc" "$line")")
  ((rc != 0)) && failed=1
  echo "=== stage $name: rc=$rc after $((SECONDS - start)) s"
}

ctest_args=(--output-on-failure --no-tests=error --timeout 900)

plain() {
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHUBBLE_BUILD_TESTS=ON -DHUBBLE_BUILD_EXAMPLES=ON \
    -DHUBBLE_BUILD_BENCHMARKS=ON &&
    cmake --build "$build" -j"$jobs" &&
    ctest --test-dir "$build" -j"$jobs" "${ctest_args[@]}"
}

# Leaks are checked at exit; UBSan prints a stack; ASan's reports keep the libgomp frames.
sanitize() {
  cmake -S . -B "$build-asan" -DCMAKE_BUILD_TYPE=Release -DHUBBLE_SANITIZE=ON -DHUBBLE_BUILD_TESTS=ON \
    -DHUBBLE_BUILD_EXAMPLES=ON -DHUBBLE_BUILD_BENCHMARKS=OFF &&
    cmake --build "$build-asan" -j"$jobs" &&
    ASAN_OPTIONS=detect_leaks=1:check_initialization_order=1:strict_init_order=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$build-asan" -j"$jobs" -LE not_sanitized "${ctest_args[@]}"
}

# The second compiler. Left out of its ctest, as they would repeat the plain stage: the consumer
# matrix (the plain stage's consumer.find_package already builds it with g++ and clang++, with and
# without -mavx2 -mfma), docs.snippets (it compiles every block of the README and docs,
# one program each, and docs/learn/1-training-step.md pins logits printed from a GCC build, which
# Clang's build misses by 8e-4; here only the README's blocks are compiled and run), embed/custom_layer (separate CMake
# projects on the same headers) and format.check (no compiler). Everything else runs: the doctest
# suite, compile_fail (Clang's static_assert messages), the CLI, resume and figure tests.
clang() {
  local cxx
  cxx=$(command -v clang++-14 || command -v clang++) || { echo "clang: no clang++ (scripts/install-deps.sh)"; return 1; }
  cmake -S . -B "$build-clang" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" -DHUBBLE_BUILD_TESTS=ON \
    -DHUBBLE_BUILD_EXAMPLES=ON -DHUBBLE_BUILD_BENCHMARKS=OFF &&
    cmake --build "$build-clang" -j"$jobs" &&
    cmake -DSOURCE_DIR="$PWD" -DWORK_DIR="$(realpath -m "$build-clang")/readme_snippets" -DCXX="$cxx" -DDOCS=README.md \
      -P tests/docs_snippets/run.cmake &&
    ctest --test-dir "$build-clang" -j"$jobs" -E '^(consumer\.|docs\.snippets$|embed\.|custom_layer\.|format\.)' \
      "${ctest_args[@]}"
}

fuzz() {
  local cxx
  cxx=$(command -v clang++-14 || command -v clang++) || { echo "fuzz: no clang++ (scripts/install-deps.sh)"; return 1; }
  cmake -S . -B "$build-fuzz" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" -DHUBBLE_BUILD_FUZZERS=ON \
    -DHUBBLE_BUILD_TESTS=OFF -DHUBBLE_BUILD_EXAMPLES=OFF -DHUBBLE_BUILD_BENCHMARKS=OFF \
    -DHUBBLE_FUZZ_SECONDS="$fuzz_seconds" &&
    cmake --build "$build-fuzz" -j"$jobs" &&
    ctest --test-dir "$build-fuzz" "${ctest_args[@]}"
}

for stage in $stages; do
  case $stage in
    plain | sanitize | clang | fuzz) run_stage "$stage" "$stage" ;;
    *) echo "test.sh: unknown stage '$stage' (plain, sanitize, clang, fuzz)"; exit 2 ;;
  esac
done

echo "=== summary (stage, seconds, exit status, ctest summary line)"
printf '%s\n' "${summary[@]}"
exit $failed
