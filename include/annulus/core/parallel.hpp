// The library's parallel loop. parallel_for starts its worker threads for the
// call and joins them before returning: no thread, pool or setting outlives a
// call, so nothing is global and nothing needs OpenMP. The calling thread works
// too. Starting a thread costs tens of microseconds, which is noise next to
// the batch work (build, add, search_batch) this runs.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace annulus {

/// 0 means every core the machine reports (at least 1).
inline std::size_t resolve_threads(std::size_t threads) {
  if (threads != 0) return threads;
  return std::max<std::size_t>(1, std::thread::hardware_concurrency());
}

/// Calls body(i, worker) for every i in [0, n), spread over `threads` workers
/// (0 = all cores) in chunks of `grain` taken in order from a shared counter.
/// worker is in [0, used threads), so per-worker scratch can be indexed by it.
/// If a body throws, the remaining chunks are skipped and the first exception
/// is rethrown in the caller after every worker has joined. A worker thread
/// that cannot be started is not an error: the others take its chunks.
template <class Body>
void parallel_for(std::size_t n, std::size_t threads, Body&& body, std::size_t grain = 1) {
  if (n == 0) return;
  grain = std::max<std::size_t>(1, grain);
  const std::size_t chunks = (n + grain - 1) / grain;
  const std::size_t workers = std::min(resolve_threads(threads), chunks);
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first_error;
  std::mutex error_mutex;

  auto run = [&](std::size_t worker) {
    try {
      for (;;) {
        if (failed.load(std::memory_order_relaxed)) return;
        const std::size_t c = next.fetch_add(1, std::memory_order_relaxed);
        if (c >= chunks) return;
        const std::size_t end = std::min(n, (c + 1) * grain);
        for (std::size_t i = c * grain; i < end; ++i) body(i, worker);
      }
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!first_error) first_error = std::current_exception();
      failed.store(true, std::memory_order_relaxed);
    }
  };

  if (workers == 1) {
    run(0);
  } else {
    // A thread that cannot be started (out of memory, or none to be had)
    // leaves its share to the others: the loop runs on fewer workers, never
    // half done. Workers already started may be running the body meanwhile.
    std::vector<std::jthread> pool;
    try {
      pool.reserve(workers - 1);
      for (std::size_t w = 1; w < workers; ++w) pool.emplace_back(run, w);
    } catch (...) {
    }
    run(0);
  }  // jthreads join here
  if (first_error) std::rethrow_exception(first_error);
}

/// How many workers parallel_for will use for n items: size per-worker scratch by this.
inline std::size_t worker_count(std::size_t n, std::size_t threads, std::size_t grain = 1) {
  grain = std::max<std::size_t>(1, grain);
  return std::max<std::size_t>(1, std::min(resolve_threads(threads), (n + grain - 1) / grain));
}

}  // namespace annulus
