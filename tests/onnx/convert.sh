#!/usr/bin/env bash
# hubble_convert, hubble_onnx_type and galaxy10_classify with .onnx models, end to end:
# --describe prints the exact architecture strings; a PaperNet checkpoint -> ONNX -> checkpoint
# classifies a picture with the same probabilities all three ways; the generator prints PaperNet's
# type; bad input is an error naming the file, and a failed conversion writes nothing.
# Usage: convert.sh HUBBLE_CONVERT HUBBLE_ONNX_TYPE GALAXY10_CLASSIFY GALAXY10_TRAIN WORK_DIR
set -u
convert=$1 gen=$2 classify=$3 train=$4 work=$5
source "$(dirname "$0")/../cli/lib.sh"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1

"$train" --synthetic-file "$work/tiny.h5" --synthetic-count 10 --val-split 0 --max-train-images 4 --epochs 1 \
  --batch-size 4 --threads 1 --quiet --out "$work/run" > "$work/train.log" 2>&1 ||
  { cat "$work/train.log"; echo "FAIL: could not train the test checkpoint" >&2; exit 1; }
{ printf 'P6\n4 4\n255\n'; head -c 48 /dev/urandom; } > "$work/galaxy.ppm"

begin "--describe prints the built-in architecture strings"
run "$convert" --describe
expect_status 0
expect_text "PaperNet: Input<128,128,3> Conv2D<32,5,2,valid> ReLU MaxPool<2,2>"
expect_text "Flatten Dropout<0.100000> Dense<256> ReLU Dropout<0.250000> Dense<10> Softmax"
expect_text "ImprovedNet: Input<128,128,3> Conv2D<32,5,2,valid> BatchNorm ReLU"

begin "a D4Net checkpoint is refused with what is missing (no ONNX form for D4 layers), and nothing is written"
"$train" --synthetic-file "$work/tiny.h5" --val-split 0 --max-train-images 4 --epochs 1 --batch-size 4 --threads 1 \
  --quiet --recipe equivariant --out "$work/d4run" > "$work/d4train.log" 2>&1 || fail "could not train the D4Net checkpoint"
run "$convert" "$work/d4run/last.h5" "$work/d4.onnx"
expect_status 1
expect_text "its network has D4-equivariant layers (D4Net), which have no ONNX export yet"
[ ! -e "$work/d4.onnx" ] || fail "d4.onnx was written"

begin "checkpoint -> ONNX"
run "$convert" "$work/run/best.h5" "$work/paper.onnx"
expect_status 0
expect_text "(PaperNet, opset 13, checked)"

begin "--describe of the .onnx file is the checkpoint's architecture"
run "$convert" --describe "$work/paper.onnx"
expect_status 0
expect_text "Input<128,128,3> Conv2D<32,5,2,valid> ReLU MaxPool<2,2> Conv2D<64,3,1,valid>"

begin "ONNX -> checkpoint"
run "$convert" "$work/paper.onnx" "$work/back.h5"
expect_status 0
expect_text "(PaperNet)"

begin "hubble_onnx_type prints PaperNet's type"
run "$gen" "$work/paper.onnx"
expect_status 0
expect_text "using Net = hubble::Sequential<hubble::Input<128, 128, 3>,"
expect_text "hubble::Conv2D<32, 5, 2>,"
expect_text "hubble::Dropout<0.25>,"

begin "galaxy10_classify gives the same probabilities from the checkpoint, the .onnx and the converted-back checkpoint"
for m in run/best.h5 paper.onnx back.h5; do
  "$classify" "$work/$m" "$work/galaxy.ppm" --csv "$work/$(basename "$m").csv" > /dev/null 2>&1 || { echo "FAIL: classify with $m"; exit 1; }
done
run cmp "$work/best.h5.csv" "$work/paper.onnx.csv"
expect_status 0
run cmp "$work/best.h5.csv" "$work/back.h5.csv"
expect_status 0

begin "a file that is not ONNX is an error naming it, and nothing is written"
echo "not onnx" > "$work/junk.onnx"
run "$convert" "$work/junk.onnx" "$work/out.h5"
expect_status 1
expect_text "junk.onnx: not an ONNX model"
[[ ! -e "$work/out.h5" ]] || { echo "FAIL: a failed conversion wrote out.h5"; exit 1; }
run "$gen" "$work/junk.onnx"
expect_status 1
expect_text "junk.onnx: not an ONNX model"

begin "a checkpoint of no built-in network is refused with the list of built-in ones"
run "$convert" "$work/tiny.h5" "$work/x.onnx"
expect_status 1
expect_text "tiny.h5"
finish
