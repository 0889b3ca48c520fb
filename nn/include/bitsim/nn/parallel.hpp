// parallel_for over a fixed number of work items: the split of the work never depends on the thread
// count (each item is computed the same way by whichever thread takes it), so results are
// identical for any number of threads. The threads are a pool kept for the process, so a call
// costs a wake-up rather than thread creation (and within tens of microseconds of the last, not
// even that: idle threads poll that long before they sleep); a parallel_for inside another runs
// serially.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>

namespace bitsim::nn {

int threads();

namespace detail {
// Runs `job` on `helpers` pool threads and on the calling thread; returns when all have returned.
// `job` must not throw. One job at a time: concurrent callers take turns.
void run_on_pool(int helpers, const std::function<void()>& job);
// Whether this thread is inside a parallel_for (nested calls run serially instead of waiting on
// the pool they are part of).
bool& in_parallel_for();
}  // namespace detail

template <class Fn>
void parallel_for(std::int64_t items, Fn&& fn) {
  const int t = int(std::min<std::int64_t>(threads(), items));
  if (t <= 1 || detail::in_parallel_for()) {
    for (std::int64_t i = 0; i < items; ++i) fn(i);
    return;
  }
  std::atomic<std::int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  const std::function<void()> work = [&] {
    detail::in_parallel_for() = true;
    try {
      for (std::int64_t i; (i = next.fetch_add(1)) < items;) fn(i);
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
      next = items;
    }
    detail::in_parallel_for() = false;
  };
  detail::run_on_pool(t - 1, work);
  if (error) std::rethrow_exception(error);
}

// fn(begin, end) over [0, n) in fixed blocks of `block` elements, a block per work item: for
// element-wise loops, each element computed the same way whichever thread takes its block.
template <class Fn>
void parallel_blocks(std::int64_t n, std::int64_t block, Fn&& fn) {
  parallel_for((n + block - 1) / block, [&](std::int64_t b) { fn(b * block, std::min(n, (b + 1) * block)); });
}

}  // namespace bitsim::nn
