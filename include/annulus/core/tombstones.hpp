// Removal by tombstone, for indexes whose structures keep naming a removed
// vector's slot (rp_forest's leaves, lsh's buckets): remove() forgets the
// label and marks the slot (slot_directory::retire), and searches skip marked
// slots. Once purge_due() says enough are marked, the index drops every entry
// of a marked slot from its structures (in place, without allocating) and
// calls reclaim(), which frees those slots for the next adds: memory stays
// bounded under any mix of adds and removes. A freed slot counts as dead
// (searches that scan every slot skip it) until an add reuses it (reuse()).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "annulus/core/labels.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/core/sizes.hpp"
#include "annulus/core/slots.hpp"

namespace annulus {

class tombstones {
 public:
  /// Room for slots [0, slots) at least (never shrinks); new slots start
  /// unmarked. Throws std::bad_alloc, changing nothing.
  void resize(std::size_t slots) {
    if (dead_.size() < slots) dead_.resize(slots, 0);
  }
  /// The first step of an add of `rows` vectors labelled `labels` (empty =
  /// default labels) to an index that keeps its vectors by slot (`dim`
  /// floats a slot in `vectors`): checks the labels (dir.check_new), runs
  /// `purge` when purge_due (the index drops removed entries and calls
  /// reclaim; it must not throw), and returns the slots the rows get
  /// (dir.plan: freed ones first, then fresh ones; none for no rows), with
  /// `vectors` and the marks grown to hold them. Throws invalid_argument,
  /// capacity_error (naming `what`), std::bad_alloc; changes nothing an
  /// answer depends on.
  template <class Vectors, class Purge>
  std::vector<slot_t> plan_add(slot_directory& dir, Vectors& vectors, std::size_t rows,
                               std::span<const label_t> labels, std::size_t dim, const char* what,
                               Purge&& purge) {
    dir.check_new(rows, labels);
    if (rows == 0) return {};
    if (purge_due(dir.slots())) purge();
    std::vector<slot_t> slots = dir.plan(rows);
    const std::size_t top = std::max<std::size_t>(dir.slots(), *std::max_element(slots.begin(), slots.end()) + 1);
    const std::size_t floats = sizes::product(top, dim, what);
    if (vectors.size() < floats) vectors.resize(floats);
    resize(top);
    return slots;
  }
  /// Forgets `label` in `dir` and marks its slot. Throws invalid_argument
  /// ("<what>: label L is not in the index") or std::bad_alloc, changing nothing.
  void remove(slot_directory& dir, label_t label, const char* what) {
    const slot_t s = dir.slot_of(label, what);
    marked_.reserve(marked_.size() + 1);
    dir.retire(label, what);
    dead_[s] = removed_mark;
    marked_.push_back(s);
    ++not_live_;
  }
  /// Whether slot s holds no vector: removed, or freed and not reused yet
  /// (one load, and none while every slot holds one).
  bool dead(std::size_t s) const { return not_live_ != 0 && dead_[s] != 0; }
  std::size_t removed() const { return marked_.size(); }
  /// Whether the marked slots are an eighth of `slots` (those ever handed
  /// out): then purging pays for itself, and slots handed out stay below
  /// 8/7 of the peak number of vectors, plus one add's worth.
  bool purge_due(std::size_t slots) const { return !marked_.empty() && marked_.size() * 8 >= slots; }
  /// Once the index names no marked slot any more: frees them all in `dir`
  /// for reuse and unmarks them. Cannot throw.
  void reclaim(slot_directory& dir) noexcept {
    dir.recycle(marked_);
    for (const slot_t s : marked_) dead_[s] = free_mark;
    marked_.clear();
  }
  /// The slots an add planned (slot_directory::plan: freed ones first, then
  /// fresh ones) hold vectors again; returns how many were freed ones. An
  /// add that then fails gives those back with unreuse(slots.first(that)).
  /// Neither can throw.
  std::size_t reuse(std::span<const slot_t> slots) noexcept {
    std::size_t revived = 0;
    for (const slot_t s : slots)
      if (dead_[s] == free_mark) {
        dead_[s] = 0;
        ++revived;
      }
    not_live_ -= revived;
    return revived;
  }
  void unreuse(std::span<const slot_t> revived) noexcept {
    for (const slot_t s : revived) dead_[s] = free_mark;
    not_live_ += revived.size();
  }
  std::size_t memory_bytes() const { return dead_.capacity() + marked_.capacity() * sizeof(slot_t); }

  // ---- saved form: "tombstones.dead" (u8 a slot), "tombstones.marked"
  // (u32, in removal order) ----

  void save(serial::writer& w) const {
    w.section("tombstones.dead", std::span<const std::uint8_t>(dead_));
    w.section("tombstones.marked", std::span<const slot_t>(marked_));
  }
  /// The marks a file saved, checked against the directory loaded beside
  /// them (format_error): removed marks are its retired slots, free marks
  /// its free ones.
  static tombstones load(serial::reader& r, const slot_directory& dir) {
    const auto dead = r.structure_array<std::uint8_t>("tombstones.dead");
    const auto marked = r.structure_array<slot_t>("tombstones.marked");
    if (dead.size() < dir.slots())
      r.fail("tombstones.dead", std::to_string(dead.size()) + " marks for " + std::to_string(dir.slots()) + " slots");
    tombstones t;
    std::size_t removed = 0, freed = 0;
    for (std::size_t s = 0; s < dead.size(); ++s) {
      const bool live = s < dir.slots() && dir.find(dir.label(slot_t(s))) == slot_t(s);
      if (dead[s] > free_mark || (dead[s] == 0) != (live || s >= dir.slots()))
        r.fail("tombstones.dead", "slot " + std::to_string(s) + " is marked " + std::to_string(dead[s]) +
                                      (live ? " but holds a vector" : " but holds none"));
      removed += dead[s] == removed_mark;
      freed += dead[s] == free_mark;
    }
    if (removed != marked.size() || removed != dir.retired() || freed + removed != dir.slots() - dir.live())
      r.fail("tombstones.marked", std::to_string(marked.size()) + " slots listed, " + std::to_string(removed) +
                                      " marked removed, the directory retired " + std::to_string(dir.retired()));
    std::vector<bool> seen(dead.size());
    for (const slot_t s : marked) {
      if (s >= dead.size() || dead[s] != removed_mark || seen[s])
        r.fail("tombstones.marked", "slot " + std::to_string(s) + " is not a removed slot listed once");
      seen[s] = true;
    }
    t.dead_.assign(dead.begin(), dead.end());
    t.marked_.reserve(marked.size() + 1);
    t.marked_.assign(marked.begin(), marked.end());
    t.not_live_ = removed + freed;
    return t;
  }

 private:
  static constexpr std::uint8_t removed_mark = 1, free_mark = 2;
  std::vector<std::uint8_t> dead_;  // per slot: 0 = holds a vector, removed_mark, free_mark
  std::vector<slot_t> marked_;      // the slots marked removed, in removal order
  std::size_t not_live_ = 0;        // slots marked removed or free
};

}  // namespace annulus
