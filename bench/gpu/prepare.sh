#!/usr/bin/env bash
# Prepares .devnode/ (git-ignored) for a run of bench/gpu/run.sh on a GPU machine that has no Node:
# xz copies of this machine's node binary, of the node_modules that vitest needs, of the CPU+CUDA
# addon (build-cuda/, built here with cmake-js) and of the GPU check/bench binary. The device tool
# carries the folder (`carry: [".devnode"]`, ~40 MB); run.sh unpacks it and then also runs the
# vitest suite against the CUDA addon on the real device. Without .devnode/, run.sh builds the
# check binary there and skips the Node tests.
#   bash bench/gpu/prepare.sh            (builds build-cuda/ first when it is missing or stale)
set -euo pipefail
cd "$(dirname "$0")/../.."
export npm_config_nodedir="${npm_config_nodedir:-/usr}"
if [ ! -f build-cuda/Release/rlhf_kernels.node ] || [ -n "$(find src cuda bench/gpu CMakeLists.txt -newer build-cuda/Release/rlhf_kernels.node -type f | head -1)" ]; then
  echo "building build-cuda/ (cmake-js, CUDA required)"
  npm run build:cuda:require > /tmp/rk-prepare-build.log 2>&1 || { tail -30 /tmp/rk-prepare-build.log; exit 1; }
fi
rm -rf .devnode && mkdir -p .devnode
xz -T0 -6 -c build-cuda/Release/rlhf_kernels.node > .devnode/rlhf_kernels.node.xz
xz -T0 -6 -c build-cuda/rk_gpu_bench > .devnode/rk_gpu_bench.xz
gcc -std=c99 -Wall -Wextra -Werror -O2 -Isrc/include tests/c_abi/c_abi_test.c -Lbuild-cuda/Release -lrlhf_kernels -lm \
  -o /tmp/rk-c_abi_test && xz -T0 -6 -c /tmp/rk-c_abi_test > .devnode/c_abi_test.xz
xz -T0 -6 -c build-cuda/Release/librlhf_kernels.so > .devnode/librlhf_kernels.so.xz
[ -f .devnode-cache/node.xz ] && cmp -s .devnode-cache/node.version <(node --version) || {
  mkdir -p .devnode-cache; xz -T0 -6 -c "$(command -v node)" > .devnode-cache/node.xz; node --version > .devnode-cache/node.version; }
cp .devnode-cache/node.xz .devnode/node.xz
tar -cf - --exclude='node_modules/typescript' --exclude='node_modules/node-gyp' --exclude='node_modules/cmake-js' \
  --exclude='node_modules/@types' --exclude='node_modules/.vite' node_modules | xz -T0 -6 > .devnode/node_modules.tar.xz
git rev-parse HEAD > .devnode/commit
du -sh .devnode; ls -la .devnode
