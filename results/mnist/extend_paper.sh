#!/usr/bin/env bash
# Continues the cells of results/mnist/run_paper.sh that were furthest from the paper (S-VAE d = 2 and 10,
# N-VAE d = 10; issue 13) from their checkpoints, with the same options except a larger training-time budget
# (BUDGET minutes in all, counted from the run's start) and --epochs 500 (the protocol's maximum; the budget is
# what stops them on a CPU). The run files in OUT are replaced by the continued runs; their histories hold every
# epoch from the first.
# Usage (repository root): CKPT=<checkpoint folder of run_paper.sh> bash results/mnist/extend_paper.sh [MNIST_DIR]
set -euo pipefail
DATA=${1:-../shared/data/MNIST/raw}
OUT=${OUT:-results/mnist/paper}
CKPT=${CKPT:-.cache/mnist_checkpoints}
WARMUP=${WARMUP:-20}; BUDGET=${BUDGET:-24}
extend() {  # model d seed
    echo "$(date -u +%FT%TZ) continue $1 d=$2 seed $3 to $BUDGET min"
    python -m hvae_ext.experiments.mnist --model "$1" --latent-dim "$2" --seeds "$3" --data-root "$DATA" \
        --out "$OUT" --epochs 500 --warmup-epochs "$WARMUP" --time-budget "$BUDGET" \
        --checkpoint-dir "$CKPT" --resume --threads 1 --no-progress \
        || echo "$(date -u +%FT%TZ) FAILED $1 d=$2 seed $3 (continuing)"
}
lane_a() { for s in 1 2 0; do extend s-vae 2 $s; done; for s in 0 1 2; do extend n-vae 10 $s; done; }
lane_b() { for s in 0 1 2; do extend s-vae 10 $s; done; }
lane_a > "$OUT/extend_a.log" 2>&1 &
lane_b > "$OUT/extend_b.log" 2>&1 &
wait
echo "$(date -u +%FT%TZ) all done"
