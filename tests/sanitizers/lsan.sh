#!/usr/bin/env bash
# LeakSanitizer + ASan + UBSan over the CPU kernels without Node (see kernels_lsan.cc for why):
#   bash tests/sanitizers/lsan.sh     (~1 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
# With RK_LSAN_OBJS=<dir> the kernels' objects of an ASan build are linked instead of compiling
# src/cpu again (.ci/run: build/Release/obj.target/rlhf_kernels/src/cpu after npm run build:asan).
out=$(mktemp -d)/kernels_lsan
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-math-errno -fno-trapping-math -I.)
if [ -n "${RK_LSAN_OBJS:-}" ]; then
  g++ "${flags[@]}" -o "$out" tests/sanitizers/kernels_lsan.cc "$RK_LSAN_OBJS"/*.o -lpthread
else
  g++ "${flags[@]}" -o "$out" tests/sanitizers/kernels_lsan.cc src/cpu/*.cc -lpthread
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# the check can fail: a deliberate leak must be reported
if "$out" --leak >/dev/null 2>&1; then echo "kernels_lsan: LeakSanitizer did not report a deliberate leak" >&2; exit 1; fi
"$out"
