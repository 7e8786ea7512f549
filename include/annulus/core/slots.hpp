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
#include <cstdint>
#include <limits>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/labels.hpp"
#include "annulus/core/serialize.hpp"

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

  // ---- saved form: sections "slots" (record), "slots.labels" (u64 a slot,
  // absent while labels are slot numbers), "slots.state" (u8 a slot: 0 live,
  // 1 free, 2 retired), "slots.free" (u32, the free list in order) ----

  void save(serial::writer& w) const {
    std::vector<std::uint8_t> state(slots(), 2);
    for (const slot_t s : free_) state[s] = 1;
    for (std::size_t s = 0; s < slots(); ++s) {
      const auto at = find(label(slot_t(s)));
      if (at && *at == s) state[s] = 0;
    }
    w.section("slots", serial::record()
                           .set("slots", slots())
                           .set("added", labels_.added())
                           .set("retired", retired_)
                           .set("identity", labels_.identity() ? 1 : 0));
    if (!labels_.identity()) {
      std::vector<label_t> labels(slots());
      for (std::size_t s = 0; s < slots(); ++s) labels[s] = label(slot_t(s));
      w.section("slots.labels", std::span<const label_t>(labels));
    }
    w.section("slots.state", std::span<const std::uint8_t>(state));
    w.section("slots.free", std::span<const slot_t>(free_));
  }

  /// Vectors ever added (the next default label).
  std::size_t added() const { return labels_.added(); }

  /// A directory of labels.size() live slots, slot i holding labels[i]
  /// (distinct), whose default labels continue from `added` (what the
  /// directory it replaces had handed out): an index that renumbers its
  /// slots (hnsw_index::compact, reorder) keeps its labels and its count.
  /// Labels that are the slot numbers stay unstored. Throws std::bad_alloc.
  static slot_directory renumbered(std::span<const label_t> labels, std::size_t added) {
    const std::size_t n = labels.size();
    bool identity = added == n;
    for (std::size_t i = 0; identity && i < n; ++i) identity = labels[i] == label_t{i};
    const std::vector<std::uint8_t> live(n, 0);
    slot_directory d;
    d.labels_ = label_map::restore(n, added, identity ? std::span<const label_t>{} : labels, live, "slots");
    return d;
  }

  /// The directory a file saved; every count is checked against the others
  /// (format_error).
  static slot_directory load(serial::reader& r) {
    const auto rec = r.fields("slots");
    const std::uint64_t n = rec.u64_in("slots", 0, label_map::max_slots);
    const auto state = r.structure_array<std::uint8_t>("slots.state", n);
    const auto free = r.structure_array<slot_t>("slots.free");
    const bool identity = rec.u64_in("identity", 0, 1) == 1;
    const std::uint64_t added = rec.u64_in("added", n, std::numeric_limits<std::uint64_t>::max());
    const std::uint64_t retired = rec.u64_in("retired", 0, n);
    std::size_t frees = 0, retireds = 0;
    for (std::size_t s = 0; s < n; ++s) {
      if (state[s] > 2) r.fail("slots.state", "slot " + std::to_string(s) + " has state " + std::to_string(state[s]));
      frees += state[s] == 1;
      retireds += state[s] == 2;
    }
    if (retireds != retired || frees != free.size())
      r.fail("slots", "counts disagree with slots.state: " + std::to_string(free.size()) + " free and " +
                          std::to_string(retired) + " retired listed, " + std::to_string(frees) + " and " +
                          std::to_string(retireds) + " marked");
    std::vector<bool> seen(n);
    for (const slot_t s : free) {
      if (s >= n || state[s] != 1 || seen[s])
        r.fail("slots.free", "slot " + std::to_string(s) + " is not a free slot listed once");
      seen[s] = true;
    }
    std::span<const label_t> labels;
    if (identity) {
      if (frees != 0 || retireds != 0 || added != n || r.has("slots.labels"))
        r.fail("slots", "labels are slot numbers, but slots were removed or labels are stored");
    } else {
      labels = r.structure_array<label_t>("slots.labels", n);
    }
    slot_directory d;
    d.labels_ = label_map::restore(n, added, labels, state, r.where("slots.labels"));
    d.free_.reserve(free.size() + retired);
    d.free_.assign(free.begin(), free.end());
    d.retired_ = retired;
    return d;
  }

 private:
  label_map labels_;
  std::vector<slot_t> free_;   // capacity >= free_.size() + retired_
  std::size_t retired_ = 0;
};

}  // namespace annulus
