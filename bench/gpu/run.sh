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

step "C ABI from C99 against the CUDA library (device entry point on a user stream)"
gcc -std=c99 -Wall -Wextra -Werror -O2 -Isrc/include tests/c_abi/c_abi_test.c -L"$PWD/build-gpu" -lrlhf_kernels -lm \
  -Wl,-rpath,"$PWD/build-gpu" -o build-gpu/c_abi_test 2>&1 && ./build-gpu/c_abi_test 2>&1 | tee "$dest/gpu-c-abi.log" | tail -8
capi_rc=${PIPESTATUS[0]}

step "vitest on the CUDA addon: device tensors and async calls (only where Node and node_modules exist)"
if command -v node >/dev/null 2>&1 && [ -d node_modules/vitest ]; then
  npx cmake-js rebuild -O build-cuda --CDRK_REQUIRE_CUDA=ON --CDCMAKE_CUDA_ARCHITECTURES=90 > "$dest/gpu-addon-build.log" 2>&1 &&
    RLHF_KERNELS_ADDON=$PWD/build-cuda/Release/rlhf_kernels.node timeout 300 npx vitest run tests/device.test.ts tests/async.test.ts 2>&1 |
    tee "$dest/gpu-vitest.log" | tail -15
else
  echo "no Node here: skipped (bench/gpu device.cu covers the device entry points)"
fi

step "PyTorch eager baselines (same shapes)"
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  timeout 180 python3 bench/gpu/torch_baselines.py "$dest/gpu-torch.json" 2>&1 | tee "$dest/gpu-torch.log"
else
  echo "no PyTorch with CUDA here: baselines skipped"
fi

step "summary"
grep -E "^(CHECK FAIL|GPU checks)" "$dest/gpu-bench.log" || true
grep -E "^C ABI" "$dest/gpu-c-abi.log" || true
grep -E "^\|" "$dest/gpu-bench.log" || true
echo "results: $dest/gpu-results.json $dest/gpu-torch.json"
[ $bench_rc -ne 0 ] && exit $bench_rc
exit $capi_rc
