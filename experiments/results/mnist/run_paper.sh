#!/usr/bin/env bash
# MNIST latent-dimension study under the paper's convention: N-VAE on R^d against S-VAE on S^d in
# R^(d+1), d in {2, 5, 10, 20, 40}, seeds 0-2, on a CPU: two lanes (one per core, 1 thread each), the S-VAE
# cells in one and the N-VAE cells in the other, d = 2, 5, 10 first.
# A 2-core CPU cannot run the default protocol in reasonable time (up to 500 epochs, KL warm-up over 100, patience
# 50): here EPOCHS_LOW (100) epochs for d <= 10 and EPOCHS_HIGH (40) for d >= 20, a KL warm-up of WARMUP (20)
# epochs, each run also bounded by a training-time budget (BUDGET_LOW 8 and BUDGET_HIGH 3 minutes); every option is recorded in the run files, and the
# report marks runs still improving at their last epoch as under-trained. Checkpoints in CKPT make a stopped
# sweep resumable (a cell whose JSON exists is skipped; a cell with a checkpoint continues from it).
# Usage (repository root): bash experiments/results/mnist/run_paper.sh [MNIST_DIR]
set -euo pipefail
DATA=${1:-../shared/data/MNIST/raw}
OUT=${OUT:-results/mnist/paper}
CKPT=${CKPT:-.cache/mnist_checkpoints}
EPOCHS_LOW=${EPOCHS_LOW:-100}; EPOCHS_HIGH=${EPOCHS_HIGH:-40}; WARMUP=${WARMUP:-20}
BUDGET_LOW=${BUDGET_LOW:-8}; BUDGET_HIGH=${BUDGET_HIGH:-3}
run_cell() {  # model d seed
    local f="$OUT/mnist_$1_d$2_seed$3.json" epochs=$EPOCHS_LOW budget=$BUDGET_LOW
    if [[ -f "$f" ]]; then echo "skip $f"; return 0; fi
    if (( $2 >= 20 )); then epochs=$EPOCHS_HIGH; budget=$BUDGET_HIGH; fi
    echo "$(date -u +%FT%TZ) start $1 d=$2 seed $3"
    python -m experiments.mnist --model "$1" --latent-dim "$2" --seeds "$3" --data-root "$DATA" \
        --out "$OUT" --epochs "$epochs" --warmup-epochs "$WARMUP" --time-budget "$budget" \
        --checkpoint-dir "$CKPT" --resume --threads 1 --no-progress \
        || echo "$(date -u +%FT%TZ) FAILED $1 d=$2 seed $3 (continuing)"
}
lane() {  # model
    for seed in 0 1 2; do for d in 2 5 10; do run_cell "$1" $d $seed; done; done
    for seed in 0 1 2; do for d in 20 40; do run_cell "$1" $d $seed; done; done
}
lane s-vae > "$OUT/lane_s-vae.log" 2>&1 &
lane n-vae > "$OUT/lane_n-vae.log" 2>&1 &
wait
echo "$(date -u +%FT%TZ) all done"
