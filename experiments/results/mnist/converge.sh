#!/usr/bin/env bash
# Trains MNIST cells under the paper's convention to the end of the protocol: up to 500 epochs, early stopping
# on the validation ELBO with patience 50, KL warm-up over WARMUP (20) epochs, 500 importance samples, no time
# budget. A cell whose run file already ended by early stopping or at 500 epochs is skipped; a cell with a
# checkpoint in CKPT continues from it, so a stopped call can simply be repeated. JOBS workers (one thread
# each) take the cells in order. CELLS (comma-separated "model d seed [spheres [posterior]]") replaces the
# default list: spheres defaults to 1, posterior (vmf or power-spherical, the S-VAE's --posterior) to vmf, e.g.
#   CELLS="s-vae 10 0 1 power-spherical,s-vae 10 1 1 power-spherical"
# queues Power Spherical S-VAE cells (run files mnist_s-vae_d10_ps_seed0.json, ..., named as the CLI names them).
# MNIST_CMD is the command that trains one cell (default: the library's MNIST CLI).
# Usage (repository root): bash experiments/results/mnist/converge.sh [MNIST_DIR]
set -euo pipefail
DATA=${1:-../shared/data/MNIST/raw}
OUT=${OUT:-experiments/results/mnist/paper}
CKPT=${CKPT:-.cache/mnist_checkpoints}
WARMUP=${WARMUP:-20}; JOBS=${JOBS:-2}
MNIST_CMD=${MNIST_CMD:-python -m experiments.mnist}
DEFAULT_CELLS=(
    "s-vae 10 0" "n-vae 10 0" "s-vae 10 1" "n-vae 10 1" "s-vae 10 2" "n-vae 10 2"
    "s-vae 20 0" "n-vae 20 0" "s-vae 20 1" "n-vae 20 1" "s-vae 20 2" "n-vae 20 2"
    "s-vae 40 0" "n-vae 40 0" "s-vae 40 1" "n-vae 40 1" "s-vae 40 2" "n-vae 40 2"
    "s-vae 5 0" "n-vae 5 0" "s-vae 5 1" "n-vae 5 1" "s-vae 5 2" "n-vae 5 2"
)
source "$(dirname "${BASH_SOURCE[0]}")/queue.sh"
train_cell() {  # "model d seed [spheres [posterior]]"
    local model d seed spheres posterior
    read -r model d seed spheres posterior <<< "$1"
    local parts="" extra=()
    if [[ -n "${spheres:-}" && "$spheres" != 1 ]]; then parts="_k${spheres}"; extra=(--spheres "$spheres"); fi
    case "${posterior:-vmf}" in
        vmf) ;;
        power-spherical) parts="${parts}_ps"; extra+=(--posterior power-spherical) ;;
        *) echo "$(date -u +%FT%TZ) FAILED $1 (posterior must be vmf or power-spherical)"; return 0 ;;
    esac
    if trained "$OUT/mnist_${model}_d${d}${parts}_seed${seed}.json" 500; then echo "skip $1"; return 0; fi
    train_run "$1" --model "$model" --latent-dim "$d" --seeds "$seed" --data-root "$DATA" "${extra[@]}" --epochs 500
}
if [[ -n "${CELLS:-}" ]]; then IFS=',' read -r -a QUEUED <<< "$CELLS"; else QUEUED=("${DEFAULT_CELLS[@]}"); fi
run_queue "$OUT/converge" train_cell "${QUEUED[@]}"
echo "$(date -u +%FT%TZ) all done"
