#!/bin/bash
# Trains the runs of the preliminary measurement: A^2B (lr 2e-3, the study's choice at S's small budgets) and
# stochastic A^3B + round adapters (p_skip 0.5, lr 4e-3) at BUDGET (default 1.1e12) for the given seeds;
# LAYOUT=a2b or sto3 trains one layout only (two of these scripts can run side by side). One thread, nice.
set -e
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
BUDGET=${BUDGET:-1.1e12}
for seed in ${SEEDS:-0 1 2}; do
  for spec in "a2b|A^2B|2e-3|" "sto3|A^3B|4e-3|model.p_skip=0.5 model.adapters=\"round\""; do
    IFS='|' read -r tag sig lr extra <<< "$spec"
    [ -n "$LAYOUT" ] && [ "$LAYOUT" != "$tag" ] && continue
    name="$tag-$BUDGET-s$seed"
    [ -f "runs/adaptive/$name/summary.json" ] && continue
    sets=(--set "model.signature=\"$sig\"" --set "optim.lr=$lr" --set "seed=$seed" --set "budget.flops=$BUDGET"
          --set "name=\"$name\"")
    for e in $extra; do sets+=(--set "$e"); done
    nice -n 10 env OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 $PY -m rins.cli train --config results/adaptive/adaptive-S.toml \
      "${sets[@]}"
    ONLY="$name" results/adaptive/eval.sh  # score it while the other lane trains
  done
done
