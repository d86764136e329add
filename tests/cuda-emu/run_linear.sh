#!/usr/bin/env bash
# Emulates cuda/linear.cu on the CPU (no GPU needed) and checks it against the CPU kernels:
#   bash tests/cuda-emu/run_linear.sh [--case K]   (needs g++ with C++20 <barrier>; ~6 minutes on 2
#   busy cores; --case K: the K-th case of linear_emu.cc's main only)
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/linear_emu.inc" <<'PY'
import re, sys
src = open('cuda/linear.cu').read()
src = src.replace('#include "mma.cuh"\n', '')  # its primitives are emulated in linear_emu.cc
# kernel<<<grid, block, smem, stream>>>(args) -> emu_launch(grid, block, smem, stream, kernel, args)
src = re.sub(r'([A-Za-z_][\w:]*(?:<[^<>;]*>)?)<<<(.*?)>>>\(', lambda m: f'emu_launch({m.group(2)}, {m.group(1)}, ', src)
open(sys.argv[1], 'w').write(src)
PY
g++ -std=c++20 -O1 -w -I. -Itests/cuda-emu/fake_cuda -Icuda -DLINEAR_CU="\"$tmp/linear_emu.inc\"" -o "$tmp/emu" \
  tests/cuda-emu/linear_emu.cc src/cpu/linear.cc src/cpu/gemm.cc src/cpu/logprobs.cc src/cpu/pool.cc src/cpu/simd.cc \
  src/cpu/preference.cc src/cpu/preference_fused.cc -lpthread
"$tmp/emu" "$@"
