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
WHERE=${WHERE:-in ood}   # in: the run's held-out documents; ood: the kernel docs
# the exit rules scored (one --adaptive each); thresholds placed where a trained S model's rules fire at all
RULES=${RULES:-kl=0.3,1,3 hidden=0.5,0.8,1.2 confidence=0.2,0.5}
mkdir -p results/adaptive/evals
runs=("$@"); [ ${#runs[@]} -eq 0 ] && runs=(runs/adaptive/*/)
for run in "${runs[@]}"; do
  name=$(basename "$run")
  [ -n "$ONLY" ] && [ "$ONLY" != "$name" ] && continue
  [ -f "$run/summary.json" ] || continue
  for where in $WHERE; do
    out="results/adaptive/evals/$name-$where.json"
    [ -s "$out" ] && continue
    data=(); [ "$where" = ood ] && data=(--data mix-large:linux-doc)
    nice -n "$NICE" env OMP_NUM_THREADS=1 $PY -m rins.cli eval "$run" "${data[@]}" --r 1,2,3 --batches "$BATCHES" \
      $(for r in $RULES; do printf -- "--adaptive %s " "$r"; done) --json > "$out.tmp"
    mv "$out.tmp" "$out"
  done
done
