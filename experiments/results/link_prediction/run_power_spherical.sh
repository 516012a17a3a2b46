#!/usr/bin/env bash
# The S-VGAE with the Power Spherical posterior (--posterior power-spherical) under the protocols of the
# von Mises-Fisher S-VGAE runs it is compared with (CPU, one run at a time, one thread). Run from the repository
# root:
#   bash experiments/results/link_prediction/run_power_spherical.sh [DATA_ROOT]
# DATA_ROOT: a writable folder with the Planetoid raw files (DATA_ROOT/<Name>/raw/ind.*), also used as the cache
# Planetoid writes processed/ into (default: .cache/data/planetoid, a copy of the data folder's planetoid/).
#  * main table, latent size 16 (z on S^15 in R^16, as runs/*_s-vgae_d16_*): seeds 0-2, out runs/;
#  * latent-dimension study at d = 2, 4, 8 degrees of freedom (z on S^d in R^(d+1), as
#    latent_dim/*_s-vgae_d{3,5,9}_*, which were run with --latent-dim d+1): seeds 0-2, out latent_dim/.
# Everything else is the S-VGAE's default protocol (400 epochs, dropout 0.2, lr 0.005, decoder scale 10, kappa
# floor 1). A run whose file exists is skipped, so a stopped call can simply be repeated. The new run files are
# then condensed (scripts/clean_results.py) and the report regenerated.
set -euo pipefail
OUT=experiments/results/link_prediction
DATA=${1:-.cache/data/planetoid}
COMMON=(--model s-vgae --posterior power-spherical --no-progress --threads "${THREADS:-1}" --data-root "$DATA"
  --cache-root "$DATA" --no-download)
run() {  # run DATASET AMBIENT SEED FOLDER
  local file="$OUT/$4/${1}_s-vgae_d${2}_ps_seed${3}.json"
  if [ -f "$file" ]; then echo "skip $file"; return 0; fi
  python -m experiments.link_prediction --dataset "$1" --latent-dim "$2" --seeds "$3" --out "$OUT/$4" "${COMMON[@]}"
}
for ds in Cora CiteSeer; do
  for seed in 0 1 2; do run "$ds" 16 "$seed" runs; done
done
for seed in 0 1 2; do
  for d in 2 4 8; do
    for ds in Cora CiteSeer; do run "$ds" $((d + 1)) "$seed" latent_dim; done
  done
done
python scripts/clean_results.py "$OUT/runs" "$OUT/latent_dim"
python -m experiments.report "$OUT"
