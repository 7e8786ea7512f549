// Removal by tombstone, for indexes whose structures keep naming a removed
// vector's slot (rp_forest's leaves, lsh's buckets): the label is forgotten,
// the slot is marked, searches skip marked slots. Nothing is reclaimed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/labels.hpp"

namespace annulus {

class tombstones {
 public:
  /// Room for slots [0, slots); new slots start alive.
  void resize(std::size_t slots) { dead_.resize(slots, 0); }
  /// Forgets `label` in `labels` and marks its slot. Throws invalid_argument
  /// ("<who>::remove: label L is not in the index") if absent.
  void remove(label_map& labels, label_t label, std::string_view who) {
    const auto s = labels.find(label);
    if (!s)
      throw invalid_argument(std::string(who) + "::remove: label " + std::to_string(label) +
                             " is not in the index");
    labels.erase(label);
    dead_[*s] = 1;
    ++removed_;
  }
  /// Whether slot s was removed (one load, and none while nothing was).
  bool dead(std::size_t s) const { return removed_ != 0 && dead_[s] != 0; }
  std::size_t removed() const { return removed_; }
  std::size_t memory_bytes() const { return dead_.capacity(); }

 private:
  std::vector<std::uint8_t> dead_;  // 1 = removed, per slot
  std::size_t removed_ = 0;
};

}  // namespace annulus
