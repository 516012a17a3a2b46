#!/usr/bin/env bash
# Reproduces experiments/results/link_prediction/ (CPU, sequential, one thread per process). Run from the repository root:
#   bash experiments/results/link_prediction/run_all.sh [DATA_ROOT]
# DATA_ROOT: a folder with Planetoid raw files (DATA_ROOT/<Name>/raw/ind.* or DATA_ROOT/planetoid/<Name>/raw/);
# default: download. The experiment's defaults are the configuration chosen on the validation split
# (lr 0.005; N-VGAE 600 epochs, dropout 0.5; S-VGAE 400 epochs, dropout 0.2; see notes.md); the tuning runs are listed in
# notes.md (--tag ... --out $OUT/tuning). LATENT_SEEDS (default "0 1 2 3 4") sets the seeds of the
# latent-dimension study, THREADS (default 1) the torch threads.
set -euo pipefail
OUT=experiments/results/link_prediction
DATA=()
if [ $# -ge 1 ]; then DATA=(--data-root "$1"); fi
COMMON=(--no-progress --threads "${THREADS:-1}" "${DATA[@]}")
# 1. main table: 10 seeds, latent 16, N and S in one process per seed (same split)
for ds in Cora CiteSeer; do
  python -m experiments.link_prediction --dataset $ds --model n-vgae,s-vgae --seeds 0-9 \
    --out $OUT/runs "${COMMON[@]}"
done
# 2. epoch time, N and S training steps interleaved in one process
for ds in Cora CiteSeer; do
  python -m experiments.epoch_timing --dataset $ds --models n-vgae,s-vgae --steps 200 --threads "${THREADS:-1}" \
    --out $OUT/timing "${DATA[@]}"
done
# 3. latent-dimension study (latent 16 comes from step 1), seed by seed
for seed in ${LATENT_SEEDS:-0 1 2 3 4}; do
  for d in 2 4 8 32 64; do
    for ds in Cora CiteSeer; do
      python -m experiments.link_prediction --dataset $ds --model n-vgae,s-vgae --latent-dim $d \
        --seeds $seed --out $OUT/latent_dim "${COMMON[@]}"
    done
  done
done
# 4. report: report.md, curves_*.png, latent_dim.png
python -m experiments.report $OUT
