#!/usr/bin/env bash
# The Galaxy10 acceptance runs of docs/galaxy10.md: the paper's recipe in hubble and in PyTorch,
# hubble's improved and equivariant recipes, each for seeds 0-2, trained on all of
# galaxy10_real_train.h5 and scored once on galaxy10_real_holdout.h5; then every hubble run once
# on the robustness benchmark (the holdout under the fixed shifts of data/robustness.hpp). Each
# run uses one thread and two run side by side, so the whole set takes about 3-4 hours on 2
# cores. Results: runs/acceptance/*/metrics.json, */robustness.json and the tables printed at the
# end.
# usage: scripts/acceptance.sh [--skip-torch] [DATA_DIR]   (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
torch=1
if [[ ${1:-} == --skip-torch ]]; then torch=0; shift; fi
data=${1:-../shared/data}
train=$data/galaxy10_real_train.h5
holdout=$data/galaxy10_real_holdout.h5
out=runs/acceptance
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target galaxy10_train galaxy10_robustness
mkdir -p "$out"
common=(--data "$train" --test-data "$holdout" --val-split 0 --threads 1 --quiet)
for seed in 0 1 2; do
  "$build/examples/galaxy10_train" "${common[@]}" --recipe paper --seed $seed --out "$out/hubble_paper_s$seed" \
    > "$out/hubble_paper_s$seed.log" 2>&1 &
  if [[ $torch == 1 ]]; then
    /usr/bin/python3 scripts/torch_galaxy10.py --data "$train" --test-data "$holdout" --val-split 0 --threads 1 \
      --seed $seed --out "$out/torch_paper_s$seed" > "$out/torch_paper_s$seed.log" 2>&1
  fi
  "$build/examples/galaxy10_train" "${common[@]}" --recipe improved --seed $seed --out "$out/hubble_improved_s$seed" \
    > "$out/hubble_improved_s$seed.log" 2>&1
  wait
  "$build/examples/galaxy10_train" "${common[@]}" --recipe equivariant --seed $seed \
    --out "$out/hubble_equivariant_s$seed" > "$out/hubble_equivariant_s$seed.log" 2>&1
done
# The robustness benchmark: each final run scored once on the shifted holdouts, with the views
# its recipe evaluates with (8 for improved, 1 for paper and equivariant).
for group in hubble_paper hubble_improved hubble_equivariant; do
  for seed in 0 1 2; do
    "$build/examples/galaxy10_robustness" --data "$holdout" --model "$out/${group}_s$seed/last.h5" \
      --label "${group}_s$seed" --threads 2 --json "$out/${group}_s$seed/robustness.json" > "$out/${group}_s$seed.robustness.log" 2>&1
  done
done
runs() { local g=$1 f=${2:-}; echo "$out/${g}_s0$f,$out/${g}_s1$f,$out/${g}_s2$f"; }
torch_group=()
[[ $torch == 1 ]] && torch_group=("torch paper=$(runs torch_paper)")
/usr/bin/python3 scripts/summarize_runs.py "hubble paper=$(runs hubble_paper)" "${torch_group[@]}" \
  "hubble improved=$(runs hubble_improved)" "hubble equivariant=$(runs hubble_equivariant)"
/usr/bin/python3 scripts/summarize_robustness.py "paper=$(runs hubble_paper /robustness.json)" \
  "improved=$(runs hubble_improved /robustness.json)" "equivariant=$(runs hubble_equivariant /robustness.json)"
