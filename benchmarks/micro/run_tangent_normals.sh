#!/usr/bin/env bash
# Builds and runs tangent_normals.cpp (ziggurat against Box-Muller for the tangent normals) with the extension's flags (-O3 -fno-math-errno
# -fno-trapping-math; csrc/cpu/fast_normal.h picks its AVX-512/AVX2 clone at load time) and writes the result,
# with the CPU model, to benchmarks/results/tangent-normals.txt. Usage (repository root):
#   bash benchmarks/micro/run_tangent_normals.sh
set -euo pipefail
out=benchmarks/results/tangent-normals.txt
bin=$(mktemp)
g++ -O3 -fno-math-errno -fno-trapping-math -std=c++17 -Wno-psabi -Icsrc benchmarks/micro/tangent_normals.cpp -o "$bin"
{
    echo "cpu: $(python -c 'from experiments.common import cpu_model; print(cpu_model())')"
    echo "compiler: $(g++ --version | head -n 1)"
    "$bin"
} > "$out"
rm -f "$bin"
cat "$out"
