#!/bin/bash
# Scores every finished run of the preliminary measurement at fixed r = 1, 2, 3 and with the exit rules below,
# in domain (the run's held-out documents) and out of domain (the Linux kernel docs, never trained on):
# results/adaptive/evals/NAME-{in,ood}.json. Runs: the arguments (run directories), default runs/adaptive/*/.
# Then: rins report runs/adaptive --adaptive-evals results/adaptive/evals/*.json
set -e
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
BATCHES=${BATCHES:-2}
NICE=${NICE:-10}
mkdir -p results/adaptive/evals
runs=("$@"); [ ${#runs[@]} -eq 0 ] && runs=(runs/adaptive/*/)
for run in "${runs[@]}"; do
  name=$(basename "$run")
  [ -n "$ONLY" ] && [ "$ONLY" != "$name" ] && continue
  [ -f "$run/summary.json" ] || continue
  for where in in ood; do
    out="results/adaptive/evals/$name-$where.json"
    [ -s "$out" ] && continue
    data=(); [ "$where" = ood ] && data=(--data mix-large:linux-doc)
    nice -n "$NICE" env OMP_NUM_THREADS=1 $PY -m rins.cli eval "$run" "${data[@]}" --r 1,2,3 --batches "$BATCHES" \
      --adaptive kl=0.003,0.03,0.3 --adaptive hidden=0.05,0.1,0.2,0.4 \
      --adaptive confidence=0.2,0.4,0.6 --json > "$out.tmp"
    mv "$out.tmp" "$out"
  done
done
