// The worker pool behind parallel_for: every item runs exactly once whatever the thread count,
// nested calls run (serially) instead of deadlocking, exceptions reach the caller, and a pool
// reused thousands of times stays correct.
#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "bitsim/nn/gemm.hpp"
#include "bitsim/nn/parallel.hpp"

namespace {

using namespace bitsim::nn;

TEST(NnParallel, EveryItemOnceForAnyThreadCount) {
  for (int t : {1, 2, 3, 8}) {
    set_threads(t);
    for (std::int64_t items : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(items));
      parallel_for(items, [&](std::int64_t i) { ++hits[std::size_t(i)]; });
      for (std::int64_t i = 0; i < items; ++i) EXPECT_EQ(hits[std::size_t(i)].load(), 1) << t << " " << items << " " << i;
    }
  }
  set_threads(0);
}

TEST(NnParallel, NestedCallsAndRepeatedUse) {
  set_threads(3);
  std::atomic<std::int64_t> sum{0};
  for (int round = 0; round < 2000; ++round)
    parallel_for(4, [&](std::int64_t i) { parallel_for(5, [&](std::int64_t j) { sum += i * 5 + j; }); });
  EXPECT_EQ(sum.load(), 2000 * (19 * 20 / 2));
  set_threads(0);
}

TEST(NnParallel, AnExceptionReachesTheCaller) {
  set_threads(3);
  EXPECT_THROW(parallel_for(100, [](std::int64_t i) {
                 if (i == 37) throw std::runtime_error("item 37");
               }),
               std::runtime_error);
  // The pool is usable afterwards.
  std::atomic<int> n{0};
  parallel_for(50, [&](std::int64_t) { ++n; });
  EXPECT_EQ(n.load(), 50);
  set_threads(0);
}

}  // namespace
