#!/usr/bin/env bash
# The GPU script: build the CUDA kernels (sm_90) with the CPU kernels, check every CUDA op against
# the CPU kernels on random inputs (the CPU kernels are checked against the float64 js reference
# by `npm test`), time the GPU cases on device-resident data, time PyTorch eager baselines, and
# print a short table. Budget: well under 8 minutes on one H100/H200. Needs nvcc + cmake (+ ninja),
# no Node: the device machine has none. Results go to $OUT (device tool) or bench/results/.
#   bash bench/gpu/run.sh [--quick]
set -uo pipefail
cd "$(dirname "$0")/../.."
dest="${OUT:-bench/results}"
mkdir -p "$dest"
start=$(date +%s)
step() { echo; echo "=== $* ($(( $(date +%s) - start )) s)"; }

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1 || true
nvcc --version | tail -2

step "build (cmake, CUDA 90, GPU tools only)"
gen=""; command -v ninja >/dev/null && gen="-G Ninja"
cmake -S . -B build-gpu $gen -DRK_GPU_TOOLS_ONLY=ON -DRK_REQUIRE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCMAKE_BUILD_TYPE=Release > "$dest/gpu-build.log" 2>&1 && cmake --build build-gpu -j "$(nproc)" >> "$dest/gpu-build.log" 2>&1
rc=$?
tail -5 "$dest/gpu-build.log"
[ $rc -eq 0 ] || { echo "build failed (see gpu-build.log)"; exit 1; }

step "CUDA vs CPU checks, then GPU benchmarks"
./build-gpu/rk_gpu_bench "$dest/gpu-results.json" "$@" 2>&1 | tee "$dest/gpu-bench.log"
bench_rc=${PIPESTATUS[0]}

step "PyTorch eager baselines (same shapes)"
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  timeout 180 python3 bench/gpu/torch_baselines.py "$dest/gpu-torch.json" 2>&1 | tee "$dest/gpu-torch.log"
else
  echo "no PyTorch with CUDA here: baselines skipped"
fi

step "summary"
grep -E "^(CHECK FAIL|GPU checks)" "$dest/gpu-bench.log" || true
grep -E "^\|" "$dest/gpu-bench.log" || true
echo "results: $dest/gpu-results.json $dest/gpu-torch.json"
exit $bench_rc
