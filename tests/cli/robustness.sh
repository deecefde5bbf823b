#!/usr/bin/env bash
# galaxy10_robustness end to end on a small synthetic set, and on bad input: each case checks the
# exit status and the output.
#   robustness.sh GALAXY10_ROBUSTNESS GALAXY10_TRAIN MAKE_SYNTHETIC_GALAXY10 WORK_DIR
set -u
exe=$1
train=$2
make_synthetic=$3
work=$4
source "$(dirname "$0")/lib.sh"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1

# 30 synthetic 256 x 256 galaxies, and a checkpoint of the improved recipe (8-view test-time
# averaging: run/tta = 1) trained 8 epochs on all of them (a few seconds; it learns most of them, so
# its predictions are not one constant class), which reports its accuracy on them.
"$make_synthetic" --out "$work/syn.h5" --count 30 --seed 4 > "$work/make.log" 2>&1 ||
  { cat "$work/make.log"; echo "FAIL: could not make the synthetic set" >&2; exit 1; }
"$train" --data "$work/syn.h5" --recipe improved --val-split 0 --epochs 8 --batch-size 4 --threads 1 --quiet \
  --out "$work/run" > "$work/train.log" 2>&1 ||
  { cat "$work/train.log"; echo "FAIL: could not train the test checkpoint" >&2; exit 1; }
model="$work/run/last.h5"
shifts="clean blur1 blur2 noise bright1.25 bright0.75 redder bluer scale0.8 scale1.2 jpeg40"

begin "--list-shifts prints every fixed shift with its setting"
run "$exe" --list-shifts
expect_status 0
for s in $shifts; do expect_text "  $s "; done
expect_text "Gaussian blur sigma 2 px"
expect_text "Gaussian noise sigma 0.03"
expect_text "band gains R x1.15, G x1, B x0.85"
expect_text "JPEG quality 40"

begin "one table row per model, a column per shift, mean and worst; JSON with every score"
run "$exe" --data "$work/syn.h5" --model "$model" --model "$model" --label tta --label single --views 8 \
  --limit 16 --json "$work/rob.json" --threads 1
expect_status 0
expect_text "16 images 256x256"
expect_text "tta: $model, centre 128x128, 8 views (--views)"
header=$(grep '^model ' <<<"$out")
[ "$(wc -w <<<"$header")" -eq 14 ] || fail "the header should hold model, 11 shifts, mean, worst: '$header'"
for s in $shifts mean worst; do grep -qw -- "$s" <<<"$header" || fail "the header lacks $s"; done
# Rows: a label, 11 accuracies, the mean, the worst and its shift's name in brackets.
row=$(grep '^tta ' <<<"$out")
grep -qE '^tta( +[0-9]+\.[0-9]){13} \((blur1|blur2|noise|bright1\.25|bright0\.75|redder|bluer|scale0\.8|scale1\.2|jpeg40)\)$' <<<"$row" ||
  fail "row 'tta' is not 13 percentages and the worst shift: '$row'"
[ "$(grep -c '^single ' <<<"$out")" -eq 1 ] || fail "no row 'single'"
expect_text "wrote $work/rob.json"
json=$(cat "$work/rob.json" 2>/dev/null)
for key in '"benchmark": ' '"macro_f1": ' '"mean_accuracy": ' '"worst_shift": ' '"clean_per_class_recall": [{"class": 0' \
  '"views": 8' '"images": 16' '"settings": "JPEG quality 40"'; do
  grep -qF -- "$key" <<<"$json" || fail "rob.json lacks $key"
done
[ "$(grep -o '"recall": ' <<<"$json" | wc -l)" -eq 20 ] || fail "rob.json should hold 10 per-class recalls per model"
[ "$(grep -o '"accuracy": ' <<<"$json" | wc -l)" -eq 22 ] || fail "rob.json should hold 11 accuracies per model"
if command -v python3 > /dev/null; then
  python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$work/rob.json" || fail "rob.json is not valid JSON"
fi

begin "clean accuracy with the checkpoint's own views equals what galaxy10_train reported on the same images"
run "$exe" --data "$work/syn.h5" --model "$model" --json "$work/own.json" --threads 1
expect_status 0
expect_text "8 views (checkpoint run/tta = 1)"
reported=$(grep -o '"train": {"accuracy": [0-9.e-]*' "$work/run/metrics.json" | sed 's/.*: //')
scored=$(grep -o '"clean": {"accuracy": [0-9.e-]*' "$work/own.json" | sed 's/.*: //')
[ -n "$reported" ] && [ "$reported" = "$scored" ] ||
  fail "clean accuracy $scored, but galaxy10_train reported $reported on the same 30 images"
# Meaningful only for a model that tells classes apart (a constant class scores 0.1 here).
awk -v a="$scored" 'BEGIN { exit !(a >= 0.3) }' || fail "the test checkpoint scores only $scored: it learned nothing"
# The table shows the same figure in percent.
pct=$(awk -v a="$scored" 'BEGIN { printf "%.1f", 100 * a }')
grep -qE "^run/last +$pct " <<<"$out" || fail "the table's clean column should read $pct"

begin "--views 1 overrides the checkpoint; the same command gives the same JSON twice"
run "$exe" --data "$work/syn.h5" --model "$model" --views 1 --limit 12 --json "$work/a.json" --threads 1
expect_status 0
expect_text "1 view (--views)"
expect_text "12 images"
run "$exe" --data "$work/syn.h5" --model "$model" --views 1 --limit 12 --json "$work/b.json" --threads 1
cmp -s "$work/a.json" "$work/b.json" || fail "two runs of the same command wrote different JSON"

begin "a missing data file is named; an existing --json file is left as it was"
cp "$work/a.json" "$work/keep.json"
run "$exe" --data "$work/missing.h5" --model "$model" --json "$work/keep.json"
expect_status 1
expect_text "galaxy10_robustness: error: $work/missing.h5"
cmp -s "$work/a.json" "$work/keep.json" || fail "a failed run changed the existing JSON file"

begin "a missing checkpoint is named"
run "$exe" --data "$work/syn.h5" --model "$work/nothing.h5"
expect_status 1
expect_text "$work/nothing.h5"

begin "a file that is not Galaxy10 (a checkpoint) as --data is named, with what is wrong"
run "$exe" --data "$model" --model "$model"
expect_status 1
expect_text "$model: "
expect_text "Galaxy10"

begin "a text file as --data is named"
echo "not hdf5" > "$work/text.h5"
run "$exe" --data "$work/text.h5" --model "$model"
expect_status 1
expect_text "$work/text.h5"

for args in "--views 3" "--label x --label y" "--bogus" "--threads 0" "--limit -2"; do
  begin "bad command line: $args"
  # shellcheck disable=SC2086  # $args is several words on purpose
  run "$exe" --data "$work/syn.h5" --model "$model" $args
  expect_status 2
  expect_text "usage: galaxy10_robustness"
done

begin "no --model is a usage error"
run "$exe" --data "$work/syn.h5"
expect_status 2
expect_text "needs at least one --model"

begin "cross-validation options: all three together, and the fold one of the folds"
run "$exe" --data "$work/syn.h5" --model "$model" --fold 1
expect_status 2
expect_text "--folds, --fold and --split-seed go together"
run "$exe" --data "$work/syn.h5" --model "$model" --folds 4 --fold 4 --split-seed 0
expect_status 2
expect_text "--fold 4 is outside 0 .. 3"

finish
