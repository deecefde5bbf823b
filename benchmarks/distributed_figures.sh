#!/usr/bin/env bash
# Every figure of docs/distributed.md in one run (a benchmark, not a test; run it on a quiet machine).
#   benchmarks/distributed_figures.sh BUILD_DIR WORK_DIR [DATA_FILE]
# Without DATA_FILE it trains on a synthetic Galaxy10 set made in WORK_DIR (same image size, so the
# same speed). Prints: the bit-identity table (1/2/4/8 ranks), 1 process x 2 threads against
# 2 ranks x 1 thread on two cores, the compute time per step of batch 32, and the cost of one sum
# of PaperNet's gradients over shared memory and TCP for 2..16 ranks.
set -u
build=$1
work=$2
data=${3:-}
exe=$build/examples/galaxy10_train
bench=$build/benchmarks/mpi_allreduce
mkdir -p "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cores=$(nproc)
mpi=(mpirun --oversubscribe --mca btl self,vader)
if [ -n "$data" ]; then source=(--data "$data"); else source=(--synthetic-file "$work/syn.h5" --synthetic-count 700); fi
rate() { grep -a '^epoch' "$1" | tail -n 1 | grep -o '[0-9]* img/s'; }
digest() { grep -ao 'fnv1a64:[0-9a-f]*' "$1" | head -n 1; }
echo "machine: $cores cores; $(uptime)"
# Two cores that are not hyperthreads of one another (cpu0 and the first cpu outside its siblings).
siblings=$(cat /sys/devices/system/cpu/cpu0/topology/thread_siblings_list 2>/dev/null || echo 0)
second=1
for c in $(seq 1 $((cores - 1))); do
  case ",$siblings," in *",$c,"*) continue ;; esac
  case "$siblings" in *-*) lo=${siblings%-*}; hi=${siblings#*-}; [ "$c" -ge "$lo" ] && [ "$c" -le "$hi" ] && continue ;; esac
  second=$c; break
done
pair="0,$second"
echo "cpu0's hyperthread siblings: $siblings; the two-core runs use cores $pair"
[ -n "$data" ] || "$exe" "${source[@]}" --epochs 1 --max-train-images 8 --quiet --out "$work/make" > /dev/null 2>&1

echo; echo "== bit identity: PaperNet, --shards 8, global batch 32, 2 epochs of 64 images x 4 rotations (rot4), --threads 1"
args=("${source[@]}" --max-train-images 64 --batch-size 32 --shards 8 --epochs 2 --threads 1 --seed 7 --quiet)
for n in 1 2 4 8; do
  rm -rf "$work/id$n"
  if [ "$n" = 1 ]; then "$exe" "${args[@]}" --out "$work/id$n" > "$work/id$n.log" 2>&1
  else "${mpi[@]}" -np "$n" "$exe" "${args[@]}" --out "$work/id$n" > "$work/id$n.log" 2>&1; fi
  printf '  %d rank(s): %s\n' "$n" "$(digest "$work/id$n.log")"
done
for t in 2 4; do
  rm -rf "$work/idt$t"
  "$exe" "${args[@]}" --threads "$t" --out "$work/idt$t" > "$work/idt$t.log" 2>&1
  printf '  1 rank, %d threads: %s\n' "$t" "$(digest "$work/idt$t.log")"
done
echo "   the same with --shards 2 (micro-batches of 16) on 1, 2 ranks and 1, 2, 4 threads:"
for run in "1 1" "1 2" "1 4" "2 1" "2 2"; do
  set -- $run
  rm -rf "$work/m$1$2"
  if [ "$1" = 1 ]; then "$exe" "${args[@]}" --shards 2 --threads "$2" --out "$work/m$1$2" > "$work/m$1$2.log" 2>&1
  else "${mpi[@]}" -np "$1" "$exe" "${args[@]}" --shards 2 --threads "$2" --out "$work/m$1$2" > "$work/m$1$2.log" 2>&1; fi
  printf '  %d rank(s) x %d thread(s): %s\n' "$1" "$2" "$(digest "$work/m$1$2.log")"
done

echo; echo "== throughput on 2 cores (taskset -c $pair): global batch 32, --shards 2, 512 training images, no augmentation"
args=("${source[@]}" --max-train-images 512 --batch-size 32 --augment none --epochs 2 --seed 1 --quiet)
rm -rf "$work/seq" "$work/one" "$work/two"
taskset -c "$pair" "$exe" "${args[@]}" --shards 0 --threads 2 --out "$work/seq" > "$work/seq.log" 2>&1
taskset -c "$pair" "$exe" "${args[@]}" --shards 2 --threads 2 --out "$work/one" > "$work/one.log" 2>&1
taskset -c "$pair" "${mpi[@]}" --bind-to none -np 2 "$exe" "${args[@]}" --shards 2 --threads 1 --out "$work/two" > "$work/two.log" 2>&1
printf '  %-46s %10s  %s\n' "1 process x 2 threads, sequential (--shards 0)" "$(rate "$work/seq.log")" "$(digest "$work/seq.log")"
printf '  %-46s %10s  %s\n' "1 process x 2 threads, --shards 2" "$(rate "$work/one.log")" "$(digest "$work/one.log")"
printf '  %-46s %10s  %s\n' "2 ranks x 1 thread, --shards 2" "$(rate "$work/two.log")" "$(digest "$work/two.log")"
grep -a '^communication' "$work/two.log" | sed 's/^/  /'

echo; echo "== compute per step of batch 32 (one process, --shards 0): img/s -> ms per step"
for t in 1 2 4 8 16; do
  [ "$t" -le "$cores" ] || continue
  rm -rf "$work/c$t"
  "$exe" "${args[@]}" --shards 0 --threads "$t" --out "$work/c$t" > "$work/c$t.log" 2>&1
  r=$(rate "$work/c$t.log" | grep -o '[0-9]*')
  printf '  %2d threads: %5s img/s = %6.1f ms per step of 32\n' "$t" "$r" "$(awk -v r="$r" 'BEGIN { print 32000 / r }')"
done

echo; echo "== one sum of PaperNet's gradients (2.62 MB)"
for btl in self,vader self,tcp; do
  for n in 2 4 8 16; do
    [ "$n" -le "$cores" ] || continue
    echo "  -- btl $btl, $n ranks"
    mpirun --oversubscribe --bind-to core --mca btl "$btl" -np "$n" "$bench" 100 2>&1 | grep -a 'ms\|us' | sed 's/^/  /'
  done
done
