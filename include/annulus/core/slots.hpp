// Which slots of an index hold which labels, and which slots are free: the
// label map plus a free list, for indexes that remove vectors and reuse
// their slots. An add plans its slots first (plan: free ones first, then
// fresh ones), does whatever can fail, then commits. A removed vector's slot
// is freed at once (release: the index dropped every reference to it) or
// retired (retire: the index still names it, as a tombstone) until the index
// has dropped those references and recycles it (core/tombstones.hpp).
// Every call either does all it says or, on a throw, changes nothing.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/labels.hpp"

namespace annulus {

class slot_directory {
 public:
  /// Vectors present (slots handed out minus free and retired ones).
  std::size_t live() const { return labels_.size() - free_.size() - retired_; }
  /// Slots retired and not yet recycled.
  std::size_t retired() const { return retired_; }
  /// Slots ever handed out: every slot is below this.
  std::size_t slots() const { return labels_.size(); }
  label_t label(slot_t s) const { return labels_.label(s); }
  std::optional<slot_t> find(label_t label) const { return labels_.find(label); }

  /// The slot of `label`; throws invalid_argument naming `what` if absent.
  slot_t slot_of(label_t label, const char* what) const {
    const auto s = labels_.find(label);
    if (!s) throw invalid_argument(std::string(what) + ": label " + std::to_string(label) + " is not in the index");
    return *s;
  }

  /// Throws unless `count` vectors with `labels` (empty = default labels) can be added.
  void check_new(std::size_t count, std::span<const label_t> labels) const {
    labels_.check_new(count, labels);
  }

  /// The slots the next add of `count` vectors gets: free ones (most recently
  /// freed first), then fresh ones from slots(). Changes nothing.
  std::vector<slot_t> plan(std::size_t count) const {
    std::vector<slot_t> out(count);
    const std::size_t reused = std::min(count, free_.size());
    for (std::size_t i = 0; i < reused; ++i) out[i] = free_[free_.size() - 1 - i];
    for (std::size_t i = reused; i < count; ++i) out[i] = slot_t(labels_.size() + i - reused);
    return out;
  }

  /// Records an add that plan(count) planned, with check_new-approved
  /// labels. On a throw (out of memory) nothing is recorded.
  void commit(std::size_t count, std::span<const label_t> labels) {
    const std::size_t reused = std::min(count, free_.size());
    std::size_t assigned = 0;
    try {
      for (; assigned < reused; ++assigned)
        labels_.assign(free_[free_.size() - 1 - assigned],
                       labels.empty() ? labels_.default_label(0) : labels[assigned]);
      labels_.append(count - reused, labels.empty() ? labels : labels.subspan(reused));
    } catch (...) {  // undo the assignments, latest first (cannot throw)
      for (std::size_t i = assigned; i-- > 0;) {
        const slot_t s = free_[free_.size() - 1 - i];
        labels_.unassign(s, labels_.label(s));
      }
      throw;
    }
    free_.resize(free_.size() - reused);
  }

  /// Forgets `label` and frees its slot, which it returns. Throws
  /// invalid_argument (unknown label) before changing anything.
  slot_t release(label_t label, const char* what) {
    const slot_t s = slot_of(label, what);
    free_.reserve(free_.size() + retired_ + 1);  // may throw: nothing changed yet
    labels_.erase(label);                        // may build the label table; on a throw it did not
    free_.push_back(s);
    return s;
  }

  /// Forgets `label` but keeps its slot out of use, neither live nor free:
  /// the index still names it somewhere and recycles it once it no longer
  /// does. Returns the slot. Throws invalid_argument (unknown label) or
  /// std::bad_alloc before changing anything.
  slot_t retire(label_t label, const char* what) {
    const slot_t s = slot_of(label, what);
    free_.reserve(free_.size() + retired_ + 1);  // so that recycle never allocates
    labels_.erase(label);
    ++retired_;
    return s;
  }
  /// Frees retired slots for reuse by later adds. Cannot throw.
  void recycle(std::span<const slot_t> slots) noexcept {
    for (const slot_t s : slots) free_.push_back(s);  // within the room retire reserved
    retired_ -= slots.size();
  }

  std::size_t memory_bytes() const { return labels_.memory_bytes() + free_.capacity() * sizeof(slot_t); }

 private:
  label_map labels_;
  std::vector<slot_t> free_;   // capacity >= free_.size() + retired_
  std::size_t retired_ = 0;
};

}  // namespace annulus
