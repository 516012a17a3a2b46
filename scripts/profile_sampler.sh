#!/usr/bin/env bash
# Where the CPU sampler spends its time (docs/performance.md): perf's flat profile of the forward op at d = 16
# and d = 3 and of the backward op at d = 16 (float32, N = 65536, kappa = 10, 1 thread), the top symbols of
# each written to OUT (default benchmarks/results/profile-cpu.txt). Needs perf and a library with symbols:
#   pip install --no-build-isolation --no-deps --config-settings=install.strip=false .
# Usage (repository root): bash scripts/profile_sampler.sh [OUT]
set -euo pipefail
out=${1:-benchmarks/results/profile-cpu.txt}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/loop.py" <<'PY'
import sys, torch, hvae_ext
torch.set_num_threads(1)
op, d, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
N = 65536
loc = torch.nn.functional.normalize(torch.randn(N, d), dim=-1)
kappa = torch.full((N,), 10.0)
seed = torch.tensor(1)
z, omw = torch.ops.hvae_ext.vmf_sample(loc, kappa, seed, 1)
g = torch.randn_like(z)
for _ in range(reps):
    if op == "forward":
        torch.ops.hvae_ext.vmf_sample(loc, kappa, seed, 1)
    else:
        torch.ops.hvae_ext.vmf_sample_backward(g, z, omw, loc, kappa)
PY
{
    echo "# perf flat profiles of the CPU sampler ops (float32, N = 65536, kappa = 10, 1 thread): % of all samples"
    echo "# cpu: $(python -c 'from experiments.common import cpu_model; print(cpu_model())'); written by scripts/profile_sampler.sh"
    for spec in "forward 16 1500" "forward 3 4000" "backward 16 800"; do
        set -- $spec
        perf record -q -o "$tmp/perf.data" python "$tmp/loop.py" "$1" "$2" "$3" > /dev/null 2>&1
        echo
        echo "## $1, d = $2"
        perf report -i "$tmp/perf.data" --no-children --sort symbol 2> /dev/null | grep -v '^#' | grep -v '^$' \
            | awk 'NR <= 10' | sed -E 's/ +$//; s/ +- +-$//; s/\(anonymous namespace\):://; s/hvae::(math::|cpu::)?//; s/::\{lambda.*/ (its tile loop)/'
    done
} > "$out"
cat "$out"
