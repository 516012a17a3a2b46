#!/usr/bin/env bash
# All MNIST runs of the equal-ambient sweep (the MNIST report's second table: S on S^(d-1)), JOBS processes at a time (1 thread each), most important
# cells first: every (model, d) for seed 0, the d = 3 picture runs, then seed 1, then seed 2.
# Usage: [JOBS=2] bash experiments/results/mnist/run_all.sh [MNIST_DIR] [EXTRA ARGS...]   (run from the repository root)
# A cell whose JSON is already in the output folder is skipped, so an interrupted sweep resumes.
# The d = 3 runs are for the latent pictures only: their test LL uses 100 importance samples, not 500.
set -euo pipefail
DATA=${1:-../shared/data/MNIST/raw}
shift || true
JOBS=${JOBS:-1}
OUT=${OUT:-experiments/results/mnist/runs}
EPOCHS=${EPOCHS:-60}
export DATA OUT EPOCHS
export EXTRA="$*"
cells() {
    for seed in 0 1 2; do
        for d in 2 5 10 20 40; do
            for m in s-vae n-vae; do echo "$m $d $seed 500"; done
        done
        if [[ $seed == 0 ]]; then echo "s-vae 3 0 100"; echo "n-vae 3 0 100"; fi
    done
}
run_cell() {  # model d seed is_samples
    local f="$OUT/mnist_$1_d$2_seed$3.json"
    if [[ -f "$f" ]]; then echo "skip $f"; return 0; fi
    echo "$(date -u +%FT%TZ) start $1 d=$2 seed $3"
    # shellcheck disable=SC2086
    python -m experiments.mnist --model "$1" --latent-dim "$2" --seeds "$3" --is-samples "$4" \
        --dim-convention ambient --data-root "$DATA" --out "$OUT" --epochs "$EPOCHS" --patience 10 --threads 1 --no-progress $EXTRA \
        || echo "$(date -u +%FT%TZ) FAILED $1 d=$2 seed $3 (continuing)"
    echo "$(date -u +%FT%TZ) done $1 d=$2 seed $3"
}
export -f run_cell
cells | xargs -P "$JOBS" -L 1 bash -c 'run_cell $0 $1 $2 $3'
echo "$(date -u +%FT%TZ) all done"
