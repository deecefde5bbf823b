#!/usr/bin/env bash
# The Galaxy10 acceptance runs of docs/galaxy10.md: the paper's recipe in hubble and in PyTorch,
# and hubble's improved recipe, each for seeds 0-2, trained on all of galaxy10_real_train.h5 and
# scored once on galaxy10_real_holdout.h5. Each run uses one thread and two run side by side,
# so the whole set takes about 2-3 hours on 2 cores. Results: runs/acceptance/*/metrics.json and
# the table printed at the end.
# usage: scripts/acceptance.sh [DATA_DIR]   (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
train=$data/galaxy10_real_train.h5
holdout=$data/galaxy10_real_holdout.h5
out=runs/acceptance
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target galaxy10_train
mkdir -p "$out"
common=(--data "$train" --test-data "$holdout" --val-split 0 --threads 1 --quiet)
for seed in 0 1 2; do
  "$build/examples/galaxy10_train" "${common[@]}" --recipe paper --seed $seed --out "$out/hubble_paper_s$seed" \
    > "$out/hubble_paper_s$seed.log" 2>&1 &
  /usr/bin/python3 scripts/torch_galaxy10.py --data "$train" --test-data "$holdout" --val-split 0 --threads 1 \
    --seed $seed --out "$out/torch_paper_s$seed" > "$out/torch_paper_s$seed.log" 2>&1
  wait
  "$build/examples/galaxy10_train" "${common[@]}" --recipe improved --seed $seed --out "$out/hubble_improved_s$seed" \
    > "$out/hubble_improved_s$seed.log" 2>&1
done
runs() { local g=$1; echo "$out/${g}_s0,$out/${g}_s1,$out/${g}_s2"; }
/usr/bin/python3 scripts/summarize_runs.py "hubble paper=$(runs hubble_paper)" "torch paper=$(runs torch_paper)" \
  "hubble improved=$(runs hubble_improved)"
