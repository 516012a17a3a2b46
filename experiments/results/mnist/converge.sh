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
QUEUE=$(mktemp); LOCK=$QUEUE.lock
if [[ -n "${CELLS:-}" ]]; then tr ',' '\n' <<< "$CELLS" > "$QUEUE"; else printf '%s\n' "${DEFAULT_CELLS[@]}" > "$QUEUE"; fi
converged() {  # run file: whether it ended by early stopping or at the 500-epoch maximum, without a time budget
    [[ -f "$1" ]] && python -c "
import json, sys
r = json.load(open('$1'))
ok = not r['config'].get('time_budget') and (r['stopped'].startswith('early stopping') or r['epochs_run'] >= 500)
sys.exit(0 if ok else 1)"
}
next_cell() {  # pops the first line of the queue under a lock
    ( flock 9; head -n 1 "$QUEUE"; sed -i 1d "$QUEUE" ) 9> "$LOCK"
}
worker() {
    while true; do
        local cell; cell=$(next_cell); [[ -z "$cell" ]] && return 0
        local model d seed spheres posterior
        read -r model d seed spheres posterior <<< "$cell"
        local parts="" extra=()
        if [[ -n "${spheres:-}" && "$spheres" != 1 ]]; then parts="_k${spheres}"; extra=(--spheres "$spheres"); fi
        case "${posterior:-vmf}" in
            vmf) ;;
            power-spherical) parts="${parts}_ps"; extra+=(--posterior power-spherical) ;;
            *) echo "$(date -u +%FT%TZ) FAILED $cell (posterior must be vmf or power-spherical)"; continue ;;
        esac
        local name="mnist_${model}_d${d}${parts}_seed${seed}"
        if converged "$OUT/$name.json"; then echo "skip $cell"; continue; fi
        echo "$(date -u +%FT%TZ) train $cell"
        $MNIST_CMD --model "$model" --latent-dim "$d" --seeds "$seed" --data-root "$DATA" "${extra[@]}" \
            --out "$OUT" --epochs 500 --warmup-epochs "$WARMUP" --time-budget 0 \
            --checkpoint-dir "$CKPT" --resume --threads 1 --no-progress \
            || echo "$(date -u +%FT%TZ) FAILED $cell (continuing)"
        echo "$(date -u +%FT%TZ) done $cell"
    done
}
for j in $(seq 1 "$JOBS"); do worker > "$OUT/converge_$j.log" 2>&1 & done
wait
rm -f "$QUEUE" "$LOCK"
echo "$(date -u +%FT%TZ) all done"
