#!/usr/bin/env bash
# Product-of-spheres study of link prediction (CPU, one thread per process). Run from the repository root:
#   bash experiments/results/link_prediction/run_products.sh [DATA_ROOT]
# At d = 16, 32 and 64 latent degrees of freedom per node, on Cora and CiteSeer, seeds 0-4 (the same edge split
# for the same seed in every cell), each model with its default protocol (notes.md):
#  * N-VGAE, z in R^d: reused from runs/ (d = 16) and latent_dim/ (d = 32, 64);
#  * single-sphere S-VGAE, z on S^d in R^(d+1): reused from latent_dim/ (d = 16, files *_d17_*), run here for
#    d = 32 and 64;
#  * product S-VGAE, z on k factors S^m (k m = d) in R^(d+k): the factor size m is chosen on validation only.
#    Sweep at d = 16: m in {2, 4, 8} (k = 8, 4, 2), seeds 0-2; per dataset the m with the highest mean
#    best-validation AUC over those seeds (experiments.report.chosen_factor_size) is kept, and the product runs
#    at d = 16 (seeds 3, 4), 32 and 64 (seeds 0-4) use that m.
# A run whose file exists is skipped, so a stopped call can simply be repeated. JOBS (default 1) runs that
# many processes at a time; THREADS (default 1) torch threads each.
set -euo pipefail
OUT=experiments/results/link_prediction/products
if [ "${1:-}" = --one ]; then  # one run: --one DATASET D K SEED [DATA_ROOT] (the workers of run_queue)
  DATA=(); if [ -n "${6:-}" ]; then DATA=(--data-root "$6"); fi
  python -m experiments.link_prediction --model s-vgae --dim-convention paper --dataset "$2" --latent-dim "$3" \
    --spheres "$4" --seeds "$5" --no-progress --threads "${THREADS:-1}" --out "$OUT" "${DATA[@]}" \
    || echo "FAILED $2 d=$3 k=$4 seed $5"
  exit 0
fi
DATA_ROOT=${1:-}
DATASETS=(Cora CiteSeer)
mkdir -p "$OUT"
queue() {  # prints "dataset d k seed" lines of the runs whose files are missing
  while read -r ds d k seed; do
    local name="${ds}_s-vgae_d$((d + k))"
    if [ "$k" != 1 ]; then name="${name}_k${k}"; fi
    [ -f "$OUT/${name}_seed${seed}.json" ] || echo "$ds $d $k $seed"
  done
}
run_queue() {  # runs the queued lines, JOBS at a time
  queue | while read -r line; do echo "$line ${DATA_ROOT}"; done | xargs -r -P "${JOBS:-1}" -L 1 bash "$0" --one
}
# 1. the sweep at d = 16 (seeds 0-2, m = 2, 4, 8), then the single sphere at d = 32, 64 (seeds 0-4)
{
  for m in 2 4 8; do for ds in "${DATASETS[@]}"; do for seed in 0 1 2; do echo "$ds 16 $((16 / m)) $seed"; done; done; done
  for d in 32 64; do for ds in "${DATASETS[@]}"; do for seed in 0 1 2 3 4; do echo "$ds $d 1 $seed"; done; done; done
} > "$OUT/.queue"
run_queue < "$OUT/.queue"
# 2. the product with each dataset's chosen m: d = 16 seeds 3, 4; d = 32 and 64 seeds 0-4
python -c "
from experiments.report import chosen_factor_size, load_runs
from pathlib import Path
for ds, m in sorted(chosen_factor_size(load_runs(Path('$OUT'))).items()):
    for d, seeds in ((16, (3, 4)), (32, range(5)), (64, range(5))):
        for seed in seeds:
            print(ds, d, d // m, seed)" > "$OUT/.queue"
run_queue < "$OUT/.queue"
rm -f "$OUT/.queue"
# 3. small run files (pruned histories), then the report
python scripts/clean_results.py "$OUT"
python -m experiments.report experiments/results/link_prediction
