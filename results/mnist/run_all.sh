#!/usr/bin/env bash
# All MNIST runs of the README table (issue 8), one process at a time, most important cells first:
# every (model, d) for seed 0, the d = 3 picture runs, then seed 1, then seed 2.
# Usage: bash results/mnist/run_all.sh [MNIST_DIR] [EXTRA ARGS...]   (run from the repository root)
# The d = 3 runs are for the latent pictures only: their test LL uses 100 importance samples, not 500.
set -euo pipefail
DATA=${1:-../shared/data/MNIST/raw}
shift || true
OUT=results/mnist/runs
COMMON=(--data-root "$DATA" --out "$OUT" --epochs 15 --patience 5 --threads 1 --no-progress "$@")
run() {  # model d seed [extra args]: skipped when its JSON is already there
    local f="$OUT/mnist_$1_d$2_seed$3.json"
    if [[ -f "$f" ]]; then echo "skip $f"; return; fi
    echo "$(date -u +%FT%TZ) start $1 d=$2 seed $3"
    python -m hvae_ext.experiments.mnist --model "$1" --latent-dim "$2" --seeds "$3" --is-samples "${4:-500}" "${COMMON[@]}" \
        || echo "$(date -u +%FT%TZ) FAILED $1 d=$2 seed $3 (continuing)"
}
for seed in 0 1 2; do
    for d in 2 5 10 20 40; do
        for m in s-vae n-vae; do run "$m" "$d" "$seed"; done
    done
    if [[ $seed == 0 ]]; then run s-vae 3 0 100; run n-vae 3 0 100; fi
done
echo "$(date -u +%FT%TZ) all done"
