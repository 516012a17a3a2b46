# Sourced by converge.sh and product_sweep.sh: the queue their JOBS workers share and the one training call they
# both make. Expects OUT, CKPT, WARMUP and MNIST_CMD to be set by the sourcing script.

# trained FILE EPOCHS: whether the run file FILE ended as the protocol ends a run of at most EPOCHS epochs: by early
# stopping or after EPOCHS epochs, not on a time budget (experiments.report_mnist.ended_by_protocol; run from the
# repository root). A run stopped on a budget is trained again, from its checkpoint.
trained() {
    [[ -f "$1" ]] && python -c "
import json, sys
from experiments.report_mnist import ended_by_protocol
sys.exit(0 if ended_by_protocol(json.load(open(sys.argv[1])), int(sys.argv[2])) else 1)" "$1" "$2"
}

# train_run LABEL ARG...: one MNIST_CMD call with ARG... and the protocol's fixed options (KL warm-up over WARMUP
# epochs, no time budget, a checkpoint per epoch in CKPT that it resumes from, one thread). A failed call is
# logged and the queue goes on.
train_run() {
    local label=$1; shift
    echo "$(date -u +%FT%TZ) train $label"
    $MNIST_CMD "$@" --out "$OUT" --warmup-epochs "$WARMUP" --time-budget 0 \
        --checkpoint-dir "$CKPT" --resume --threads 1 --no-progress \
        || echo "$(date -u +%FT%TZ) FAILED $label (continuing)"
    echo "$(date -u +%FT%TZ) done $label"
}

# run_queue LOG_PREFIX HANDLER ITEM...: JOBS workers (default 2) take the items in order, calling HANDLER ITEM
# for each; worker j writes its log to LOG_PREFIX_j.log. Returns when every item is handled.
run_queue() {
    local log=$1 handler=$2; shift 2
    local queue j
    mkdir -p "$(dirname "$log")"
    queue=$(mktemp)
    printf '%s\n' "$@" > "$queue"
    for j in $(seq 1 "${JOBS:-2}"); do _queue_worker "$queue" "$handler" > "${log}_$j.log" 2>&1 & done
    wait
    rm -f "$queue" "$queue.lock"
}

_queue_worker() {  # pops the first line of the queue under a lock until it is empty
    local queue=$1 handler=$2 item
    while true; do
        item=$( (flock 9; head -n 1 "$queue"; sed -i 1d "$queue") 9> "$queue.lock" )
        [[ -z "$item" ]] && return 0
        "$handler" "$item"
    done
}
