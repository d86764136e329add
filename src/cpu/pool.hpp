// A small thread pool for the CPU kernels.
//
// parallel_for(n, grain, fn) runs fn(begin, end) over [0, n). Below `grain` items, or when the
// pool is already in use by another thread, or with one thread configured, it runs fn(0, n)
// inline: a small call costs exactly the serial path. Above it, the range is cut into a few
// chunks per thread that the caller and the workers claim from one atomic counter. The caller
// works too and only waits for chunks a worker has actually claimed, so a worker that is slow to
// wake (the other core busy) costs nothing: the caller simply takes its chunks. Workers sleep on
// a condition variable; nothing spins.
#pragma once
#include <cstddef>
#include <functional>

namespace rk {

// Number of threads used (caller included). Defaults to the hardware concurrency, capped at 8,
// or RLHF_KERNELS_THREADS when set.
int num_threads();
void set_num_threads(int n);

void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

}  // namespace rk
