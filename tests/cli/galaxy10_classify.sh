#!/usr/bin/env bash
# galaxy10_classify on bad input: each case checks the exit status and the message.
#   galaxy10_classify.sh GALAXY10_CLASSIFY GALAXY10_TRAIN WORK_DIR
set -u
exe=$1
train=$2
work=$3
source "$(dirname "$0")/lib.sh"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1

# A checkpoint (1 epoch on a tiny synthetic set) and a 4 x 4 picture (binary PPM).
"$train" --synthetic-file "$work/tiny.h5" --synthetic-count 10 --val-split 0 --max-train-images 4 --epochs 1 \
  --batch-size 4 --threads 1 --quiet --out "$work/run" > "$work/train.log" 2>&1 ||
  { cat "$work/train.log"; echo "FAIL: could not train the test checkpoint" >&2; exit 1; }
model="$work/run/best.h5"
{ printf 'P6\n4 4\n255\n'; head -c 48 /dev/urandom; } > "$work/galaxy.ppm"

for top in nan 1e300 2.5 0 -1 '' 3x 99999999999999999999; do
  begin "--top '$top' is a usage error"
  run "$exe" "$model" "$work/galaxy.ppm" --top "$top"
  expect_status 2
  expect_text "--top"
done

begin "--top 2 prints 2 classes"
run "$exe" "$model" "$work/galaxy.ppm" --top 2
expect_status 0
expect_text "  2. "
expect_no_text "  3. "

begin "a symbolic link loop, a FIFO and a missing file are skipped; the good picture is classified"
ln -sf loop_b.png "$work/loop_a.png" && ln -sf loop_a.png "$work/loop_b.png"
rm -f "$work/fifo.png" && mkfifo "$work/fifo.png"
run "$exe" "$model" "$work/loop_a.png" "$work/fifo.png" "$work/missing.png" "$work/galaxy.ppm" --csv "$work/out.csv"
expect_status 3
expect_text "skipping $work/loop_a.png: "
expect_text "skipping $work/fifo.png: "
expect_text "a FIFO"
expect_text "skipping $work/missing.png: "
expect_text "$work/galaxy.ppm  (4x4"
expect_text "1 picture classified, 3 skipped"
[ "$(wc -l < "$work/out.csv")" -eq 2 ] || fail "out.csv should hold a header and 1 row"

begin "a folder holding a link loop and a FIFO among pictures"
mkdir -p "$work/folder" && cp "$work/galaxy.ppm" "$work/folder/a.ppm"
ln -sf loop2.png "$work/folder/loop1.png" && ln -sf loop1.png "$work/folder/loop2.png"
mkfifo "$work/folder/pipe.png"
run "$exe" "$model" "$work/folder"
expect_status 3
expect_text "$work/folder/a.ppm  (4x4"
expect_text "skipping $work/folder/loop1.png"
expect_text "skipping $work/folder/pipe.png"

begin "no picture classified: exit 1"
run "$exe" "$model" "$work/missing.png" "$work/fifo.png"
expect_status 1
expect_text "0 pictures classified, 2 skipped"

begin "every picture classified: exit 0"
run "$exe" "$model" "$work/galaxy.ppm" "$work/folder/a.ppm"
expect_status 0

begin "--help says which exit status means a skipped picture"
run "$exe" --help
expect_status 0
expect_text "3 some pictures were classified and some skipped"

finish
