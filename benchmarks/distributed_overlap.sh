#!/usr/bin/env bash
# What overlapping the gradient sums with the backward pass buys (HUBBLE_OVERLAP=1 against 0), and
# ranks x threads on one machine: PaperNet, 32 images per rank, --shards N, synthetic Galaxy10,
# img/s of the last two of 3 epochs, two rounds (docs/distributed.md). A benchmark, not a test:
# run it on a quiet machine with 16 cores or more.
#   benchmarks/distributed_overlap.sh BUILD_DIR WORK_DIR
set -u
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
E=$1/examples/galaxy10_train
W=$2
mkdir -p "$W"
"$E" --synthetic-file "$W/syn.h5" --synthetic-count 1100 --epochs 1 --max-train-images 8 --quiet --out "$W/mk" > /dev/null 2>&1
rates() { grep -a '^epoch' "$1" | tail -n 2 | grep -o '[0-9]* img/s' | tr '\n' ' '; }
run() {  # ranks threads cores overlap
  local n=$1 t=$2 cores=$3 ov=$4 d=$W/r$1_$2_$4
  rm -rf "$d"
  local A=(--synthetic-file "$W/syn.h5" --max-train-images 768 --batch-size $((32 * n)) --shards "$n" --augment none
           --epochs 3 --seed 1 --threads "$t" --quiet --out "$d")
  if [ "$n" = 1 ]; then taskset -c "$cores" "$E" "${A[@]}" > "$d.log" 2>&1
  else HUBBLE_OVERLAP=$ov taskset -c "$cores" mpirun --oversubscribe --bind-to none --mca btl self,vader -x HUBBLE_OVERLAP \
         -np "$n" "$E" "${A[@]}" > "$d.log" 2>&1; fi
  echo "ranks $n x threads $t (cores $cores) overlap $ov: $(rates "$d.log") | $(grep -a '^communication' "$d.log" |
    sed 's/communication  //') $(grep -ao 'fnv1a64:[0-9a-f]*' "$d.log" | head -n 1)"
}
for round in 1 2; do
  run 2 1 0,1 1; run 2 1 0,1 0
  run 4 4 0-15 1; run 4 4 0-15 0
  run 8 2 0-15 1; run 8 2 0-15 0
  run 16 1 0-15 1; run 16 1 0-15 0
done
