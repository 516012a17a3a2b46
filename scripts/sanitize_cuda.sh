#!/usr/bin/env bash
# Runs the CUDA kernels under compute-sanitizer (memcheck and racecheck) on a GPU machine,
# and record the output under experiments/results/reliability/.
#
#   scripts/sanitize_cuda.sh            # after `pip install --no-build-isolation .` with a CUDA torch
#
# Each tool runs a short pytest subset that touches every CUDA kernel (sampler forward and backward,
# Bessel and vMF special functions with their backward kernels) on small inputs: the sanitizers slow
# kernels down by 10-100x. The exit status is non-zero if any tool reports an error.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=experiments/results/reliability
mkdir -p "$OUT"
CS=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)}
if [ ! -x "$CS" ]; then
  echo "compute-sanitizer not found (set COMPUTE_SANITIZER=/path/to/compute-sanitizer)" >&2
  exit 2
fi
python -c "import torch, hvae_ext; assert torch.cuda.is_available(), 'no CUDA device'"

# The CUDA-parametrised tests of these files exercise every kernel at small sizes.
SUBSET=(tests/unit/test_extremes.py tests/unit/distributions/test_validation.py tests/unit/test_ops.py tests/unit/test_determinism.py)
K_EXPR="cuda and not compile"

status=0
for tool in memcheck racecheck; do
  log="$OUT/compute_sanitizer_${tool}.log"
  {
    echo "# compute-sanitizer --tool $tool on $(hostname), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"
    echo "# torch $(python -c 'import torch; print(torch.__version__, torch.version.cuda)')"
    echo "# git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  } > "$log"
  extra=()
  [ "$tool" = memcheck ] && extra=(--leak-check full)
  # PYTORCH_NO_CUDA_MEMORY_CACHING: let memcheck see every allocation (no caching allocator pool).
  if PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$CS" --tool "$tool" "${extra[@]}" --error-exitcode 99 \
      --target-processes all \
      python -m pytest "${SUBSET[@]}" -k "$K_EXPR" -x -q -p no:cacheprovider >> "$log" 2>&1; then
    echo "$tool: clean" | tee -a "$log"
  else
    rc=$?
    echo "$tool: FAILED (exit $rc), see $log" | tee -a "$log"
    status=1
  fi
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY" "$log" | tail -3 || true
done
exit $status
