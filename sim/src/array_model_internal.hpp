// Internals of the closed-form array model (array_model.cpp), not part of sim's interface: here so
// that tests/sim/test_array_model.cpp can hold them to the plain implementations they replaced.
#pragma once

#include <cstdint>
#include <vector>

namespace bitsim::sim::detail {

// An LRU buffer of whole blocks with ids in [0, ids) (the same policy as the SystemC array's A and
// W buffers): a hit moves the block to the front; a miss keeps the block, evicting from the back,
// unless it is larger than the buffer, in which case it streams through. The ids of a tiled GEMM
// are dense and bounded, so the recency list is threaded through arrays indexed by id: no hashing
// and no allocation per access.
class LruBuffer {
 public:
  LruBuffer(std::int64_t capacity, std::int64_t ids);
  bool access(std::int64_t id, std::int64_t bytes);  // true on a hit

 private:
  struct Node {
    std::int64_t prev = -1, next = -1;  // prev == -1: not held
    std::int64_t bytes = 0;
  };
  void link_front(std::int64_t id);
  void unlink(std::int64_t id);
  std::int64_t cap_, used_ = 0;
  std::vector<Node> nodes_;  // one per id, then the list's head (front: head.next, back: head.prev)
  std::int64_t head_;
};
}  // namespace bitsim::sim::detail
