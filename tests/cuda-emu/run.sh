#!/usr/bin/env bash
# Emulates the advantages CUDA kernels on the CPU (no GPU needed) and checks them against the CPU
# kernels: bash tests/cuda-emu/run.sh   (needs g++ with C++20 <barrier>; about 20 s)
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
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
