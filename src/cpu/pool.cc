#include "pool.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace rk {
namespace {

struct Job {
  const std::function<void(size_t, size_t)>* fn;
  size_t n, chunk, nchunks;
  std::atomic<size_t> next{0};
  std::atomic<size_t> remaining{0};
  std::mutex m;
  std::condition_variable done;
  std::exception_ptr error;  // the first exception a chunk threw (guarded by m)
  // Claims and runs chunks until none is left. Returns after the last claimed chunk. An
  // exception (std::bad_alloc from a kernel's scratch vector) never escapes a worker thread,
  // where it would terminate the process: it is kept and rethrown to the caller by run().
  void work() {
    for (;;) {
      size_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= nchunks) return;
      size_t b = c * chunk, e = std::min(n, b + chunk);
      try {
        (*fn)(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> g(m);
        if (!error) error = std::current_exception();
      }
      if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> g(m);
        done.notify_all();
      }
    }
  }
};

class Pool {
 public:
  Pool() {
    int hw = (int)std::thread::hardware_concurrency();
    int n = hw > 0 ? std::min(hw, 8) : 1;
    if (const char* s = std::getenv("RLHF_KERNELS_THREADS")) {
      int v = std::atoi(s);
      if (v >= 1) n = std::min(v, 64);
    }
    threads_.store(n);
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> g(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int threads() const { return threads_.load(std::memory_order_relaxed); }
  void set_threads(int n) {
    std::lock_guard<std::mutex> use(use_);
    threads_.store(std::max(1, std::min(n, 64)), std::memory_order_relaxed);
  }
  void run(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
    if (grain == 0) grain = 1;
    if (threads() <= 1 || n <= grain) { fn(0, n); return; }
    // One parallel_for at a time. A concurrent caller (another JS thread, a libuv worker running
    // an async op, or a kernel nested in a chunk) runs its range serially on its own thread: the
    // cores are then shared by the pool's job and that thread, and nobody waits for the other.
    std::unique_lock<std::mutex> use(use_, std::try_to_lock);
    if (!use.owns_lock()) { fn(0, n); return; }
    ensure_workers();
    int t = threads();
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    job->n = n;
    // Many small chunks (8 per thread): a worker that wakes late then leaves the caller only a
    // small tail to wait for. `grain` decides whether to go parallel at all, not the chunk size.
    size_t want = (size_t)t * 8;
    size_t chunk = std::max(grain / 16 + 1, (n + want - 1) / want);
    job->chunk = chunk;
    job->nchunks = (n + chunk - 1) / chunk;
    job->remaining.store(job->nchunks);
    {
      std::lock_guard<std::mutex> g(m_);
      job_ = job;
      ++gen_;
    }
    cv_.notify_all();
    job->work();
    {
      std::unique_lock<std::mutex> g(job->m);
      job->done.wait(g, [&] { return job->remaining.load(std::memory_order_acquire) == 0; });
    }
    {
      std::lock_guard<std::mutex> g(m_);
      job_.reset();
    }
    if (job->error) std::rethrow_exception(job->error);  // every chunk has finished: nothing runs on
  }

 private:
  void ensure_workers() {
    // (a thread that cannot be created is not an error: the caller claims every chunk itself)
    while ((int)workers_.size() < threads() - 1) {
      try {
        workers_.emplace_back([this] { loop(); });
      } catch (...) {
        break;
      }
    }
  }
  void loop() {
    unsigned long seen = 0;
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> g(m_);
        cv_.wait(g, [&] { return stop_ || gen_ != seen; });
        if (stop_) return;
        seen = gen_;
        job = job_;
      }
      if (job) job->work();
    }
  }
  std::atomic<int> threads_{1};  // read without use_ by callers deciding to go serial
  std::mutex use_;  // one parallel_for at a time
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;
  std::shared_ptr<Job> job_;
  unsigned long gen_ = 0;
  bool stop_ = false;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: workers may outlive static destruction order
  return *p;
}

}  // namespace

int num_threads() { return pool().threads(); }
void set_num_threads(int n) { pool().set_threads(n); }
void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
  pool().run(n, grain, fn);
}

}  // namespace rk
