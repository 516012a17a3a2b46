#!/usr/bin/env bash
# Time per epoch of the N-VGAE, the von Mises-Fisher S-VGAE and the Power Spherical S-VGAE, measured in one
# process with their training steps interleaved (python -m experiments.epoch_timing: one step of each model per
# round, the order rotated every round, each step followed by the validation pass), at the sizes of the Power
# Spherical section of the report. Run from the repository root:
#   bash experiments/results/link_prediction/run_ps_timing.sh [DATA_ROOT]
# DATA_ROOT: a writable folder with the Planetoid raw files (DATA_ROOT/<Name>/raw/ind.*), also used as the cache
# Planetoid writes processed/ into (default: .cache/data/planetoid, a copy of the data folder's planetoid/).
#  * size of z 16 for all three models (N-VGAE on R^16, S-VGAE on S^15), as the main table;
#  * d = 2, 4, 8 degrees of freedom: N-VGAE on R^d (--n-latent-dim d), both S-VGAE on S^d in R^(d+1)
#    (--latent-dim d+1), as the latent-dimension study's runs.
# One thread (THREADS), 5 warm-up rounds, STEPS (default 200) timed rounds; nice 10 (the measurement compares
# models under the same load, it does not need the machine to itself). Then the report is regenerated.
set -euo pipefail
OUT=experiments/results/link_prediction
DATA=${1:-.cache/data/planetoid}
COMMON=(--models n-vgae,s-vgae,s-vgae-ps --steps "${STEPS:-200}" --warmup 5 --threads "${THREADS:-1}"
  --data-root "$DATA" --cache-root "$DATA" --no-download --out "$OUT/timing/power_spherical")
for ds in Cora CiteSeer; do
  nice -n 10 python -m experiments.epoch_timing --dataset "$ds" --latent-dim 16 "${COMMON[@]}"
  for d in 2 4 8; do
    nice -n 10 python -m experiments.epoch_timing --dataset "$ds" --latent-dim $((d + 1)) --n-latent-dim "$d" \
      "${COMMON[@]}"
  done
done
python -m experiments.report "$OUT"
