#!/usr/bin/env bash
# Training throughput of PaperNet on two cores: 1 process x 2 threads against 2 MPI ranks x
# 1 thread, same global batch 32 and schedule (--shards 2), plus the sequential schedule
# (--shards 0) for reference, in alternating rounds. A benchmark, not a test: run it on a quiet
# machine (docs/distributed.md).
#   benchmarks/distributed_throughput.sh BUILD_DIR DATA_FILE|synthetic [ROUNDS] [CORES]
# CORES: the two cores to pin to (taskset list, default 0,1). Prints the img/s of the last two of
# 3 epochs of 512 training images (the first includes warm-up).
set -eu
build=$1
data=$2
rounds=${3:-3}
cores=${4:-0,1}
exe=$build/examples/galaxy10_train
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ "$data" = synthetic ]; then
  source=(--synthetic-file "$work/syn.h5" --synthetic-count 700)
  "$exe" "${source[@]}" --epochs 1 --max-train-images 8 --quiet --out "$work/make" > /dev/null 2>&1
else
  source=(--data "$data")
fi
args=("${source[@]}" --max-train-images 512 --batch-size 32 --augment none --epochs 3 --seed 1 --quiet)
rates() { grep -a '^epoch' "$1" | tail -n 2 | grep -o '[0-9]* img/s' | tr '\n' ' '; }
echo "uptime: $(uptime)"
for i in $(seq 1 "$rounds"); do
  rm -rf "$work/a" "$work/b" "$work/c"
  taskset -c "$cores" "$exe" "${args[@]}" --shards 0 --threads 2 --out "$work/a" > "$work/a.log" 2>&1
  taskset -c "$cores" "$exe" "${args[@]}" --shards 2 --threads 2 --out "$work/b" > "$work/b.log" 2>&1
  taskset -c "$cores" mpirun --oversubscribe --bind-to none --mca btl self,vader -np 2 "$exe" "${args[@]}" --shards 2 \
    --threads 1 --out "$work/c" > "$work/c.log" 2>&1
  echo "round $i: 1x2 sequential: $(rates "$work/a.log")| 1x2 --shards 2: $(rates "$work/b.log")| 2x1 --shards 2: $(rates "$work/c.log")"
  grep -a '^communication' "$work/c.log" || true
done
