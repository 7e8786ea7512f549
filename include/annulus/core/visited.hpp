// A visited set for graph searches that clears in O(1): each slot holds the
// epoch (query number) that last visited it, so starting a new search is one
// increment; the array is zeroed only when the 16-bit epoch wraps, every
// 65,535 searches. Two bytes a slot: 2 MB for a million vectors, past a
// 512 KB L2. A bitset (125 KB) cleared by the words it touched measured no
// faster on 1,000,000 x 128 (+0-2%, within noise): the walk's wait moves to
// the next miss.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace annulus {

class visited_set {
 public:
  /// Starts a new search over slots [0, n): everything is unvisited.
  /// Allocates only when n exceeds every earlier n.
  void reset(std::size_t n) {
    if (tags_.size() < n) tags_.resize(n, 0);
    if (++epoch_ == 0) {
      std::fill(tags_.begin(), tags_.end(), std::uint16_t{0});
      epoch_ = 1;
    }
  }
  /// Slots this set can track (the n of the last reset, or more).
  std::size_t size() const { return tags_.size(); }
  bool contains(std::size_t s) const { return tags_[s] == epoch_; }
  /// Marks s visited; returns whether it was already.
  bool test_and_set(std::size_t s) {
    if (tags_[s] == epoch_) return true;
    tags_[s] = epoch_;
    return false;
  }

 private:
  std::vector<std::uint16_t> tags_;
  std::uint16_t epoch_ = 0;
};

}  // namespace annulus
