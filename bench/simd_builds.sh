#!/usr/bin/env bash
# annulus-bench built three ways, run in turns on the same data, compared:
#   v2-static  -march=x86-64-v2 -DANNULUS_SIMD_DISPATCH=0: SSE4.2 kernels, no dispatch
#   dispatch   no -march (the x86-64 baseline): kernels chosen at run time
#   native     -march=native: the host's kernels compiled in (the release preset)
# and annulus's single-thread QPS at recall 0.90 / 0.95 / 0.99 of each build
# against the native one (bench/compare_builds.py: medians over the rounds).
#
#   bench/simd_builds.sh [--rounds N] [annulus-bench options, e.g. --data DIR]
# Default: 3 rounds of `--index flat,hnsw --peers none` on the default dataset.
# Builds in build/simd-*, results in build/simd-compare/.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
if [ "${1:-}" = "--rounds" ]; then rounds=$2; shift 2; fi
args=("$@")
[ ${#args[@]} -gt 0 ] || args=()

declare -A flags=(
  [v2-static]="-march=x86-64-v2 -DANNULUS_SIMD_DISPATCH=0"
  [dispatch]=""
  [native]="-march=native"
)
builds=(v2-static dispatch native)
for b in "${builds[@]}"; do
  cmake -S . -B "build/simd-$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DANNULUS_NATIVE=OFF \
    -DANNULUS_BUILD_TESTS=OFF -DANNULUS_BUILD_EXAMPLES=OFF -DANNULUS_INSTALL=OFF \
    -DCMAKE_CXX_FLAGS="${flags[$b]}" > /dev/null
  cmake --build "build/simd-$b" --target annulus-bench
done

out=build/simd-compare
rm -rf "$out"
for r in $(seq 1 "$rounds"); do
  for b in "${builds[@]}"; do
    echo "== round $r: $b"
    "build/simd-$b/bench/annulus-bench" --index flat,hnsw --peers none "${args[@]}" \
      --out "$out/$b-$r" | grep -E "SIMD target|^\| annulus" || true
  done
done
python3 bench/compare_builds.py --reference native "$out" "${builds[@]}"
