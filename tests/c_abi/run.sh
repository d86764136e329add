#!/usr/bin/env bash
# Builds the C ABI libraries (CPU only, or with CUDA when RK_CAPI_CUDA=1) with CMake and checks
# them from a C99 program compiled with gcc -std=c99 -Wall -Werror, linked once against the static
# and once against the shared library. Usage: bash tests/c_abi/run.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="${1:-build-capi}"
cuda=OFF; [ "${RK_CAPI_CUDA:-0}" = 1 ] && cuda=ON
gen=""; command -v ninja >/dev/null && gen="-G Ninja"
if [ ! -f "$dir/librlhf_kernels.a" ] || [ "${RK_CAPI_REBUILD:-1}" = 1 ]; then
  cmake -S . -B "$dir" $gen -DRK_LIBS_ONLY=ON -DRK_ENABLE_CUDA=$cuda -DRK_REQUIRE_CUDA=$cuda -DCMAKE_BUILD_TYPE=Release >"$dir.log" 2>&1 ||
    { tail -20 "$dir.log"; exit 1; }
  cmake --build "$dir" -j "$(nproc)" >>"$dir.log" 2>&1 || { tail -20 "$dir.log"; exit 1; }
fi
extra=""
if [ "$cuda" = ON ]; then
  cudalib="$(dirname "$(dirname "$(command -v nvcc)")")/lib64"
  [ -d "$cudalib" ] || cudalib="$(dirname "$(dirname "$(command -v nvcc)")")/lib"
  extra="-L$cudalib -lcudart_static -ldl -lrt"
fi
flags="-std=c99 -Wall -Wextra -Werror -O2 -Isrc/include"
gcc $flags tests/c_abi/c_abi_test.c "$dir/librlhf_kernels.a" -lstdc++ -lm -lpthread $extra -o "$dir/c_abi_test_static"
abs="$(cd "$dir" && pwd)"
gcc $flags tests/c_abi/c_abi_test.c -L"$abs" -lrlhf_kernels -lm -Wl,-rpath,"$abs" -o "$dir/c_abi_test_shared"
echo "--- static library"
"$dir/c_abi_test_static"
echo "--- shared library"
"$dir/c_abi_test_shared" | tail -1
