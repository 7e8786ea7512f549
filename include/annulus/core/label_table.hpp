// label_map's label -> slot lookup: an open-addressing table (linear
// probing, at most 3/4 full) whose buckets hold only slots. A slot's label
// is read from label_map's own slot -> label array, which every call passes
// in, so a bucket is 4 bytes: 5-11 bytes an entry, where std::unordered_map's
// node, bucket pointer and links took about 40. At a million vectors whose
// labels are not their slot numbers (after reorder or compact, or with
// user labels) the whole label map is 16 bytes a vector instead of 48.
//
// Erase shifts later entries of the run back (no tombstones), so lookups stay
// short however many labels come and go. A bucket is empty when it holds
// `empty_slot`, which no index hands out (label_map::max_slots equals it).
//
// Every call takes `labels`, the slot -> label array: for each slot in the
// table, labels[slot] must be its label. Not thread-safe: label_map's owner
// serialises writers, and readers with them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "annulus/core/random.hpp"
#include "annulus/core/topk.hpp"

namespace annulus {

class label_table {
 public:
  using slot_type = std::uint32_t;
  static constexpr slot_type empty_slot = std::numeric_limits<slot_type>::max();

  label_table() = default;
  label_table(const label_table&) = default;
  label_table& operator=(const label_table&) = default;
  // A moved-from table is empty (std::vector's move alone would leave size_).
  label_table(label_table&& other) noexcept
      : buckets_(std::move(other.buckets_)), size_(std::exchange(other.size_, 0)) {}
  label_table& operator=(label_table&& other) noexcept {
    buckets_ = std::move(other.buckets_);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }

  std::size_t size() const { return size_; }

  std::optional<slot_type> find(label_t label, std::span<const label_t> labels) const {
    if (size_ == 0) return std::nullopt;
    for (std::size_t b = home(label);; b = next(b)) {
      const slot_type s = buckets_[b];
      if (s == empty_slot) return std::nullopt;
      if (labels[s] == label) return s;
    }
  }

  /// Adds `slot`, whose label labels[slot] is, unless that label is present
  /// (then returns false and changes nothing). slot must not be empty_slot.
  /// May grow the table: on a throw (out of memory) it is as it was.
  bool emplace(slot_type slot, std::span<const label_t> labels) {
    if (find(labels[slot], labels)) return false;
    if (size_ + 1 > max_load(buckets())) grow_to(size_ + 1, labels);
    place(slot, labels);
    ++size_;
    return true;
  }

  /// Removes `label` if present.
  void erase(label_t label, std::span<const label_t> labels) {
    if (size_ == 0) return;
    std::size_t hole = home(label);
    for (;; hole = next(hole)) {
      if (buckets_[hole] == empty_slot) return;
      if (labels[buckets_[hole]] == label) break;
    }
    // Pull back each later entry of the run that may sit in the hole: one
    // whose home is not cyclically in (hole, at].
    for (std::size_t at = next(hole); buckets_[at] != empty_slot; at = next(at)) {
      const std::size_t h = home(labels[buckets_[at]]);
      const bool stays = hole < at ? (hole < h && h <= at) : (hole < h || h <= at);
      if (stays) continue;
      buckets_[hole] = buckets_[at];
      hole = at;
    }
    buckets_[hole] = empty_slot;
    --size_;
  }

  /// Room for `n` entries without growing. On a throw the table is as it was.
  void reserve(std::size_t n, std::span<const label_t> labels) {
    if (n > max_load(buckets())) grow_to(n, labels);
  }

  void swap(label_table& other) noexcept {
    buckets_.swap(other.buckets_);
    std::swap(size_, other.size_);
  }

  /// Heap bytes held.
  std::size_t memory_bytes() const { return buckets_.capacity() * sizeof(slot_type); }

 private:
  std::size_t buckets() const { return buckets_.size(); }
  // At 3/4 a lookup of an absent label (every add checks one) probes about
  // 8.5 buckets on average, each reading a label; at 7/8 it would be 32.
  static std::size_t max_load(std::size_t buckets) { return buckets - buckets / 4; }
  std::size_t home(label_t label) const { return static_cast<std::size_t>(mix64(label)) & (buckets() - 1); }
  std::size_t next(std::size_t b) const { return (b + 1) & (buckets() - 1); }

  // Into the first free bucket of its run (the table has room; the label is absent).
  void place(slot_type slot, std::span<const label_t> labels) {
    std::size_t b = home(labels[slot]);
    while (buckets_[b] != empty_slot) b = next(b);
    buckets_[b] = slot;
  }

  // Rehashes into the smallest power of two holding n entries at 3/4,
  // built aside and swapped in.
  void grow_to(std::size_t n, std::span<const label_t> labels) {
    std::size_t b = 16;
    while (max_load(b) < n) b *= 2;
    label_table t;
    t.buckets_.assign(b, empty_slot);
    for (const slot_type s : buckets_)
      if (s != empty_slot) t.place(s, labels);
    t.size_ = size_;
    swap(t);
  }

  std::vector<slot_type> buckets_;  // empty_slot: the bucket is free
  std::size_t size_ = 0;
};

}  // namespace annulus
