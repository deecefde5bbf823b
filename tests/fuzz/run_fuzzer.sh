#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS in all, telling hubble's findings from HDF5's own bugs.
#   run_fuzzer.sh FUZZER SECONDS CORPUS ARTIFACTS [INPUT...]
# CORPUS: folder where new inputs are kept (created); INPUT: more seed folders or files (those
# that do not exist are skipped). Used by ctest fuzz.<target>.run and scripts/fuzz.sh.
#
# Debian's libhdf5 1.10.8 crashes on some corrupt files (e.g. a null read in H5VM_memcpyvv under
# H5Dread). We cannot fix it, and a fuzzing run that stopped at the first such input would find
# nothing else, so after each crash the report's stack is classified (see classify below):
#   - the first frame outside the C/C++ and sanitizer runtimes is in libhdf5, and the memory it
#     touched (if ASan names it) is not hubble's: an HDF5 bug. The input is moved to
#     ARTIFACTS/hdf5/, counted, and fuzzing resumes (with the corpus so far);
#   - anything else (a frame in hubble's code or the libstdc++ it instantiates, a UBSan report,
#     an exception other than hubble::Error, a leak, a hang or an out-of-memory in hubble) is
#     replayed alone: when the input fails again (and not inside libhdf5) it is a finding: it stays
#     in ARTIFACTS/, the report is printed and the script fails. When it passes alone (e.g. the
#     whole process grew past -rss_limit_mb over many inputs) it goes to ARTIFACTS/unreproduced/.
# HUBBLE_FUZZ_SEED=N fixes libFuzzer's seed (N, then N+1 after each restart), so that a run from
# the same corpus explores the same inputs: ctest's short CI run uses it, and long exploratory runs
# (scripts/fuzz.sh) leave it unset for a new random seed each time.
# Exit status: 0 when the time ran out with no finding in hubble, 1 otherwise.
set -uo pipefail
if (($# < 4)); then
  echo "usage: run_fuzzer.sh FUZZER SECONDS CORPUS ARTIFACTS [INPUT...]" >&2
  exit 2
fi
fuzzer=$1 seconds=$2 corpus=$3 artifacts=$4
shift 4
inputs=()
for input in "$@"; do [[ -e $input ]] && inputs+=("$input"); done
mkdir -p "$corpus" "$artifacts/hdf5"
max_restarts=${HUBBLE_FUZZ_MAX_RESTARTS:-200}

# classify LOG: prints "hdf5" or "hubble". The report's first stack (where the error happened) is
# read from the top, skipping runtime frames (libc, the sanitizers and their interceptors,
# libFuzzer, allocation functions). When that frame is in libhdf5, the error is HDF5's own, unless ASan's
# report shows the memory was allocated (or freed) by hubble's code: then libhdf5 was handed a
# buffer too small (or already freed) by hubble, and that is hubble's finding.
classify() {
  awk '
    # A runtime frame: no source location (ASan interceptors such as strdup or memcpy, libFuzzer,
    # the sanitizer runtime, libomp: "(module+0x...)"), or a libc / allocation / abort frame.
    # Code of hubble, and the libstdc++ and stb_image code it instantiates, carries file:line (-g1).
    function runtime(line) {
      if (line ~ /libhdf5/) return 0
      if (line !~ /:[0-9]+(:[0-9]+)?$/) return 1
      return line ~ /sysdeps|libc-start|libc_start|__cxa_|std::terminate|__gnu_cxx::__verbose_terminate|[( ]abort|raise|gsignal|operator new|operator delete|[( ]malloc|[( ]calloc|[( ]realloc|[( ]free/
    }
    /(allocated|freed) by thread/ { if (stack_done && section == 1) section = 2 }
    /^ *#[0-9]+ 0x[0-9a-f]+ / {
      if (section == 0) section = 1
      if (section == 1 && !stack_done && where == "" && !runtime($0)) where = ($0 ~ /libhdf5/ ? "hdf5" : "hubble")
      if (section == 2 && owner == "" && !runtime($0)) owner = ($0 ~ /libhdf5/ ? "hdf5" : "hubble")
      next
    }
    /^ *$/ { if (section == 1) stack_done = 1; if (section == 2 && owner != "") exit }
    END { print (where == "hdf5" && owner != "hubble") ? "hdf5" : "hubble" }' "$1"
}

end=$((SECONDS + seconds))
executions=0
hdf5_crashes=0
unreproduced=0
last_progress=""
status=0
while :; do
  left=$((end - SECONDS))
  ((left < 1)) && break
  log=$(mktemp)
  seed=()
  [[ -n ${HUBBLE_FUZZ_SEED:-} ]] && seed=(-seed=$((HUBBLE_FUZZ_SEED + hdf5_crashes + unreproduced)))
  "$fuzzer" "${seed[@]}" -max_total_time="$left" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$corpus" "${inputs[@]}" >"$log" 2>&1
  rc=$?
  runs=$(awk '/stat::number_of_executed_units/ { n = $2 } END { print n + 0 }' "$log")
  executions=$((executions + runs))
  progress=$(grep -E '^#[0-9]+[[:space:]]+(INITED|NEW|REDUCE|pulse|DONE)' "$log" | tail -1)
  [[ -n $progress ]] && last_progress=$progress
  if ((rc == 0)); then
    rm -f "$log"
    break
  fi
  artifact=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
  kind=$(classify "$log")
  # A finding counts only if its input fails again on its own: an out-of-memory of the whole
  # process (libFuzzer's -rss_limit_mb) can come from many inputs together, e.g. HDF5's caches.
  if [[ $kind == hubble && -n $artifact && -f $artifact ]]; then
    "$fuzzer" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=2048 "$artifact" >"$log.replay" 2>&1
    if (($? == 0)); then
      kind=alone_fine
    else
      kind=$(classify "$log.replay")
      [[ $kind == hubble ]] && cat "$log.replay" >>"$log"
    fi
    rm -f "$log.replay"
  fi
  if [[ $kind != hubble && -n $artifact && -f $artifact ]]; then
    reason=$(grep -m1 -E 'ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)' "$log" | sed 's/^==[0-9]*== *//')
    if [[ $kind == hdf5 ]]; then
      hdf5_crashes=$((hdf5_crashes + 1))
      where=$(grep -m1 -E '^ *#[0-9]+ 0x[0-9a-f]+ .*libhdf5' "$log" | sed -E 's/^ *#[0-9]+ 0x[0-9a-f]+ (in )?//; s/ \(BuildId.*//')
      echo "run_fuzzer: HDF5's own bug, not hubble's ($reason at $where); input kept in $artifacts/hdf5/"
      mv -f "$artifact" "$artifacts/hdf5/"
    else
      unreproduced=$((unreproduced + 1))
      mkdir -p "$artifacts/unreproduced"
      echo "run_fuzzer: not reproduced by its input alone ($reason); input kept in $artifacts/unreproduced/"
      mv -f "$artifact" "$artifacts/unreproduced/"
    fi
    rm -f "$log"
    if ((hdf5_crashes + unreproduced >= max_restarts)); then
      echo "run_fuzzer: stopping after $((hdf5_crashes + unreproduced)) restarts"
      break
    fi
    continue
  fi
  echo "run_fuzzer: FINDING in $(basename "$fuzzer") (exit status $rc); input: ${artifact:-none saved}"
  grep -v -E '^#[0-9]+[[:space:]]' "$log" | tail -80
  rm -f "$log"
  status=1
  break
done
echo "run_fuzzer: $(basename "$fuzzer"): $executions executions in $((seconds - (end - SECONDS > 0 ? end - SECONDS : 0))) s," \
  "$hdf5_crashes HDF5-internal crashes and $unreproduced unreproduced findings set aside, corpus $(find "$corpus" -type f | wc -l) files"
[[ -n $last_progress ]] && echo "run_fuzzer: last status: $last_progress"
exit $status
