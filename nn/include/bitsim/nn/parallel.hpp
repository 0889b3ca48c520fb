// parallel_for over a fixed number of work items: the split of the work never depends on the thread
// count (each item is computed the same way by whichever thread takes it), so results are
// identical for any number of threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace bitsim::nn {

int threads();

template <class Fn>
void parallel_for(std::int64_t items, Fn&& fn) {
  const int t = int(std::min<std::int64_t>(threads(), items));
  if (t <= 1) {
    for (std::int64_t i = 0; i < items; ++i) fn(i);
    return;
  }
  std::atomic<std::int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    try {
      for (std::int64_t i; (i = next.fetch_add(1)) < items;) fn(i);
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
      next = items;
    }
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < t; ++i) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace bitsim::nn
