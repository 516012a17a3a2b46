#!/usr/bin/env bash
# Continues cells of experiments/results/mnist/run_paper.sh from their checkpoints, with the same options except
# a larger training-time budget (BUDGET minutes in all, counted from the run's start) and --epochs 500 (the
# protocol's maximum; early stopping with patience 50 still applies), so that every run of a cell, N and S
# alike, ends with the same budget. The run files in OUT are replaced by the continued runs; their histories
# hold every epoch from the first. A cell whose run file already records this budget is skipped, so a stopped
# call can simply be repeated. JOBS workers (one thread each) take the cells in the order below: first those
# furthest from the paper and those the d = 2 comparison needs. CELLS (optional) replaces that list:
# comma-separated "model d seed" triples, e.g. CELLS="s-vae 10 0,n-vae 10 0".
# The committed table came from these calls, in this order (CKPT: the checkpoint folder of run_paper.sh):
#   BUDGET=24 bash experiments/results/mnist/extend_paper.sh                      # every d <= 10 cell, 3 seeds
#   BUDGET=36 CELLS="<d = 10, N and S, seeds 0-2>" bash experiments/results/mnist/extend_paper.sh
#   BUDGET=48 CELLS="<d = 2, N and S, seeds 0-2>" bash experiments/results/mnist/extend_paper.sh
# Between the last two, a BUDGET=150 call (to reach early stopping at d = 2) was stopped before it
# finished: N seed 1 had trained 61.5 minutes and S seed 1 48.7; in the BUDGET=48 call both stopped at once, at
# those lengths (their run files record the time trained). Last, every d = 2 run was continued to early
# stopping with OUT outside the repository, the run files then copied over the 48-minute ones:
#   CKPT=<ckpt> BUDGET=150 OUT=<folder> CELLS="n-vae 2 2,n-vae 2 0" bash experiments/results/mnist/extend_paper.sh
#   CKPT=<ckpt> BUDGET=150 OUT=<folder> CELLS="s-vae 2 0,s-vae 2 1,n-vae 2 1,s-vae 2 2" bash experiments/results/mnist/extend_paper.sh
# then python scripts/clean_results.py && python -m experiments.report experiments/results/mnist
# Usage (repository root): CKPT=<checkpoint folder> BUDGET=<minutes> bash experiments/results/mnist/extend_paper.sh [MNIST_DIR]
set -euo pipefail
DATA=${1:-../shared/data/MNIST/raw}
OUT=${OUT:-results/mnist/paper}
CKPT=${CKPT:-.cache/mnist_checkpoints}
WARMUP=${WARMUP:-20}; BUDGET=${BUDGET:-24}; JOBS=${JOBS:-2}
DEFAULT_CELLS=(
    "s-vae 2 1" "s-vae 10 0" "s-vae 2 2" "s-vae 10 1" "s-vae 2 0" "n-vae 2 0" "n-vae 2 1" "n-vae 2 2"
    "n-vae 10 0" "s-vae 10 2" "n-vae 10 1" "n-vae 10 2"
    "s-vae 5 0" "n-vae 5 0" "s-vae 5 1" "n-vae 5 1" "s-vae 5 2" "n-vae 5 2"
)
QUEUE=$(mktemp); LOCK=$QUEUE.lock
if [[ -n "${CELLS:-}" ]]; then tr ',' '\n' <<< "$CELLS" > "$QUEUE"; else printf '%s\n' "${DEFAULT_CELLS[@]}" > "$QUEUE"; fi
has_budget() {  # run file, budget: whether the file records that budget
    [[ -f "$1" ]] && python -c "import json,sys; sys.exit(json.load(open('$1'))['config'].get('time_budget') != float('$2'))"
}
next_cell() {  # pops the first line of the queue under a lock
    ( flock 9; head -n 1 "$QUEUE"; sed -i 1d "$QUEUE" ) 9> "$LOCK"
}
worker() {
    while true; do
        local cell; cell=$(next_cell); [[ -z "$cell" ]] && return 0
        read -r model d seed <<< "$cell"
        if has_budget "$OUT/mnist_${model}_d${d}_seed${seed}.json" "$BUDGET"; then echo "skip $cell"; continue; fi
        echo "$(date -u +%FT%TZ) continue $model d=$d seed $seed to $BUDGET min"
        python -m experiments.mnist --model "$model" --latent-dim "$d" --seeds "$seed" --data-root "$DATA" \
            --out "$OUT" --epochs 500 --warmup-epochs "$WARMUP" --time-budget "$BUDGET" \
            --checkpoint-dir "$CKPT" --resume --threads 1 --no-progress \
            || echo "$(date -u +%FT%TZ) FAILED $model d=$d seed $seed (continuing)"
    done
}
for j in $(seq 1 "$JOBS"); do worker > "$OUT/extend_$j.log" 2>&1 & done
wait
rm -f "$QUEUE" "$LOCK"
echo "$(date -u +%FT%TZ) all done"
