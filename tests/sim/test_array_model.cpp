// The closed-form array model's internals (sim/src/array_model_internal.hpp) against the plain
// implementations they replaced, kept here as oracles: the LRU buffer as a std::list with a hash
// map of its ids. Plain C++, no SystemC.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <list>
#include <random>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sim/src/array_model_internal.hpp"

namespace {

using namespace bitsim::sim;

// The LRU buffer as it was first written: a hit moves the block to the front; a miss keeps the
// block, evicting from the back, unless it is larger than the buffer.
class ListLru {
 public:
  explicit ListLru(std::int64_t capacity) : cap_(capacity) {}
  bool access(std::int64_t id, std::int64_t bytes) {
    if (const auto it = where_.find(id); it != where_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return true;
    }
    if (bytes > cap_) return false;
    while (used_ + bytes > cap_) {
      used_ -= order_.back().second;
      where_.erase(order_.back().first);
      order_.pop_back();
    }
    order_.emplace_front(id, bytes);
    where_[id] = order_.begin();
    used_ += bytes;
    return false;
  }

 private:
  std::int64_t cap_, used_ = 0;
  std::list<std::pair<std::int64_t, std::int64_t>> order_;
  std::unordered_map<std::int64_t, std::list<std::pair<std::int64_t, std::int64_t>>::iterator> where_;
};

// Random capacities (zero included) and block sizes (some larger than the buffer), accesses drawn
// from a small window that drifts so that hits, evictions and refetches all occur.
TEST(SimArrayModel, LruBufferMatchesTheListOracle) {
  std::mt19937_64 rng(7);
  auto uni = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  std::int64_t hits = 0, misses = 0, streamed = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const std::int64_t ids = uni(1, 300), cap = trial % 10 == 0 ? 0 : uni(1, 400);
    std::vector<std::int64_t> bytes(std::size_t(ids), 0);
    for (auto& b : bytes) b = uni(1, 10) == 1 ? cap + uni(1, 50) : uni(1, std::max<std::int64_t>(1, cap / uni(1, 8)));
    detail::LruBuffer lru(cap, ids);
    ListLru want(cap);
    const std::int64_t window = uni(1, ids);
    for (int i = 0; i < 3000; ++i) {
      const std::int64_t lo = std::min(ids - window, std::int64_t(i) * ids / 3000);
      const std::int64_t id = lo + uni(0, window - 1);
      const std::int64_t b = bytes[std::size_t(id)];
      const bool hit = want.access(id, b);
      ASSERT_EQ(lru.access(id, b), hit) << "trial " << trial << " access " << i << " id " << id;
      hits += hit, misses += !hit, streamed += b > cap;
    }
  }
  EXPECT_GT(hits, 100000);
  EXPECT_GT(misses, 100000);
  EXPECT_GT(streamed, 10000);
}

}  // namespace
