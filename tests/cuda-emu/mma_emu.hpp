// Host emulation of a CUDA thread block for kernels written against cuda/mma.cuh: every CUDA
// thread is a fiber (ucontext stacks, switched with _setjmp/_longjmp: no system call per
// switch), all on one OS thread; __syncthreads / warp collectives are barriers at which the
// scheduler switches fibers (in a seeded random order, so that interleavings at barriers vary).
// The warp-level primitives follow the per-lane semantics of the PTX ISA:
//   - mma.sync.m16n8k16 .f16/.bf16 → .f32: the A/B/C fragments of the 32 lanes are decoded with
//     the ISA's layouts (cuda/mma.cuh lists them), products exact, sums in double, rounded once;
//   - ldmatrix .x4 (and .trans): lanes 8i..8i+7 give the rows of matrix i; register i of lane l
//     is row l/4, elements 2(l%4), 2(l%4)+1 (.trans: column l/4 of rows 2(l%4), 2(l%4)+1); every
//     row address is checked (16-byte aligned, inside the dynamic shared memory) and the bank
//     conflicts of each 8-row phase are counted;
//   - cp.async: the copy happens at the cp.async.wait_group that retires its group (in order);
//     at issue the destination is poisoned with 0xff bytes (NaN in f16/bf16), so reading a tile
//     before the wait and the barrier shows up as NaN; zero fill when fill = false; the source
//     must lie in a registered global buffer.
// Shuffles, votes and __syncthreads_or exchange through per-warp / per-block slots between two
// barriers. A round of the scheduler in which no fiber moves is reported as a deadlock (a
// collective reached by part of a warp or block).
#pragma once
#include <setjmp.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <type_traits>
#include <vector>

#include "src/core/common.hpp"
#include "src/include/rk_common.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __launch_bounds__(...)
#define __shared__ static
#define RK_INF rk::inf_f()

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};
struct uint4 {
  unsigned x, y, z, w;
};
struct float2 {
  float x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }

// ---------------------------------------------------------------------------------------------
// Fibers and the block scheduler

namespace emu {

struct Fiber {
  ucontext_t uc;
  jmp_buf jb;
  std::vector<char> stack;
  bool started = false, done = false;
};

struct Block {
  unsigned nthreads = 0;
  std::vector<Fiber> fib;
  jmp_buf sched;
  int cur = -1;
  unsigned long long progress = 0;  // bumped by every barrier arrival / release
  // block barrier
  unsigned bArrived = 0, bGen = 0;
  int bOrAcc = 0, bOrResult = 0;
  // warp barriers and exchange slots
  unsigned wArrived[32] = {}, wGen[32] = {};
  uint64_t slot[32][32][8];
  const void* ptr[32][32];
  // cp.async: per thread, pending copies with their group numbers
  struct Copy { void* dst; const void* src; bool fill; unsigned group; };
  std::vector<std::vector<Copy>> pending;
  std::vector<unsigned> openGroup;
};

inline Block* g_block = nullptr;
inline std::mt19937 g_rng(12345);
inline std::vector<unsigned char> g_smem;  // dynamic shared memory of the running block
inline size_t g_smem_bytes = 0;
inline std::vector<std::pair<const char*, const char*>> g_global;  // registered global ranges
inline int g_max_conflict = 1;                                      // worst ldmatrix phase (ways)
inline unsigned long long g_ldsm = 0, g_mma = 0;

}  // namespace emu

inline dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace emu {

inline void fail(const char* what) {
  fprintf(stderr, "EMULATION ERROR: %s (block %u,%u,%u thread %u)\n", what, blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x);
  exit(3);
}

inline void yield() {
  Block& b = *g_block;
  if (!_setjmp(b.fib[b.cur].jb)) _longjmp(b.sched, 1);
}

inline void block_barrier() {
  Block& b = *g_block;
  const unsigned gen = b.bGen;
  ++b.progress;
  if (++b.bArrived == b.nthreads) {
    b.bArrived = 0;
    b.bOrResult = b.bOrAcc;
    b.bOrAcc = 0;
    ++b.bGen;
    yield();  // let the others run first now and then (the scheduler order is random anyway)
  } else {
    while (b.bGen == gen) yield();
  }
}

inline void warp_barrier() {
  Block& b = *g_block;
  const unsigned w = threadIdx.x / 32, gen = b.wGen[w];
  ++b.progress;
  if (++b.wArrived[w] == 32) {
    b.wArrived[w] = 0;
    ++b.wGen[w];
  } else {
    while (b.wGen[w] == gen) yield();
  }
}

inline unsigned lane() { return threadIdx.x & 31; }
inline unsigned warp() { return threadIdx.x >> 5; }

// Each lane publishes n 64-bit words, then reads any lane's words (between two warp barriers).
template <class F>
inline void exchange(const uint64_t* mine, int n, F&& read) {
  Block& b = *g_block;
  for (int i = 0; i < n; ++i) b.slot[warp()][lane()][i] = mine[i];
  warp_barrier();
  read(b.slot[warp()]);
  warp_barrier();
}

struct TrampolineArgs { unsigned tid; void (*fn)(void*); void* ctx; };
inline TrampolineArgs g_tramp;

inline void tramp_entry() {
  TrampolineArgs t = g_tramp;
  Block& b = *g_block;
  threadIdx.x = t.tid;
  t.fn(t.ctx);
  b.fib[b.cur].done = true;
  if (!b.pending[t.tid].empty()) fail("cp.async copies still pending at thread exit");
  _longjmp(b.sched, 1);
}

// Runs fn (the kernel body for the current blockIdx) on nthreads fibers.
template <class F>
inline void run_block(unsigned nthreads, F&& fn) {
  Block b;
  b.nthreads = nthreads;
  b.fib.resize(nthreads);
  b.pending.assign(nthreads, {});
  b.openGroup.assign(nthreads, 0);
  g_block = &b;
  std::vector<unsigned> order(nthreads);
  for (unsigned i = 0; i < nthreads; ++i) order[i] = i;
  using Fn = std::remove_reference_t<F>;
  auto call = [](void* c) { (*static_cast<Fn*>(c))(); };
  unsigned alive = nthreads;
  while (alive) {
    std::shuffle(order.begin(), order.end(), g_rng);
    const unsigned long long before = b.progress;
    bool finishedOne = false;
    for (unsigned i : order) {
      Fiber& f = b.fib[i];
      if (f.done) continue;
      b.cur = (int)i;
      threadIdx.x = i;
      if (!_setjmp(b.sched)) {
        if (!f.started) {
          f.started = true;
          f.stack.resize(512 * 1024);
          getcontext(&f.uc);
          f.uc.uc_stack.ss_sp = f.stack.data();
          f.uc.uc_stack.ss_size = f.stack.size();
          f.uc.uc_link = nullptr;
          g_tramp = {i, call, (void*)&fn};
          makecontext(&f.uc, (void (*)())tramp_entry, 0);
          setcontext(&f.uc);
        } else {
          _longjmp(f.jb, 1);
        }
      }
      if (f.done) --alive, finishedOne = true;
    }
    if (alive && b.progress == before && !finishedOne) {
      fprintf(stderr, "EMULATION ERROR: deadlock in block %u,%u,%u (%u threads still waiting)\n", blockIdx.x, blockIdx.y,
              blockIdx.z, alive);
      exit(3);
    }
  }
  g_block = nullptr;
}

// Runs kernel(args...) over grid × block with dyn_smem bytes of dynamic shared memory.
template <class K>
inline void launch(dim3 grid, unsigned threads, size_t dyn_smem, K&& body) {
  gridDim = grid;
  blockDim = dim3{threads, 1, 1};
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        blockIdx = dim3{x, y, z};
        g_smem.assign(dyn_smem + 128, 0xff);  // uninitialised shared memory reads as NaN
        g_smem_bytes = dyn_smem;
        run_block(threads, body);
      }
}

inline unsigned char* smem_base() {
  uintptr_t p = reinterpret_cast<uintptr_t>(g_smem.data());
  return reinterpret_cast<unsigned char*>((p + 127) & ~(uintptr_t)127);
}

inline void check_smem(const void* p, size_t n, const char* what) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  if (c < smem_base() || c + n > smem_base() + g_smem_bytes) fail(what);
}

inline uint16_t f32_to_f16(float f) {  // round to nearest even (all cases)
  uint32_t u = rk::float_to_bits(f), sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to ≥ 65520: inf
  if (a < 0x38800000u) {                                     // subnormal f16 (or zero)
    float x = rk::bits_to_float(a) * 16777216.0f;             // units of 2^-24
    float r = std::nearbyint(x);                               // ties to even (default mode)
    return (uint16_t)(sign | (uint32_t)r);
  }
  uint32_t e = (a >> 23) - 112, m = a & 0x7fffffu;
  uint32_t h = (e << 10) | (m >> 13), rem = m & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return (uint16_t)(sign | h);
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = rk::float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace emu

// ---------------------------------------------------------------------------------------------
// CUDA built-ins used by the kernels

inline void __syncthreads() { emu::block_barrier(); }
inline int __syncthreads_or(int v) {
  emu::g_block->bOrAcc |= v != 0;
  emu::block_barrier();
  return emu::g_block->bOrResult;
}
inline void __syncwarp(unsigned = 0xffffffffu) { emu::warp_barrier(); }

template <class T>
inline T shfl_any(T v, unsigned src) {
  uint64_t w = 0;
  memcpy(&w, &v, sizeof v);
  T r{};
  emu::exchange(&w, 1, [&](uint64_t (*s)[8]) { memcpy(&r, &s[src & 31][0], sizeof r); });
  return r;
}
inline int __shfl_sync(unsigned, int v, int src) { return shfl_any(v, (unsigned)src); }
inline float __shfl_sync(unsigned, float v, int src) { return shfl_any(v, (unsigned)src); }
inline float __shfl_xor_sync(unsigned, float v, int m) { return shfl_any(v, emu::lane() ^ (unsigned)m); }
inline int __shfl_xor_sync(unsigned, int v, int m) { return shfl_any(v, emu::lane() ^ (unsigned)m); }
inline unsigned __ballot_sync(unsigned, bool p) {
  uint64_t w = p;
  unsigned r = 0;
  emu::exchange(&w, 1, [&](uint64_t (*s)[8]) {
    for (int l = 0; l < 32; ++l) r |= (s[l][0] ? 1u : 0u) << l;
  });
  return r;
}
inline int __all_sync(unsigned m, bool p) { return __ballot_sync(m, p) == 0xffffffffu; }
inline int __any_sync(unsigned m, bool p) { return __ballot_sync(m, p) != 0; }
inline int atomicAdd(int* p, int v) { int o = *p; *p += v; return o; }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { auto o = *p; *p += v; return o; }
inline unsigned atomicMin(unsigned* p, unsigned v) { unsigned o = *p; if (v < o) *p = v; return o; }

// ---------------------------------------------------------------------------------------------
// cuda/mma.cuh, emulated

namespace rkmma {

inline unsigned char* dyn_smem() { return emu::smem_base(); }

inline void cp_async16(void* smem, const void* gmem, bool fill) {
  emu::check_smem(smem, 16, "cp.async destination outside the dynamic shared memory");
  if (reinterpret_cast<uintptr_t>(smem) % 16 || reinterpret_cast<uintptr_t>(gmem) % 16) emu::fail("cp.async address not 16-byte aligned");
  if (fill) {
    const char* g = static_cast<const char*>(gmem);
    bool ok = false;
    for (auto& r : emu::g_global) ok |= g >= r.first && g + 16 <= r.second;
    if (!ok) emu::fail("cp.async source outside the registered global buffers");
  }
  memset(smem, 0xff, 16);  // poison until the wait that completes it
  auto& b = *emu::g_block;
  b.pending[threadIdx.x].push_back({smem, gmem, fill, b.openGroup[threadIdx.x]});
}
inline void cp_async_commit() { ++emu::g_block->openGroup[threadIdx.x]; }
template <int N>
inline void cp_async_wait() {
  auto& b = *emu::g_block;
  auto& q = b.pending[threadIdx.x];
  const unsigned committed = b.openGroup[threadIdx.x];  // groups 0 … committed−1 are committed
  std::vector<emu::Block::Copy> keep;
  for (auto& c : q) {
    if (c.group + N < committed) {  // all but the newest N committed groups complete
      if (c.fill) memcpy(c.dst, c.src, 16);
      else memset(c.dst, 0, 16);
    } else {
      keep.push_back(c);
    }
  }
  q.swap(keep);
  ++b.progress;
  emu::yield();  // other threads may run between the wait and the barrier
}

inline void ldsm_impl(uint32_t (&r)[4], const void* p, bool trans) {
  ++emu::g_ldsm;
  emu::check_smem(p, 16, "ldmatrix row outside the dynamic shared memory");
  if (reinterpret_cast<uintptr_t>(p) % 16) emu::fail("ldmatrix row address not 16-byte aligned");
  uint64_t w = reinterpret_cast<uintptr_t>(p);
  const unsigned l = emu::lane();
  emu::exchange(&w, 1, [&](uint64_t (*s)[8]) {
    auto row = [&](unsigned src) { return reinterpret_cast<const uint16_t*>(s[src][0]); };
    if (l == 0)
      for (int i = 0; i < 4; ++i) {  // bank conflicts of the phase of matrix i (8 rows × 16 bytes)
        int count[32] = {};
        for (int k = 0; k < 8; ++k)
          for (int wd = 0; wd < 4; ++wd) ++count[((s[8 * i + k][0] - reinterpret_cast<uintptr_t>(emu::smem_base())) / 4 + wd) % 32];
        emu::g_max_conflict = std::max(emu::g_max_conflict, *std::max_element(count, count + 32));
      }
    for (int i = 0; i < 4; ++i) {
      uint16_t lo, hi;
      if (!trans) {
        const uint16_t* rp = row(8 * i + l / 4);
        lo = rp[2 * (l % 4)];
        hi = rp[2 * (l % 4) + 1];
      } else {
        lo = row(8 * i + 2 * (l % 4))[l / 4];
        hi = row(8 * i + 2 * (l % 4) + 1)[l / 4];
      }
      r[i] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
  });
}
inline void ldsm_x4(uint32_t (&r)[4], const void* p) { ldsm_impl(r, p, false); }
inline void ldsm_x4_trans(uint32_t (&r)[4], const void* p) { ldsm_impl(r, p, true); }

template <int DT>
inline float widen(uint16_t x) {
  return DT == RK_DT_BF16 ? rk::bf16_to_float(x) : rk::f16_to_float(x);
}

template <int DT>
inline void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  ++emu::g_mma;
  uint64_t mine[6] = {a[0], a[1], a[2], a[3], b0, b1};
  const unsigned l = emu::lane(), g = l / 4, t = l % 4;
  float out[4];
  emu::exchange(mine, 6, [&](uint64_t (*s)[8]) {
    auto half = [](uint64_t reg, int k) { return (uint16_t)(k & 1 ? reg >> 16 : reg & 0xffffu); };
    // A[row][k]: lane (row % 8)·4 + (k % 8)/2, register (row ≥ 8) + 2·(k ≥ 8), half k & 1
    auto A = [&](unsigned row, unsigned k) { return widen<DT>(half(s[(row % 8) * 4 + (k % 8) / 2][(row >= 8) + 2 * (k >= 8)], k)); };
    // B[k][n]: lane n·4 + (k % 8)/2, register 4 + (k ≥ 8), half k & 1
    auto B = [&](unsigned k, unsigned n) { return widen<DT>(half(s[n * 4 + (k % 8) / 2][4 + (k >= 8)], k)); };
    for (int c = 0; c < 4; ++c) {
      const unsigned row = g + 8 * (c >> 1), col = 2 * t + (c & 1);
      double acc = 0;
      for (unsigned k = 0; k < 16; ++k) acc += (double)A(row, k) * (double)B(k, col);
      out[c] = (float)((double)d[c] + acc);
    }
  });
  for (int c = 0; c < 4; ++c) d[c] = out[c];
}

inline float ex2(float x) { return std::exp2(x); }

template <int DT>
inline uint32_t pack2(float lo, float hi) {
  auto cv = [](float f) { return DT == RK_DT_BF16 ? emu::f32_to_bf16(f) : emu::f32_to_f16(f); };
  return (uint32_t)cv(lo) | ((uint32_t)cv(hi) << 16);
}

}  // namespace rkmma
