#!/usr/bin/env bash
# Training throughput of PaperNet on this machine: 1 process x 2 threads against 2 MPI ranks x
# 1 thread, same global batch and schedule (--shards 2), one run after the other; plus the
# sequential schedule (--shards 0) for reference. A benchmark, not a test: run it on a quiet
# machine (docs/distributed.md).
#   benchmarks/distributed_throughput.sh BUILD_DIR DATA_FILE [TRAIN_IMAGES] [EPOCHS]
set -eu
build=$1
data=$2
images=${3:-512}
epochs=${4:-2}
exe=$build/examples/galaxy10_train
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
args=(--data "$data" --max-train-images "$images" --val-split 0.2 --batch-size 32 --augment none --epochs "$epochs"
      --seed 1 --quiet)
# img/s of the last epoch (the first includes warm-up: page faults, MPI connections).
rate() { grep -a '^epoch' "$1" | tail -n 1 | grep -o '[0-9]* img/s'; }
digest() { grep -ao 'fnv1a64:[0-9a-f]*' "$1" | head -n 1; }

echo "uptime: $(uptime)"
"$exe" "${args[@]}" --shards 0 --threads 2 --out "$work/seq" > "$work/seq.log" 2>&1
"$exe" "${args[@]}" --shards 2 --threads 2 --out "$work/one" > "$work/one.log" 2>&1
mpirun --oversubscribe --bind-to none --mca btl self,vader -np 2 "$exe" "${args[@]}" --shards 2 --threads 1 \
  --out "$work/two" > "$work/two.log" 2>&1
printf '%-44s %12s  %s\n' "configuration" "throughput" "final weights"
printf '%-44s %12s  %s\n' "1 process x 2 threads, sequential (--shards 0)" "$(rate "$work/seq.log")" "$(digest "$work/seq.log")"
printf '%-44s %12s  %s\n' "1 process x 2 threads, --shards 2" "$(rate "$work/one.log")" "$(digest "$work/one.log")"
printf '%-44s %12s  %s\n' "2 ranks x 1 thread, --shards 2" "$(rate "$work/two.log")" "$(digest "$work/two.log")"
grep -a '^communication' "$work/two.log" || true
