#!/usr/bin/env bash
# galaxy10_train on bad input: each case checks the exit status and the message.
#   galaxy10_train.sh GALAXY10_TRAIN CHECKPOINT_TOOL WORK_DIR
set -u
exe=$1
tool=$2
work=$3
source "$(dirname "$0")/lib.sh"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1

# Tiny runs: 40 synthetic images, 8 of them trained on (x4 rotations), 1 thread.
tiny=(--synthetic-file "$work/tiny.h5" --synthetic-count 40 --val-split 0.25 --max-train-images 8 --batch-size 8
      --threads 1 --quiet)
"$exe" "${tiny[@]}" --epochs 2 --out "$work/two" > "$work/two.log" 2>&1 || { cat "$work/two.log"; echo "FAIL: the reference run failed" >&2; exit 1; }
# A copy of the finished 2-epoch run to damage in one way: fresh_run NAME -> $work/NAME
fresh_run() { rm -rf "$work/$1" && cp -r "$work/two" "$work/$1" && rm -f "$work/$1/run.lock"; }

begin "--out '' is refused"
run "$exe" "${tiny[@]}" --epochs 1 --out ""
expect_status 2
expect_text "--out needs a value"

begin "the final message lists only files that exist"
run "$exe" "${tiny[@]}" --epochs 1 --out "$work/listed"
expect_status 0
listed=$(grep -o '^wrote .*' <<<"$out" | sed 's/^wrote [^:]*: //; s/ (epoch [0-9]*)//g; s/, /\n/g')
[ -n "$listed" ] || fail "no 'wrote' line"
for f in $listed; do [ -f "$work/listed/$f" ] || fail "lists $f, which does not exist"; done

begin "a second run on a folder in use fails at once, naming the folder"
"$exe" "${tiny[@]}" --epochs 1000 --out "$work/busy" > "$work/busy.log" 2>&1 &
first=$!
for _ in $(seq 1 600); do grep -q '^epoch' "$work/busy.log" 2>/dev/null && break; sleep 0.1; done
grep -q '^epoch' "$work/busy.log" || fail "the first run did not start training"
start=$(date +%s)
run "$exe" "${tiny[@]}" --epochs 1 --out "$work/busy"
expect_status 1
expect_text "$work/busy: another training run (process $first) is using this folder"
[ $(($(date +%s) - start)) -le 20 ] || fail "the second run took more than 20 s to give up"
kill -INT "$first" 2>/dev/null
wait "$first"
status=$?
[ "$status" -eq 130 ] || fail "the first run, interrupted, exited with $status (expected 130: it was disturbed?)"

begin "a stale lock (of a process that is gone) blocks nothing"
mkdir -p "$work/stale" && echo 999999999 > "$work/stale/run.lock"
run "$exe" "${tiny[@]}" --epochs 1 --out "$work/stale"
expect_status 0
[ -f "$work/stale/last.h5" ] || fail "no last.h5 written"

begin "--test-data is checked before training: a missing file"
run "$exe" "${tiny[@]}" --epochs 1 --out "$work/test_missing" --test-data "$work/missing.h5"
expect_status 1
expect_text "$work/missing.h5"
expect_no_text "epoch 1/1"
[ ! -f "$work/test_missing/last.h5" ] || fail "trained anyway (last.h5 written)"

begin "--test-data is checked before training: not a Galaxy10 file"
run "$exe" "${tiny[@]}" --epochs 1 --out "$work/test_wrong" --test-data "$work/two/last.h5"
expect_status 1
expect_text "no 'images' dataset"
expect_no_text "epoch 1/1"

begin "--resume --epochs 1 on a 2-epoch run is refused"
fresh_run fewer
run "$exe" --out "$work/fewer" --resume --epochs 1
expect_status 2
expect_text "--epochs 1 is fewer than the 2 epochs"

begin "a bad saved setting is an error naming the checkpoint, not a command-line error"
fresh_run bad_setting
"$tool" "$work/bad_setting/last.h5" set-meta run/epochs abc || fail "checkpoint_tool failed"
run "$exe" --out "$work/bad_setting" --resume
expect_status 1
expect_text "$work/bad_setting/last.h5: its saved setting run/epochs ('abc') is not valid"

begin "a checkpoint without galaxy10_train's settings is refused before anything is made"
fresh_run no_meta
"$tool" "$work/no_meta/last.h5" drop-meta run/ || fail "checkpoint_tool failed"
mkdir -p "$work/cwd" && cd "$work/cwd"
run "$exe" --out "$work/no_meta" --resume
cd "$work"
expect_status 1
expect_text "$work/no_meta/last.h5: holds no galaxy10_train settings"
expect_no_text "making the synthetic"
[ ! -e "$work/cwd/data" ] || fail "made the synthetic set anyway"

begin "an epoch count above 2^32 in a checkpoint is refused, not narrowed"
fresh_run huge_epoch
"$tool" "$work/huge_epoch/last.h5" set-epoch 4294967298 || fail "checkpoint_tool failed"
run "$exe" --out "$work/huge_epoch" --resume
expect_status 1
expect_text "$work/huge_epoch/last.h5: 'epoch' is 4294967298, outside 0..2147483647"

begin "a history epoch of 1e300 in a checkpoint is refused"
fresh_run huge_history
"$tool" "$work/huge_history/last.h5" set-history-epoch 1 1e300 || fail "checkpoint_tool failed"
run "$exe" --out "$work/huge_history" --resume
expect_status 1
expect_text "$work/huge_history/last.h5: training/history/epoch[1] is 1.0000000000000001e+300, not a whole number"

begin "a best epoch of NaN in a checkpoint is refused"
fresh_run nan_best
"$tool" "$work/nan_best/last.h5" set-value best_epoch nan || fail "checkpoint_tool failed"
run "$exe" --out "$work/nan_best" --resume --epochs 3
expect_status 1
expect_text "$work/nan_best/last.h5: training/best_epoch is nan, not a whole number"

begin "a loss that becomes NaN in epoch 1 stops the run; nothing is saved"
run "$exe" "${tiny[@]}" --epochs 3 --optimizer sgd --lr 100 --out "$work/diverge1"
expect_status 1
expect_text "in epoch 1, batch"   # the loss became NaN, or the weights stopped being finite
expect_text "training stopped"
expect_text "no epoch was finished, so no checkpoint was written"
[ ! -f "$work/diverge1/last.h5" ] || fail "last.h5 written"

begin "a loss that becomes NaN later stops the run; the last complete epoch's checkpoint is kept"
# The cosine warm-up raises the learning rate every step: epoch 1 (lr <= 2) trains, a later one diverges.
run "$exe" "${tiny[@]}" --epochs 30 --optimizer sgd --lr 100 --schedule cosine --warmup-epochs 50 --out "$work/diverge"
expect_status 1
# Which check stops it first (a loss that is not finite, or weights that are not) depends on the
# rounding of the products: either names the epoch.
expect_text "training stopped"
bad=$(grep -oE 'in epoch [0-9]+, batch' <<<"$out" | head -1 | grep -oE '[0-9]+')
if [ -z "$bad" ] || [ "$bad" -lt 2 ]; then
  fail "expected the run to diverge after epoch 1"
else
  kept=$((bad - 1))
  expect_text "the last good checkpoint, $work/diverge/last.h5 (epoch $kept), is kept"
  lines=$(wc -l < "$work/diverge/metrics.jsonl")
  [ "$lines" -eq "$kept" ] || fail "metrics.jsonl has $lines lines, expected $kept"
  # The kept checkpoint is the last good epoch's: a resume continues from it (and diverges again).
  run "$exe" --out "$work/diverge" --resume --quiet
  expect_text "resuming from $work/diverge/last.h5 after epoch $kept of 30"
fi

begin "cross-validation folds: --fold needs --folds, and must be one of them"
run "$exe" "${tiny[@]}" --epochs 1 --fold 1 --out "$work/fold_alone"
expect_status 2
expect_text "--fold needs --folds K"
run "$exe" "${tiny[@]}" --epochs 1 --folds 4 --fold 4 --out "$work/fold_out"
expect_status 2
expect_text "--fold 4 is outside 0 .. 3"

begin "each of 4 folds validates a quarter of the images (10 of 40)"
for f in 0 1 2 3; do
  run "$exe" --synthetic-file "$work/tiny.h5" --folds 4 --fold $f --max-train-images 4 --batch-size 8 --epochs 1 \
    --threads 1 --quiet --out "$work/fold$f"
  expect_status 0
  expect_text "validating on fold $f of 4"
  expect_text "split     4 training, 10 validation"
done

begin "--precision bf16 trains with bf16 convolutions and writes an ordinary checkpoint; d4 refuses it"
run "$exe" "${tiny[@]}" --epochs 1 --precision bf16 --out "$work/bf16"
expect_status 0
expect_text "precision bf16 convolutions"
[ -f "$work/bf16/last.h5" ] || fail "no last.h5 from the bf16 run"
run "$exe" "${tiny[@]}" --epochs 1 --precision bf16 --network d4 --out "$work/bf16_d4"
expect_status 2
expect_text "--precision bf16 applies to the paper and improved networks, not d4"
run "$exe" "${tiny[@]}" --epochs 1 --precision fp16 --out "$work/fp16"
expect_status 2

begin "survey augmentation on D4Net: views cut from a wider window, scored on the centre crop"
run "$exe" --synthetic-file "$work/tiny.h5" --val-split 0.25 --max-train-images 8 --batch-size 8 --threads 1 --quiet \
  --epochs 1 --recipe equivariant --out "$work/survey"
expect_status 0
expect_text "survey views cut from the centre 176x176 window; validation on the centre 128 crop"
expect_text "class weights 1.7,1,1,1,1,1,1,1.6,1,1"
expect_text "D4Net (D4-equivariant convolutions"
expect_text "validation: 10 images"
[ -f "$work/survey/filters.png" ] || fail "no filters.png for D4Net"
run "$exe" --synthetic-file "$work/tiny.h5" --val-split 0.25 --max-train-images 8 --batch-size 8 --threads 1 --quiet \
  --epochs 1 --recipe equivariant --survey-photometric 0.5 --out "$work/survey_half"
expect_status 0
expect_text "photometric effects on 50% of the views, the others geometry only"
run "$exe" "${tiny[@]}" --epochs 1 --class-weights 2,1,1 --out "$work/weights_short"
expect_status 2
expect_text "--class-weights needs one weight per Galaxy10 class (10), not 3"
run "$exe" "${tiny[@]}" --epochs 1 --class-weights 2,1,1,1,1,1,1,0,1,1 --out "$work/weights_zero"
expect_status 2
expect_text "--class-weights must be positive"
run "$exe" "${tiny[@]}" --epochs 1 --class-weights 2,1,1,1,1,1,1,1.5,1,1 --quiet --out "$work/weights_ok"
expect_status 0
run "$exe" "${tiny[@]}" --epochs 1 --survey-photometric 0.5 --out "$work/photometric_alone"
expect_status 2
expect_text "--survey-photometric applies to --augment survey only"
run "$exe" "${tiny[@]}" --epochs 1 --augment survey --crop 160 --out "$work/survey_crop"
expect_status 2
expect_text "--crop does not apply"
run "$exe" "${tiny[@]}" --epochs 1 --augment survey --source-crop 300 --out "$work/survey_big"
expect_status 1
expect_text "smaller than the 300 x 300 window survey augmentation cuts its views from"

finish
