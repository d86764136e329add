#!/usr/bin/env bash
# Emulates CUDA kernels on the CPU (no GPU needed) and checks them against the CPU kernels:
#   bash tests/cuda-emu/run.sh [advantages|prepack]... [--quick] [--case SUBSTRING]   (default: both)
# advantages: cuda/advantages.cu's kernels, CUDA threads as std::threads (needs g++ with C++20
#   <barrier>; about 20 s).
# prepack: packedAttention's FlashAttention-2-style kernel (cuda/prepack.cu, between "fa2 begin"
#   and "fa2 end") on the emulated mma.sync / ldmatrix / cp.async of mma_emu.hpp (a few minutes;
#   --quick: the first cases only; --case: the cases whose name contains SUBSTRING).
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
which=(); args=(); prev=""
for a in "$@"; do
  if [ "$prev" = --case ]; then args+=(--case "$a"); prev=""; continue; fi
  case "$a" in
    --quick) args+=(--quick) ;;
    --case) prev=--case ;;
    advantages|prepack) which+=("$a") ;;
    *) echo "unknown argument $a"; exit 2 ;;
  esac
done
[ ${#which[@]} -gt 0 ] || which=(advantages prepack)
for fam in "${which[@]}"; do
  echo "=== $fam"
  if [ "$fam" = advantages ]; then
    python3 - "$tmp/kernels.inc" <<'PY'
import sys
src = open('cuda/advantages.cu').read()
start = src.index('namespace {')
end = src.index('}  // namespace\n\n// Device-pointer launchers')
open(sys.argv[1], 'w').write(src[start:end] + '}  // namespace\n')
PY
    g++ -std=c++20 -O1 -I. -DKERNELS_INC="\"$tmp/kernels.inc\"" -o "$tmp/emu" tests/cuda-emu/advantages_emu.cc \
      src/cpu/advantages.cc src/cpu/pool.cc src/cpu/simd.cc -lpthread
    "$tmp/emu"
  else
    python3 - "$tmp/fa2.inc" <<'PY'
import sys
src = open('cuda/prepack.cu').read()
start = src.index('// ---- fa2 begin\n')
end = src.index('// ---- fa2 end\n')
open(sys.argv[1], 'w').write(src[start:end])
PY
    # -U_FORTIFY_SOURCE: the fibers switch stacks with _longjmp
    g++ -std=c++17 -O2 -U_FORTIFY_SOURCE -I. -DKERNELS_INC="\"$tmp/fa2.inc\"" -o "$tmp/emu_prepack" \
      tests/cuda-emu/prepack_emu.cc src/cpu/prepack.cc src/cpu/pool.cc src/cpu/simd.cc -lpthread
    "$tmp/emu_prepack" "${args[@]}"
  fi
done
