// The map between users' 64-bit labels and an index's dense 32-bit slots,
// shared by every index. While every label equals its slot (the default: row
// numbers in add order) it stores nothing but a count; the first other label,
// or the first erase, builds the slot-to-label array and the hash table.
// Default labels continue the row numbering: the count of vectors ever added,
// removed ones included, so a default label is never handed out twice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/label_table.hpp"
#include "annulus/core/topk.hpp"

namespace annulus {

/// Position of a vector inside an index.
using slot_t = std::uint32_t;
static_assert(std::is_same_v<slot_t, label_table::slot_type>);

class label_map {
 public:
  /// Slots are numbered below this, so label_table may mark its free
  /// buckets with this value (empty_slot).
  static constexpr std::size_t max_slots = label_table::empty_slot;

  /// Slots handed out (erased ones included).
  std::size_t size() const { return size_; }
  label_t label(slot_t s) const { return identity_ ? label_t{s} : labels_[s]; }
  /// The default label of the i-th vector of the next add.
  label_t default_label(std::size_t i) const { return added_ + i; }

  /// Slot holding `label`, if any.
  std::optional<slot_t> find(label_t label) const {
    if (identity_) {
      if (label < size_) return static_cast<slot_t>(label);
      return std::nullopt;
    }
    return slots_.find(label, labels_);
  }

  /// Throws unless `count` more slots fit and `labels` (empty = the default
  /// labels size() .. size() + count - 1) are new and distinct.
  void check_new(std::size_t count, std::span<const label_t> labels) const {
    if (count > max_slots - size())
      throw capacity_error("adding " + std::to_string(count) + " vectors to " +
                           std::to_string(size()) + " exceeds the index limit of " +
                           std::to_string(max_slots));
    if (labels.empty()) {
      if (!identity_)
        for (std::size_t i = 0; i < count; ++i) reject_if_present(default_label(i));
      return;
    }
    if (labels.size() != count)
      throw invalid_argument(std::to_string(labels.size()) + " labels given for " +
                             std::to_string(count) + " vectors");
    std::unordered_set<label_t> batch;
    batch.reserve(labels.size());
    for (const label_t l : labels) {
      reject_if_present(l);
      if (!batch.insert(l).second)
        throw invalid_argument("label " + std::to_string(l) + " appears twice in one add");
    }
  }

  /// Appends after check_new passed; empty labels = the default labels.
  /// On a throw (out of memory) the map is as it was.
  void append(std::size_t count, std::span<const label_t> labels) {
    if (!identity_) {
      labels_.reserve(size_ + count);
      slots_.reserve(slots_.size() + count, labels_);
    }
    const std::size_t size_before = size_, added_before = added_;
    try {
      for (std::size_t i = 0; i < count; ++i) {
        const label_t l = labels.empty() ? added_ : labels[i];
        if (identity_ && l != size_) leave_identity();
        if (!identity_) {
          labels_.push_back(l);
          slots_.emplace(static_cast<slot_t>(size_), labels_);
        }
        ++size_;
        ++added_;
      }
    } catch (...) {
      if (!identity_) {  // forget this call's labels; the table itself may stay
        for (std::size_t s = size_before; s < labels_.size(); ++s) slots_.erase(labels_[s], labels_);
        labels_.resize(size_before);
      }
      size_ = size_before;
      added_ = added_before;
      throw;
    }
  }

  /// Forgets `label` (which must be present); its slot keeps a stale label
  /// until assign gives it a new one.
  void erase(label_t label) {
    if (identity_) leave_identity();
    slots_.erase(label, labels_);
  }

  /// Gives the erased slot `s` the new label `label` (check_new passed for it).
  /// On a throw (out of memory) the map is as it was.
  void assign(slot_t s, label_t label) {
    if (identity_) leave_identity();
    const label_t stale = labels_[s];
    labels_[s] = label;
    try {
      slots_.emplace(s, labels_);
    } catch (...) {
      labels_[s] = stale;
      throw;
    }
    ++added_;
  }
  /// Undoes assign(s, label), the latest change to the map. Cannot throw.
  void unassign(slot_t s, label_t label) noexcept {
    slots_.erase(label, labels_);
    (void)s;  // the slot keeps a stale label, as after erase
    --added_;
  }

  /// Rebuilds a saved map: `size` slots, `added` vectors ever added, the
  /// slot -> label array (empty: the identity, labels are slot numbers) and
  /// a state a slot (0: live; only live slots' labels enter the table).
  /// Throws format_error naming `where` when two live slots share a label.
  static label_map restore(std::size_t size, std::size_t added, std::span<const label_t> labels,
                           std::span<const std::uint8_t> state, const std::string& where) {
    label_map m;
    m.size_ = size;
    m.added_ = added;
    if (labels.empty()) return m;
    m.identity_ = false;
    m.labels_.assign(labels.begin(), labels.end());
    m.slots_.reserve(size, m.labels_);
    for (std::size_t s = 0; s < size; ++s)
      if (state[s] == 0 && !m.slots_.emplace(static_cast<slot_t>(s), m.labels_))
        throw format_error(where + ": label " + std::to_string(labels[s]) + " is held by two slots");
    return m;
  }
  /// Whether labels are still the slot numbers (nothing stored per slot).
  bool identity() const { return identity_; }
  /// Vectors ever added (the next default label).
  std::size_t added() const { return added_; }

  /// Heap bytes held.
  std::size_t memory_bytes() const { return labels_.capacity() * sizeof(label_t) + slots_.memory_bytes(); }

 private:
  void reject_if_present(label_t l) const {
    if (find(l))
      throw invalid_argument("label " + std::to_string(l) + " is already in the index");
  }
  // Builds the table aside and swaps it in: running out of memory midway
  // leaves the map as it was.
  void leave_identity() {
    std::vector<label_t> labels;
    label_table slots;
    labels.reserve(size_ + 1);
    for (std::size_t s = 0; s < size_; ++s) labels.push_back(s);
    slots.reserve(size_ + 1, labels);
    for (std::size_t s = 0; s < size_; ++s) slots.emplace(static_cast<slot_t>(s), labels);
    labels_.swap(labels);
    slots_.swap(slots);
    identity_ = false;
  }

  std::size_t size_ = 0;
  std::size_t added_ = 0;        // vectors ever added: the next default label
  std::vector<label_t> labels_;  // slot -> label, once not the identity
  label_table slots_;
  bool identity_ = true;
};

/// For an index that holds others (sharded_index, banded_mips_index): the
/// labels of `rows` new vectors, `given` (one a row) or, when empty, the
/// default ones first_default + i; every one distinct and not held yet
/// (`held(label)` false). Throws invalid_argument naming `who` and the first
/// label that is not.
template <class Held>
std::vector<label_t> new_labels_for_holder(std::string_view who, std::size_t rows, std::span<const label_t> given,
                                           std::uint64_t first_default, const Held& held) {
  if (!given.empty() && given.size() != rows)
    throw invalid_argument(std::string(who) + ": " + std::to_string(given.size()) + " labels given for " +
                           std::to_string(rows) + " vectors");
  std::vector<label_t> out(rows);
  std::unordered_set<label_t> seen;
  seen.reserve(rows);
  for (std::size_t i = 0; i < rows; ++i) {
    out[i] = given.empty() ? label_t(first_default + i) : given[i];
    if (!seen.insert(out[i]).second)
      throw invalid_argument(std::string(who) + ": label " + std::to_string(out[i]) + " appears twice in one add");
    if (held(out[i]))
      throw invalid_argument(std::string(who) + ": label " + std::to_string(out[i]) + " is already in the index");
  }
  return out;
}

}  // namespace annulus
