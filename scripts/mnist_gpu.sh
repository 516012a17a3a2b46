#!/usr/bin/env bash
# The whole MNIST protocol (the paper's dimension convention) on one GPU in one call: N-VAE on R^d and S-VAE on S^d in R^(d+1),
# d in {2, 5, 10, 20, 40}, seeds 0-9 (10 runs per cell), up to 500 epochs, KL warm-up over 100, early stopping
# with patience 50, batch 64, test LL by importance sampling with 500 samples. The 10 cells run as 10 processes
# side by side on the GPU; in each, the 10 seeds train together as one batched model (--batch-seeds).
# Every process stops training after TRAIN_MIN minutes (default 6) and is then evaluated at its best epoch, so
# the call ends within about 8 minutes; a run that had not early-stopped by then is marked under-trained in its
# JSON and in the report. Checkpoints in CKPT make a second call continue where the first stopped (--resume).
# Usage (repository root, package installed with CUDA kernels):
#   bash scripts/mnist_gpu.sh [MNIST_DIR] [OUT]        # defaults: ../shared/data/MNIST/raw, experiments/results/mnist/gpu
# then: python -m experiments.report experiments/results/mnist   (or the OUT folder alone)
set -uo pipefail
DATA=${1:-../shared/data/MNIST/raw}
OUT=${2:-results/mnist/gpu}
CKPT=${CKPT:-.cache/mnist_gpu_checkpoints}
TRAIN_MIN=${TRAIN_MIN:-6}
SEEDS=${SEEDS:-0-9}
mkdir -p "$OUT" "$CKPT"
python -c "import torch, hvae_ext; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name(0))" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/device.txt" 2>&1 || true
pids=()
for d in 2 5 10 20 40; do
  for m in s-vae n-vae; do
    python -m experiments.mnist --model $m --latent-dim $d --seeds "$SEEDS" --batch-seeds \
      --device cuda --data-root "$DATA" --out "$OUT" --epochs 500 --warmup-epochs 100 --patience 50 \
      --batch-size 64 --is-samples 500 --time-budget "$TRAIN_MIN" --checkpoint-dir "$CKPT" --resume \
      --threads 1 --no-progress > "$OUT/log_${m}_d${d}.txt" 2>&1 &
    pids+=($!)
  done
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
tail -n 3 "$OUT"/log_*.txt
exit $status
