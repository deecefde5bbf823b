#!/usr/bin/env bash
# galaxy10_quantize end to end on a small synthetic set (a trained ImprovedNet: BatchNorm folded,
# int8 beside fp32, with --data and with --folds, JSON; a PaperNet for the int8 Dense), and its
# refusals.
#   quantize.sh GALAXY10_QUANTIZE GALAXY10_TRAIN MAKE_SYNTHETIC_GALAXY10 WORK_DIR
set -u
exe=$1
train=$2
make_synthetic=$3
work=$4
source "$(dirname "$0")/lib.sh"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1

"$make_synthetic" --out "$work/syn.h5" --count 40 --seed 5 > "$work/make.log" 2>&1 ||
  { cat "$work/make.log"; echo "FAIL: could not make the synthetic set" >&2; exit 1; }
"$train" --data "$work/syn.h5" --recipe improved --val-split 0 --epochs 6 --batch-size 4 --threads 1 --quiet \
  --out "$work/run" > "$work/train.log" 2>&1 ||
  { cat "$work/train.log"; echo "FAIL: could not train the test checkpoint" >&2; exit 1; }
model="$work/run/last.h5"

begin "every calibration method scored beside fp32 on --data, with a JSON record"
run "$exe" --model "$model" --calibration "$work/syn.h5" --calibration-images 16 --data "$work/syn.h5" --threads 1 \
  --json "$work/q.json"
expect_status 0
expect_text "Conv2D<32,5,2,valid> BatchNorm ReLU"
expect_text "calibration  16 images of $work/syn.h5"
expect_text "scored on    40 images"
for m in minmax percentile entropy; do expect_text "int8 $m"; done
grep -q '"method": "entropy"' "$work/q.json" || fail "q.json lacks the entropy row"
grep -q '"agreement": ' "$work/q.json" || fail "q.json lacks the agreement"
# Most images keep their class: the agreement column reads at least 80% for every method.
for m in minmax percentile entropy; do
  pct=$(grep "int8 $m" <<<"$out" | awk '{print $5}' | tr -d '%')
  awk -v p="$pct" 'BEGIN { exit !(p >= 80) }' || fail "int8 $m agrees with fp32 on only $pct% of the images"
done

begin "--out saves the int8 model (entropy calibration by default), which loads back"
run "$exe" --model "$model" --calibration "$work/syn.h5" --calibration-images 16 --data "$work/syn.h5" --threads 1 \
  --out "$work/model.int8.h5"
expect_status 0
expect_text "saved        $work/model.int8.h5 (int8, entropy calibration)"
[ -s "$work/model.int8.h5" ] || fail "no int8 model file"

begin "cross-validation: calibrate on the training folds, score the validation fold"
run "$exe" --model "$model" --calibration "$work/syn.h5" --folds 4 --fold 1 --split-seed 3 --method percentile --threads 1
expect_status 0
expect_text "(training folds of 4)"
expect_text "scored on    10 images of fold 1"
expect_no_text "int8 minmax"

begin "each int8 path this CPU has can be named; a path it lacks, or an unknown one, is refused"
run "$exe" --model "$model" --calibration "$work/syn.h5" --data "$work/syn.h5" --method minmax --path generic --threads 1
expect_status 0
expect_text "int8 path generic"
run "$exe" --model "$model" --calibration "$work/syn.h5" --data "$work/syn.h5" --path avx1024
expect_status 1
expect_text "avx1024"

begin "--head: ImprovedNet's GlobalAvgPool head stays fp32; PaperNet's first Dense runs in int8 unless --head fp32"
run "$exe" --model "$model" --calibration "$work/syn.h5" --data "$work/syn.h5" --method minmax --threads 1
expect_status 0
expect_text "head         fp32 (no Dense right after Flatten to run in int8)"
"$train" --data "$work/syn.h5" --recipe paper --val-split 0 --epochs 2 --batch-size 4 --threads 1 --quiet \
  --out "$work/paper" > "$work/train_paper.log" 2>&1 ||
  { cat "$work/train_paper.log"; fail "could not train the PaperNet checkpoint"; }
run "$exe" --model "$work/paper/last.h5" --calibration "$work/syn.h5" --data "$work/syn.h5" --method minmax \
  --threads 1 --json "$work/paper.json" --out "$work/paper.int8.h5"
expect_status 0
expect_text "head         dense_1 in int8, the rest in fp32"
grep -q '"head": "int8"' "$work/paper.json" || fail "paper.json does not say the head is int8"
[ -s "$work/paper.int8.h5" ] || fail "no int8 PaperNet model file"
run "$exe" --model "$work/paper/last.h5" --calibration "$work/syn.h5" --data "$work/syn.h5" --method minmax \
  --threads 1 --head fp32 --json "$work/paper_fp32.json"
expect_status 0
expect_text "head         fp32 (--head fp32)"
grep -q '"head": "fp32"' "$work/paper_fp32.json" || fail "paper_fp32.json does not say the head is fp32"

begin "usage errors: no model, both or neither of --data and --folds, a bad method or head"
run "$exe" --calibration "$work/syn.h5" --data "$work/syn.h5"
expect_status 2
expect_text "--model is required"
run "$exe" --model "$model" --calibration "$work/syn.h5"
expect_status 2
expect_text "(one of the two)"
run "$exe" --model "$model" --calibration "$work/syn.h5" --data "$work/syn.h5" --method kl
expect_status 2
expect_text "--method must be all, minmax, percentile or entropy"
run "$exe" --model "$model" --calibration "$work/syn.h5" --data "$work/syn.h5" --head int4
expect_status 2
expect_text "--head must be int8 or fp32, not 'int4'"

begin "a file that is not a checkpoint is named in the error"
printf 'not hdf5' > "$work/bad.h5"
run "$exe" --model "$work/bad.h5" --calibration "$work/syn.h5" --data "$work/syn.h5"
expect_status 1
expect_text "$work/bad.h5"

finish
