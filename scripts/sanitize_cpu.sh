#!/usr/bin/env bash
# AddressSanitizer and UndefinedBehaviorSanitizer runs of the CPU kernels: builds the extension with
# -DHVAE_ASAN=ON / -DHVAE_UBSAN=ON into build/sanitize-<tool>/ (not into any environment), runs a pytest subset
# that calls every CPU kernel with the instrumented library preloaded, and writes the log to
# experiments/results/reliability/<tool>.log with the git commit, the command and the number of sanitizer reports.
#
#   bash scripts/sanitize_cpu.sh            # both (about 10 minutes on 2 cores)
#   bash scripts/sanitize_cpu.sh asan       # or ubsan
#
# The exit status is non-zero if a tool reports an error or a test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=("${@:-asan}")
[ $# -eq 0 ] && tools=(asan ubsan)
OUT=experiments/results/reliability
mkdir -p "$OUT"
# every CPU kernel: sampler forward/backward (also at extreme kappa and d), the special functions and their
# backward ops, entropy and KLs, validation paths, determinism (child processes run instrumented too)
SUBSET=(tests/unit/test_extremes.py tests/unit/distributions/test_validation.py tests/unit/test_determinism.py
        tests/unit/test_fuzz.py tests/statistical/test_gradients.py tests/unit/test_special.py
        tests/unit/distributions/test_entropy_kl_accuracy.py tests/unit/test_ops.py
        tests/unit/test_ops_implicit_grad.py)
K_EXPR="not unbiased and not compile"
status=0
for tool in "${tools[@]}"; do
  case "$tool" in
    asan) flag=-DHVAE_ASAN=ON; lib=libasan.so; pattern="ERROR: AddressSanitizer";;
    ubsan) flag=-DHVAE_UBSAN=ON; lib=libubsan.so; pattern="runtime error:";;
    *) echo "unknown tool $tool (asan or ubsan)" >&2; exit 2;;
  esac
  build=build/sanitize-$tool
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$flag" > "$build.cmake.log" 2>&1 || { cat "$build.cmake.log"; exit 1; }
  ninja -C "$build" > "$build.ninja.log" 2>&1 || { tail -50 "$build.ninja.log"; exit 1; }
  site=$build/site
  rm -rf "$site" && mkdir -p "$site/hvae_ext"
  cp "$build"/_C*.so "$site/hvae_ext/"
  log="$OUT/$tool.log"
  preload="$(gcc -print-file-name=$lib) $(gcc -print-file-name=libstdc++.so)"
  {
    echo "# $tool build of the CPU kernels: cmake -S . -B build/sanitize-$tool -G Ninja -DCMAKE_BUILD_TYPE=Release $flag; ninja"
    echo "# git $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- csrc CMakeLists.txt || echo ' + uncommitted changes in csrc/'), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(gcc --version | head -1)"
    echo "# (libstdc++ is preloaded as well: python does not link it, and ASan's __cxa_throw interceptor needs it)"
    echo "# LD_PRELOAD=\"$lib libstdc++.so\" python -m pytest ${SUBSET[*]} -k '$K_EXPR' -q -p no:cacheprovider"
    echo "# library: $(sha256sum "$site"/hvae_ext/_C*.so | cut -c1-16)... (sha256) of $build/$(basename "$site"/hvae_ext/_C*.so)"
  } > "$log"
  set +e
  LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=0 \
    PYTHONPATH="$site" python -m pytest "${SUBSET[@]}" -k "$K_EXPR" -q -p no:cacheprovider >> "$log" 2>&1
  rc=$?
  set -e
  # the instrumented library must be the one the tests loaded
  LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0 PYTHONPATH="$site" \
    python -c "import hvae_ext, torch; print('# loaded:', [p for p in torch.ops.loaded_libraries if 'hvae_ext' in p] or hvae_ext._C.__file__)" 2>&1 \
    | sed "s#$(pwd)/##g" >> "$log"
  n=$(grep -c "$pattern" "$log" || true)
  echo "# exit status: $rc" >> "$log"
  echo "# $tool reports in this log ('$pattern'): $n" >> "$log"
  sed -i "s#$(pwd)/##g; s#$HOME#~#g" "$log"
  echo "$tool: exit $rc, $n report(s) -> $log"
  { [ "$rc" -ne 0 ] || [ "$n" -ne 0 ]; } && status=1
done
python scripts/clean_results.py > /dev/null  # the logs quote paths of torch's build (tests/repository/test_results_hygiene.py)
exit $status
