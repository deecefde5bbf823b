#!/usr/bin/env bash
# Interrupts galaxy10_train after its first checkpoint, resumes it, and checks that the final
# weights equal those of an uninterrupted run with the same seed and thread count.
#   run.sh GALAXY10_TRAIN WORK_DIR sigkill|sigint
# sigkill: `kill -9` at an arbitrary moment must leave a loadable last.h5 (atomic writes).
# sigint:  Ctrl-C must exit with status 130 and say how to resume.
set -u
exe=$1
work=$2
mode=$3
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 20 "$f" >&2; done; exit 1; }

rm -rf "$work" && mkdir -p "$work" || fail "cannot create $work"
# Tiny and quick: 48 synthetic images, 16 training images x 4 rotations per epoch, 3 epochs.
args=(--synthetic-file "$work/tiny.h5" --synthetic-count 48 --epochs 3 --val-split 0.25 --max-train-images 16
      --batch-size 8 --threads 2 --seed 3 --quiet)

"$exe" "${args[@]}" --out "$work/full" > "$work/full.log" 2>&1 || fail "uninterrupted run failed"
want=$(grep -o 'fnv1a64:[0-9a-f]*' "$work/full.log" | head -n 1)
[ -n "$want" ] || fail "no weights digest in the uninterrupted run's output"

"$exe" "${args[@]}" --out "$work/part" > "$work/part.log" 2>&1 &
pid=$!
for _ in $(seq 1 6000); do  # up to 60 s for the first checkpoint
  [ -f "$work/part/last.h5" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.01
done
[ -f "$work/part/last.h5" ] || { kill -9 "$pid" 2>/dev/null; fail "no checkpoint appeared"; }
if [ "$mode" = sigkill ]; then
  kill -9 "$pid" 2>/dev/null
  wait "$pid"
  status=$?
  [ "$status" -eq 137 ] || fail "the run was not killed mid-way (status $status): too fast to test?"
else
  kill -INT "$pid" 2>/dev/null
  wait "$pid"
  status=$?
  [ "$status" -eq 130 ] || fail "Ctrl-C should exit with 130, got $status"
  grep -q -- "--resume" "$work/part.log" || fail "the Ctrl-C message does not say how to resume"
fi

"$exe" --out "$work/part" --resume --quiet > "$work/resume.log" 2>&1 || fail "resume failed"
grep -Eq "resuming from .* after epoch [12] of 3" "$work/resume.log" || fail "the resumed run did not continue mid-way"
got=$(grep -o 'fnv1a64:[0-9a-f]*' "$work/resume.log" | head -n 1)
[ "$got" = "$want" ] || fail "resumed weights $got differ from the uninterrupted run's $want"
lines=$(wc -l < "$work/part/metrics.jsonl")
[ "$lines" -eq 3 ] || fail "metrics.jsonl has $lines lines, expected 3"
echo "ok: $mode, then --resume, gives the uninterrupted run's weights ($want)"
