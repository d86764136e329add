#!/usr/bin/env bash
# The GPU script: on one H100/H200, in well under 8 minutes,
#   1. builds the CUDA kernels (sm_90) with the CPU kernels into the check/bench binary, or uses the
#      one prepared here (bench/gpu/prepare.sh → .devnode/, carried by the device tool);
#   2. checks every CUDA op against the CPU kernels on random inputs, then times the GPU cases on
#      device-resident data (rk_gpu_bench; the CPU kernels are checked against the float64 js
#      reference by `npm test`);
#   3. when .devnode/ carries Node, node_modules and the CPU+CUDA addon: runs the whole vitest suite
#      with the cuda backend available (every test that loops over backends includes cuda, and the
#      conformance vectors run on cuda);
#   4. runs the C ABI test program (tests/c_abi, C99) against the CUDA library;
#   5. times the PyTorch eager baselines (same shapes);
#   6. prints a short table.
# Results and logs go to $OUT (device tool) or bench/results/.
#   bash bench/gpu/run.sh [--quick] [--no-torch] [--no-vitest] [--no-bench]
set -uo pipefail
cd "$(dirname "$0")/../.."
dest="${OUT:-bench/results}"
mkdir -p "$dest"
start=$(date +%s)
step() { echo; echo "=== $* ($(( $(date +%s) - start )) s)"; }
quick=""; torch=1; vitest=1; benchbin=1
for a in "$@"; do
  case "$a" in
    --quick) quick="--quick" ;;
    --no-torch) torch=0 ;;
    --no-vitest) vitest=0 ;;
    --no-bench) benchbin=0 ;;
    *) echo "unknown argument $a"; exit 2 ;;
  esac
done
rc_all=0

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1 || true
nvcc --version 2>/dev/null | tail -2

tools=/tmp/rk-gpu-tools
bench_exe=""
if [ -d .devnode ]; then
  step "unpack .devnode (prepared at $(cat .devnode/commit 2>/dev/null))"
  mkdir -p "$tools/bin"
  xz -dc .devnode/rk_gpu_bench.xz > "$tools/rk_gpu_bench" && chmod +x "$tools/rk_gpu_bench"
  xz -dc .devnode/rlhf_kernels.node.xz > "$tools/rlhf_kernels.node"
  xz -dc .devnode/librlhf_kernels.so.xz > "$tools/librlhf_kernels.so"
  xz -dc .devnode/c_abi_test.xz > "$tools/c_abi_test" && chmod +x "$tools/c_abi_test"
  xz -dc .devnode/node.xz > "$tools/bin/node" && chmod +x "$tools/bin/node"
  [ -d node_modules ] || tar -xJf .devnode/node_modules.tar.xz
  if "$tools/rk_gpu_bench" --probe; then bench_exe="$tools/rk_gpu_bench"; else echo "carried rk_gpu_bench does not run here: building"; fi
fi

if [ $benchbin = 1 ] && [ -z "$bench_exe" ]; then
  step "build (cmake, CUDA 90, GPU tools only)"
  gen=""; command -v ninja >/dev/null && gen="-G Ninja"
  cmake -S . -B build-gpu $gen -DRK_GPU_TOOLS_ONLY=ON -DRK_REQUIRE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DCMAKE_BUILD_TYPE=Release > "$dest/gpu-build.log" 2>&1 && cmake --build build-gpu -j "$(nproc)" >> "$dest/gpu-build.log" 2>&1
  rc=$?
  tail -5 "$dest/gpu-build.log"
  if [ $rc -eq 0 ]; then bench_exe=./build-gpu/rk_gpu_bench; else echo "build failed (see gpu-build.log)"; rc_all=1; fi
fi

if [ $benchbin = 1 ] && [ -n "$bench_exe" ]; then
  step "CUDA vs CPU checks, then GPU benchmarks"
  timeout 300 "$bench_exe" "$dest/gpu-results.json" $quick > "$dest/gpu-bench.log" 2>&1
  bench_rc=$?
  grep -vE "^(check ok|\|)" "$dest/gpu-bench.log" | tail -n 60
  echo "(rk_gpu_bench exit $bench_rc; $(grep -c '^check ok' "$dest/gpu-bench.log") checks ok)"
  [ $bench_rc -eq 0 ] || rc_all=1
fi

if [ -n "$bench_exe" ]; then
  step "C ABI from C99 against the CUDA library (device entry point on a user stream)"
  if [ -f "$tools/c_abi_test" ]; then
    LD_LIBRARY_PATH="$tools" "$tools/c_abi_test" > "$dest/gpu-c-abi.log" 2>&1
  else
    gcc -std=c99 -Wall -Wextra -Werror -O2 -Isrc/include tests/c_abi/c_abi_test.c -L"$PWD/build-gpu" -lrlhf_kernels -lm \
      -Wl,-rpath,"$PWD/build-gpu" -o build-gpu/c_abi_test > "$dest/gpu-c-abi.log" 2>&1 && ./build-gpu/c_abi_test >> "$dest/gpu-c-abi.log" 2>&1
  fi
  capi_rc=$?
  grep -vE "^ok" "$dest/gpu-c-abi.log" | tail -8
  [ $capi_rc -eq 0 ] || rc_all=1
fi

if [ $vitest = 1 ] && [ -x "$tools/bin/node" ] && [ -f "$tools/rlhf_kernels.node" ]; then
  step "vitest: the whole suite with the CUDA addon on this device"
  export PATH="$tools/bin:$PATH" RLHF_KERNELS_ADDON="$tools/rlhf_kernels.node" RLHF_KERNELS_REQUIRE_NATIVE=1
  node -e "const r=require('$tools/rlhf_kernels.node').info(); console.log(JSON.stringify(r.cuda))"
  timeout 300 node node_modules/vitest/vitest.mjs run --reporter=dot --reporter=json --outputFile.json="$dest/vitest-cuda.json" \
    > "$dest/vitest-cuda.log" 2>&1
  vrc=$?
  node -e '
    const r = require(process.argv[1]);
    for (const f of r.testResults) for (const t of f.assertionResults)
      if (t.status === "failed") console.log("FAIL", f.name.replace(/.*\/tests\//, "tests/"), "|", t.fullName, "|", (t.failureMessages[0] || "").split("\n")[0].slice(0, 300));
    console.log(`vitest on cuda: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`);' "$dest/vitest-cuda.json" 2>&1 | tail -n 60 \
    || tail -40 "$dest/vitest-cuda.log"
  [ $vrc -eq 0 ] || rc_all=1
fi

if [ $torch = 1 ]; then
  step "PyTorch eager baselines (same shapes)"
  if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    timeout 180 python3 bench/gpu/torch_baselines.py "$dest/gpu-torch.json" > "$dest/gpu-torch.log" 2>&1
    grep -E "^\||device:|skipped" "$dest/gpu-torch.log"
  else
    echo "no PyTorch with CUDA here: baselines skipped"
  fi
fi

step "summary"
[ -f "$dest/gpu-bench.log" ] && { grep -E "^(CHECK FAIL|GPU checks|device)" "$dest/gpu-bench.log"; grep -E "^\|" "$dest/gpu-bench.log"; }
[ -f "$dest/gpu-c-abi.log" ] && grep -E "^C ABI" "$dest/gpu-c-abi.log"
echo "results: $dest/gpu-results.json $dest/gpu-torch.json $dest/vitest-cuda.json"
exit $rc_all
