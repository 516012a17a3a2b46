#!/usr/bin/env bash
# The whole GPU verification of hvae_ext in one command: at most 8 minutes on one GPU.
#
#   scripts/gpu_check.sh              # on a GPU machine, from the repository root or anywhere
#   scripts/gpu_check.sh --dry-run    # on any machine: the Python stages on the CPU at small sizes, no build
#
# Stages (each logs to its own file, has its own time limit, and the script goes on when one fails):
#   env        torch, CUDA, nvcc, driver and GPU versions
#   build      a venv (--system-site-packages, so the installed torch is used) at $HVAE_GPU_VENV
#              (default .gpu-venv), HVAE_WITH_CUDA=1 pip install --no-build-isolation --no-deps . for the
#              architectures of the GPUs present (the build's default)
#   info       the built package has its CUDA kernels
#   pytest     pytest -m cuda: every test parametrised over devices, on the cuda device
#   sync       torch.cuda.set_sync_debug_mode("error") around rsample/backward/KL/log_prob/entropy and a
#              whole S-VAE training step
#   graph      CUDA-graph capture of rsample and its backward
#   agree      CPU against CUDA: tight for the special functions, statistical for the samples
#   bench      rsample forward and forward+backward at N = 2^20, d in {3, 16, 64, 256} against torch.randn,
#              power_spherical (if installed) and the PyTorch baseline of benchmarks/baselines.py
#   emulation  the CUDA kernels under host emulation (tests/cuda_emulation), built here, on the grid of every
#              CUDA op: GPU against CPU, emulation against CPU, GPU against emulation
#   sanitize   compute-sanitizer memcheck and racecheck on small cases touching every kernel
#   newtests   the mixed-precision, sync-free, build and DDP tests with the CUDA build
# Everything goes to experiments/results/gpu/<device-name>/ (override with HVAE_GPU_OUT): one log and, for the Python
# stages, one JSON per stage, and summary.txt with each stage's status and time.
# Exit status: 0 when every stage passed, 1 otherwise.
set -uo pipefail

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $arg (use --dry-run or --help)" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
START=$(date +%s)
TOTAL_BUDGET=${HVAE_GPU_BUDGET:-470}   # seconds for all stages together (8 minutes, less a margin)
PY=${PYTHON:-python3}

if [ "$DRY_RUN" = 1 ]; then
  DEVICE=cpu
  SMALL=--small
  NAME="dry-run-cpu"
else
  DEVICE=cuda
  SMALL=
  NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  NAME=${NAME:-unknown-gpu}
fi
SAFE_NAME=$(printf '%s' "$NAME" | tr -c 'A-Za-z0-9._-' '-' | sed 's/-*$//')
OUT=${HVAE_GPU_OUT:-$ROOT/results/gpu/$SAFE_NAME}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
{
  echo "# scripts/gpu_check.sh $* on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# git $(git rev-parse --short HEAD 2>/dev/null || echo '?'), device: $NAME"
} > "$SUMMARY"
FAILED=0

# run_stage NAME SECONDS COMMAND...: runs COMMAND with a time limit (never past the total budget), logs
# to $OUT/NAME.log, records the status in summary.txt and goes on whatever happens.
run_stage() {
  local name=$1 limit=$2
  shift 2
  local now left rc t0
  now=$(date +%s)
  left=$((TOTAL_BUDGET - (now - START)))
  if [ "$left" -le 5 ]; then
    echo "$name: SKIPPED (total time budget of ${TOTAL_BUDGET}s spent)" | tee -a "$SUMMARY"
    FAILED=1
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (limit ${limit}s)"
  t0=$(date +%s)
  # through bash -c so that exported shell functions (env_report, build) run under timeout too
  timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  local took=$(( $(date +%s) - t0 ))
  if [ "$rc" = 0 ]; then
    echo "$name: ok (${took}s)" | tee -a "$SUMMARY"
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "$name: TIMED OUT after ${took}s, see $OUT/$name.log" | tee -a "$SUMMARY"
    FAILED=1
  else
    echo "$name: FAILED (exit $rc, ${took}s), see $OUT/$name.log" | tee -a "$SUMMARY"
    tail -5 "$OUT/$name.log" | sed 's/^/    /'
    FAILED=1
  fi
}

env_report() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "python: $($PY -c 'import sys; print(sys.version.split()[0])')"
  $PY -c 'import torch; print("torch:", torch.__version__, "cuda:", torch.version.cuda, "available:", torch.cuda.is_available())'
  echo "nvcc: $( (command -v nvcc >/dev/null && nvcc --version | grep release) || echo 'not found')"
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv 2>/dev/null || echo "nvidia-smi: not found"
  echo "cores: $(nproc)"
}
export PY ROOT
export -f env_report
run_stage env 30 env_report
cat "$OUT/env.log"

if [ "$DRY_RUN" = 1 ]; then
  # no build: the Python stages run against the hvae_ext that $PY imports
  VPY=$PY
  echo "build: SKIPPED (dry run)" | tee -a "$SUMMARY"
else
  VENV=${HVAE_GPU_VENV:-$ROOT/.gpu-venv}
  build() {
    set -e
    "$PY" -m venv --system-site-packages "$VENV"
    export HVAE_WITH_CUDA=1 CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
    "$VENV/bin/python" -m pip install --no-build-isolation --no-deps -v \
      --config-settings=build-dir=build/gpu-check "$ROOT"
    # power_spherical for the benchmarks, when it can be installed (no dependencies: never another torch)
    timeout 30 "$VENV/bin/python" -m pip install --no-deps power_spherical || echo "power_spherical: not installed (package index not reachable?): its benchmark cells are skipped"
  }
  export VENV
  export -f build
  run_stage build 240 build
  grep -E "hvae_ext: (building|HVAE)" "$OUT/build.log" | head -3
  VPY=$VENV/bin/python
fi

# Tests run from a copy-free place: from the repository root the checkout's Python files shadow the
# installed ones, and hvae_ext/_ops.py loads the compiled library from the installed package.
run_stage info 60 "$VPY" scripts/gpu_check.py info --device "$DEVICE" $SMALL --out "$OUT"
if [ "$DRY_RUN" = 1 ]; then
  echo "pytest: SKIPPED (dry run)" | tee -a "$SUMMARY"
else
  run_stage pytest 150 "$VPY" -m pytest tests -m cuda -q --maxfail=10 -p no:cacheprovider
fi
run_stage sync 60 "$VPY" scripts/gpu_check.py sync --device "$DEVICE" $SMALL --out "$OUT"
run_stage graph 60 "$VPY" scripts/gpu_check.py graph --device "$DEVICE" $SMALL --out "$OUT"
run_stage agree 60 "$VPY" scripts/gpu_check.py agree --device "$DEVICE" $SMALL --out "$OUT"
run_stage bench 90 "$VPY" scripts/gpu_check.py bench --device "$DEVICE" $SMALL --out "$OUT"
run_stage emulation 150 "$VPY" scripts/gpu_check.py emulation --device "$DEVICE" $SMALL --out "$OUT"
if [ "$DRY_RUN" = 1 ]; then
  echo "sanitize, newtests: SKIPPED (dry run)" | tee -a "$SUMMARY"
else
  CS=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)}
  if [ -x "$CS" ]; then
    for tool in memcheck racecheck; do
      run_stage "sanitize-$tool" 75 env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$CS" --tool "$tool" \
        --error-exitcode 99 "$VPY" scripts/gpu_check.py sanitize --device cuda
    done
  else
    echo "sanitize: SKIPPED (compute-sanitizer not found; set COMPUTE_SANITIZER=...)" | tee -a "$SUMMARY"
    FAILED=1
  fi
  # the mixed-precision, sync-free, build and DDP tests against this CUDA build (the build tests see a CUDA torch here)
  run_stage newtests 90 "$VPY" -m pytest -q -p no:cacheprovider tests/unit/test_mixed_precision.py \
    tests/unit/test_sync_free.py tests/integration/test_build.py tests/integration/test_ddp.py
fi

echo "total: $(( $(date +%s) - START ))s; results in $OUT" | tee -a "$SUMMARY"
exit $FAILED
