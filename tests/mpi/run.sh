#!/usr/bin/env bash
# Data-parallel galaxy10_train under Open MPI (docs/distributed.md).
#   run.sh MPIRUN GALAXY10_TRAIN DATA_FILE WORK_DIR identity|kill|refuse
# identity: PaperNet trained a few steps on real data with --shards 4 in one process, then with
#           mpirun -np 2 and -np 4 (and -np 4 with overlapped sums): the final weights' digests
#           must be equal bit for bit, and no rank may read the whole data file.
# kill:     kill -9 one rank of an mpirun -np 2 run after its first checkpoint: every rank must end
#           within 60 s (no hang) with a message; --resume on 4 ranks must then finish with the
#           weights of the uninterrupted single-process run.
# refuse:   a rank started with another --seed is refused at start, naming the difference.
# Exit 77 (skipped) when DATA_FILE is absent.
set -u
mpirun=$1
exe=$2
data=$3
work=$4
mode=$5
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 25 "$f" >&2; done; exit 1; }
if [ ! -f "$data" ]; then echo "skipped: $data is absent (real Galaxy10 data)"; exit 77; fi

# CI runs as root; Open MPI refuses that unless told.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Shared memory and TCP only (no InfiniBand probing); more ranks than cores are fine here.
mpi=("$mpirun" --oversubscribe --mca btl self,vader,tcp)
rm -rf "$work" && mkdir -p "$work" || fail "cannot create $work"
# Small: 200 images read, 32 trained x 4 rotations per epoch, global batch 16 = 4 shards x 4.
args=(--data "$data" --limit 200 --max-train-images 32 --val-split 0.2 --batch-size 16 --shards 4
      --threads 1 --seed 5 --quiet)
digest() { grep -o 'fnv1a64:[0-9a-f]*' "$1" | head -n 1; }

case "$mode" in
identity)
  timeout 300 "$exe" "${args[@]}" --epochs 2 --out "$work/np1" > "$work/np1.log" 2>&1 || fail "1 process failed"
  want=$(digest "$work/np1.log")
  [ -n "$want" ] || fail "no weights digest from the single process"
  for n in 2 4; do
    timeout 300 "${mpi[@]}" -np "$n" "$exe" "${args[@]}" --epochs 2 --out "$work/np$n" > "$work/np$n.log" 2>&1 ||
      fail "mpirun -np $n failed"
    got=$(digest "$work/np$n.log")
    [ "$got" = "$want" ] || fail "mpirun -np $n: weights $got differ from one process's $want"
    read_rows=$(grep -o "rank 0 read [0-9]* of the images" "$work/np$n.log" | grep -o '[0-9]*' | head -n 2 | tail -n 1)
    [ -n "$read_rows" ] && [ "$read_rows" -lt 200 ] || fail "mpirun -np $n: rank 0 read '$read_rows' images, not a part of 200"
    [ -f "$work/np$n/last.h5" ] && [ -f "$work/np$n/metrics.jsonl" ] || fail "mpirun -np $n: rank 0 wrote no checkpoint"
  done
  # Overlapped sums (per layer, during the backward pass) add in the same tree: the same bits.
  HUBBLE_OVERLAP=1 timeout 300 "${mpi[@]}" -x HUBBLE_OVERLAP -np 4 "$exe" "${args[@]}" --epochs 2 --out "$work/overlap" \
    > "$work/overlap.log" 2>&1 || fail "mpirun -np 4 with HUBBLE_OVERLAP=1 failed"
  [ "$(digest "$work/overlap.log")" = "$want" ] || fail "HUBBLE_OVERLAP=1: weights $(digest "$work/overlap.log") differ from $want"
  # The sharded schedule is not the sequential one: it must give other weights (the test can fail).
  timeout 300 "$exe" "${args[@]}" --shards 0 --epochs 2 --out "$work/seq" > "$work/seq.log" 2>&1 || fail "sequential run failed"
  [ "$(digest "$work/seq.log")" != "$want" ] || fail "--shards 0 gave the sharded weights: is --shards ignored?"
  echo "ok: 1, 2 and 4 ranks give the same weights ($want)"
  ;;
kill)
  # 6 epochs: long enough that the kill lands mid-run on a fast machine too.
  timeout 300 "$exe" "${args[@]}" --epochs 6 --out "$work/full" > "$work/full.log" 2>&1 || fail "uninterrupted run failed"
  want=$(digest "$work/full.log")
  "${mpi[@]}" -np 2 "$exe" "${args[@]}" --epochs 6 --out "$work/part" > "$work/part.log" 2>&1 &
  launcher=$!
  for _ in $(seq 1 6000); do  # up to 60 s for the first checkpoint
    [ -f "$work/part/last.h5" ] && break
    kill -0 "$launcher" 2>/dev/null || break
    sleep 0.01
  done
  [ -f "$work/part/last.h5" ] || { kill -9 "$launcher" 2>/dev/null; fail "no checkpoint appeared"; }
  victim=""
  for pid in $(pgrep -P "$launcher"); do
    tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && victim=$pid
  done
  [ -n "$victim" ] || { kill -9 "$launcher"; fail "rank 1's process not found"; }
  kill -9 "$victim"
  start=$(date +%s)
  for _ in $(seq 1 600); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$launcher" 2>/dev/null; then kill -9 "$launcher"; fail "the job still runs 60 s after rank 1 was killed"; fi
  wait "$launcher"
  status=$?
  took=$(($(date +%s) - start))
  [ "$status" -ne 0 ] || fail "mpirun exited with 0 after a rank was killed"
  grep -Eq "ended by the MPI launcher|exited on signal 9|killed" "$work/part.log" || fail "no message says a rank died"
  # Resume on another number of ranks: 4 (the design allows any power of two up to --shards).
  timeout 300 "${mpi[@]}" -np 4 "$exe" --out "$work/part" --resume --quiet > "$work/resume.log" 2>&1 || fail "resume failed"
  grep -Eq "resuming from .* after epoch [1-5] of 6" "$work/resume.log" || fail "the resumed run did not continue mid-way"
  got=$(digest "$work/resume.log")
  [ "$got" = "$want" ] || fail "killed + resumed on 4 ranks: $got, uninterrupted on 1 process: $want"
  echo "ok: the job ended ${took} s after rank 1 was killed (status $status); resumed on 4 ranks to $want"
  ;;
refuse)
  timeout 120 "${mpi[@]}" -np 1 "$exe" "${args[@]}" --epochs 1 --out "$work/r" : -np 1 "$exe" "${args[@]}" --epochs 1 \
    --out "$work/r" --seed 6 > "$work/refuse.log" 2>&1
  status=$?
  [ "$status" -ne 124 ] || fail "a rank with another --seed made the job hang"
  [ "$status" -ne 0 ] || fail "a rank with another --seed was not refused"
  grep -q "seed: rank 0 has '5', rank 1 has '6'" "$work/refuse.log" || fail "the refusal does not name the difference"
  echo "ok: a rank with another seed was refused (status $status)"
  ;;
*) fail "unknown mode $mode" ;;
esac
