#!/usr/bin/env bash
# Layout sweep of the product-of-spheres S-VAE on MNIST (the paper's convention, vMF posterior): at d = 20 latent
# degrees of freedom, z on k independent spheres S^m with k m = d, for m in 1, 2, 4, 5, 10 (k = 20, 10, 5, 4, 2;
# m = 1 is 20 circles, the split the authors' own run scripts use at d = 20, trdavidson/increasing-expressivity-s-vae
# run_files/ambient_match/ambient_z20.sh), seed
# 0, 100 epochs; the protocol's other settings as converge.sh uses them (early stopping with patience 50 on the
# validation ELBO, KL warm-up over WARMUP (20) epochs, 500 importance samples, no time budget). The runs are
# tagged sweep100 (run files mnist_s-vae_d20_k{k}_sweep100_seed0.json in OUT), so they stay out of the main
# tables; the report lists them in its product-of-spheres section.
# A layout whose run file already trained its 100 epochs (or stopped early) without a time budget is skipped; a
# layout with a checkpoint in CKPT continues from it, so a stopped call can simply be repeated. JOBS workers (one
# thread each) take the layouts in order. MNIST_CMD is the command that trains one layout (default: the
# library's MNIST CLI).
# When every layout has finished, the chosen factor size m is printed (experiments.report_mnist.chosen_factor_size:
# the highest best validation ELBO, rounded to 0.01 nats, a tie going to the larger m; the test set plays no
# part), with the layout it gives at d = 10, 20, 40 (the same m where it divides d with k >= 2, otherwise the
# divisor of d below d nearest to m, a tie going to the larger) and the converge.sh call that trains those
# product cells, seeds 0-2, to the end of the protocol.
# Usage (repository root): bash experiments/results/mnist/product_sweep.sh [MNIST_DIR]
#                     or: bash experiments/results/mnist/product_sweep.sh --cells   (only print the choice)
set -euo pipefail
OUT=${OUT:-experiments/results/mnist/paper}
CKPT=${CKPT:-.cache/mnist_checkpoints}
WARMUP=${WARMUP:-20}; JOBS=${JOBS:-2}
MNIST_CMD=${MNIST_CMD:-python -m experiments.mnist}
D=20; SEED=0; EPOCHS=100; TAG=sweep100
FACTORS=(1 2 4 5 10)
cells() {  # prints the chosen m and the converge.sh call; exit status 1 while a layout has no finished run
    python -c "import sys; from experiments.report_mnist import print_product_cells; sys.exit(print_product_cells(sys.argv[1]))" "$OUT"
}
if [[ "${1:-}" == --cells ]]; then cells; exit $?; fi
DATA=${1:-../shared/data/MNIST/raw}
mkdir -p "$OUT"
source "$(dirname "${BASH_SOURCE[0]}")/queue.sh"
train_layout() {  # the factor size m
    local m=$1 k=$((D / $1))
    if trained "$OUT/mnist_s-vae_d${D}_k${k}_${TAG}_seed${SEED}.json" "$EPOCHS"; then echo "skip m=$m k=$k"; return 0; fi
    train_run "m=$m k=$k" --model s-vae --latent-dim "$D" --spheres "$k" --seeds "$SEED" --data-root "$DATA" \
        --epochs "$EPOCHS" --tag "$TAG"
}
run_queue "$OUT/product_sweep" train_layout "${FACTORS[@]}"
echo "$(date -u +%FT%TZ) sweep done"
cells || true
