// The inverted lists of an IVF index. List l holds its entries contiguously
// (each `width` values of T: a vector's floats for IVF-Flat, a PQ code's bytes
// for IVF-PQ), so a probe scans one block, and beside them the slot of each
// entry. Nothing maps a slot back to its list: erase scans the slot arrays
// (4 bytes an entry, about a millisecond per million vectors), which keeps
// the per-vector cost at the entry plus its slot.
//
// Entries live in arenas (core/large_block.hpp: huge pages from 2 MiB), not
// one allocation per list: a probe streams through hundreds of KB of several
// lists, and with 4 KiB pages every page is a TLB miss the hardware prefetcher
// stops at (measured on Fashion-MNIST: scanning 8 lists of 70 vectors took
// 136 us from huge pages, 165-174 us from 4 KiB pages). A batch add sizes all
// its lists in one arena, exactly while they are empty (so a build wastes
// nothing), else growing each by half. A list that outgrows its room moves
// to fresh arena space; when a new arena would take the arenas past twice
// the entries, everything is copied into one new arena instead, each list
// with a quarter more room than it holds. So the arenas never hold more than
// twice the entries (of the most there were: removals free no arena space).
//
// Interleaved lists (interleave() = B > 1, for 4-bit fast scan: B = 32):
// a list's entries go in blocks of B, value q of entry i at
//     (i / B) * B * width + q * B + i % B
// (entry i's values B apart), a list's room and its stored entries rounded
// up to whole blocks, the unused lanes of its last block zero. With B = 32
// and width = pairs(m) bytes of nibble-packed codes a list is exactly the
// packed buffer of quant/fast_scan.hpp. An entry is then not contiguous:
// put(l, s, values) and copy_entry(l, i, out) move whole entries; append
// (a pointer to write into) exists only for B = 1.
//
// Saved form (save/load): "ivf.list_sizes" (u64 a list), "ivf.list_slots"
// (u32: every list's slots, list after list), "ivf.entries" (every list's
// entries, list after list, width() values each; interleaved: each list's
// whole blocks, the last one's unused lanes as they are held, zero). A loaded index holds them
// in one arena sized to the entries, as a build does; a view (borrowed)
// points each list into "ivf.entries" in place and copies the slots, and
// refuses every change (read_only_error).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/labels.hpp"
#include "annulus/core/large_block.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/core/slots.hpp"

namespace annulus::ivf {

template <class T>
class inverted_lists {
 public:
  inverted_lists() = default;
  /// nlist empty lists of `width`-value entries, interleaved in blocks of
  /// `interleave` entries (1: each entry contiguous).
  inverted_lists(std::size_t nlist, std::size_t width, std::size_t interleave = 1)
      : width_(width), interleave_(interleave), lists_(nlist) {}

  std::size_t nlist() const { return lists_.size(); }
  std::size_t width() const { return width_; }
  std::size_t interleave() const { return interleave_; }
  /// Entries n rounds up to in storage: whole blocks of interleave().
  std::size_t rounded(std::size_t n) const { return (n + interleave_ - 1) / interleave_ * interleave_; }
  std::size_t size(std::size_t l) const { return lists_[l].slots.size(); }
  const T* entries(std::size_t l) const { return lists_[l].entries; }
  const slot_t* slots(std::size_t l) const { return lists_[l].slots.data(); }

  /// Whether the entries are read in place from a file (a view): then
  /// reserve throws read_only_error and nothing else may change them.
  bool borrowed() const { return borrowed_; }

  /// Makes room for extra[l] more entries in every list l, allocating before
  /// any change (a throw leaves the lists as they were). Throws
  /// read_only_error on borrowed lists, std::bad_alloc.
  void reserve(std::span<const std::size_t> extra) {
    if (borrowed_) throw read_only_error("ivf lists read from a memory-mapped file cannot change");
    std::vector<std::size_t> target(nlist(), 0);
    std::size_t needed = 0, entries = 0;
    for (std::size_t l = 0; l < nlist(); ++l) {
      const list& li = lists_[l];
      const std::size_t need = li.slots.size() + extra[l];
      entries += need;
      if (need <= li.capacity) continue;
      target[l] = rounded(li.slots.empty() ? need : std::max(need, li.capacity * 3 / 2));
      needed += target[l];
    }
    if (needed == 0) return;
    for (std::size_t l = 0; l < nlist(); ++l)
      if (target[l]) lists_[l].slots.reserve(target[l]);
    if (arena_free() < needed) {
      const std::size_t grow = std::max(needed, entries / 2);
      if (!arenas_.empty() && arena_total_ + grow > 2 * entries) {  // compact: every list moves
        std::size_t total = 0;
        for (std::size_t l = 0; l < nlist(); ++l) {
          const std::size_t need = lists_[l].slots.size() + extra[l];
          target[l] = rounded(need + need / 4);
          total += target[l];
          lists_[l].slots.reserve(target[l]);  // appends within the room must not allocate
        }
        add_arena(total);
        for (std::size_t l = 0; l < nlist(); ++l) move_list(l, target[l]);
        large_block last = std::move(arenas_.back());
        arenas_.clear();  // keeps its room: the push_back cannot throw
        arenas_.push_back(std::move(last));
        arena_total_ = total;
        return;
      }
      add_arena(grow);
    }
    for (std::size_t l = 0; l < nlist(); ++l)
      if (target[l]) move_list(l, target[l]);
  }

  /// Appends an entry for slot s to list l, which has room (reserve);
  /// returns its storage (width() values). Contiguous lists only (interleave() = 1).
  T* append(std::size_t l, slot_t s) {
    list& li = lists_[l];
    T* at = li.entries + li.slots.size() * width_;
    li.slots.push_back(s);
    return at;
  }

  /// Appends an entry for slot s with the width() values at `values` to
  /// list l, which has room (reserve). Any interleave. Cannot throw.
  void put(std::size_t l, slot_t s, const T* values) noexcept {
    list& li = lists_[l];
    const std::size_t i = li.slots.size();
    li.slots.push_back(s);  // within the room reserve made: no allocation
    for (std::size_t q = 0; q < width_; ++q) *value(li, i, q) = values[q];
  }

  /// The width() values of entry i of list l, to `out`.
  void copy_entry(std::size_t l, std::size_t i, T* out) const {
    const list& li = lists_[l];
    for (std::size_t q = 0; q < width_; ++q) out[q] = *value(li, i, q);
  }

  /// Where the entry of slot s is: its list and its index there. Scans the
  /// slot arrays (4 bytes an entry, about a millisecond per million).
  struct position {
    std::size_t list, index;
  };
  std::optional<position> find(slot_t s) const {
    for (std::size_t l = 0; l < nlist(); ++l) {
      const std::vector<slot_t>& slots = lists_[l].slots;
      const auto it = std::find(slots.begin(), slots.end(), s);
      if (it != slots.end()) return position{l, std::size_t(it - slots.begin())};
    }
    return std::nullopt;
  }

  /// Removes the entry of slot s (its list's last entry takes its place);
  /// false if no list holds s. Cannot throw.
  bool erase(slot_t s) {
    const auto at = find(s);
    if (!at) return false;
    list& li = lists_[at->list];
    const std::size_t last = li.slots.size() - 1;
    if (interleave_ == 1) {
      std::copy_n(li.entries + last * width_, width_, li.entries + at->index * width_);
    } else {
      for (std::size_t q = 0; q < width_; ++q) {
        *value(li, at->index, q) = *value(li, last, q);
        *value(li, last, q) = T{};  // unused lanes stay zero
      }
    }
    li.slots[at->index] = li.slots[last];
    li.slots.pop_back();
    return true;
  }

  /// Arena bytes (dead space included; borrowed: the entries read in place)
  /// plus slots and list headers.
  std::size_t memory_bytes() const {
    std::size_t bytes = lists_.capacity() * sizeof(list) + borrowed_entries_ * width_ * sizeof(T);
    for (const large_block& a : arenas_) bytes += a.size();
    for (const list& li : lists_) bytes += li.slots.capacity() * sizeof(slot_t);
    return bytes;
  }

  // ---- saved form (see the header comment) ----

  void save(serial::writer& w) const {
    std::vector<std::uint64_t> sizes(nlist());
    for (std::size_t l = 0; l < nlist(); ++l) sizes[l] = size(l);
    w.section("ivf.list_sizes", std::span<const std::uint64_t>(sizes));
    w.begin("ivf.list_slots");
    for (const list& li : lists_) w.append(std::span<const slot_t>(li.slots));
    w.end();
    w.begin("ivf.entries");
    for (const list& li : lists_) w.append(std::span<const T>(li.entries, rounded(li.slots.size()) * width_));
    w.end();
  }

  /// The nlist lists of `width`-value entries a file saved, checked against
  /// the slot directory loaded beside them: every live slot in exactly one
  /// list, once, and nothing else (format_error otherwise). The entries are
  /// a structure() section when `entries_steer` (their values index
  /// something: checked at open even on a view), else a payload; then
  /// check(entries) -> optional<string> names what is wrong with them, if
  /// anything. Borrowed from the file when the reader is viewing. Allocates
  /// nothing before the sizes are checked against the file.
  template <class Check>
  static inverted_lists load(serial::reader& r, std::size_t nlist, std::size_t width, std::size_t interleave,
                             const slot_directory& dir, bool entries_steer, const Check& check) {
    const auto sizes = r.structure_array<std::uint64_t>("ivf.list_sizes", nlist);
    const std::size_t live = dir.live();
    std::size_t total = 0;
    for (std::size_t l = 0; l < nlist; ++l) {
      if (sizes[l] > live - total)
        r.fail("ivf.list_sizes", "the lists up to " + std::to_string(l) + " hold more entries than the " +
                                     std::to_string(live) + " vectors the slot directory holds");
      total += std::size_t(sizes[l]);
    }
    if (total != live)
      r.fail("ivf.list_sizes", "the lists hold " + std::to_string(total) + " entries, the slot directory " +
                                   std::to_string(live) + " vectors");
    const auto slots = r.structure_array<slot_t>("ivf.list_slots", total);
    std::vector<bool> seen(dir.slots());
    for (std::size_t l = 0, at = 0; l < nlist; ++l)
      for (std::size_t i = 0; i < sizes[l]; ++i, ++at) {
        const slot_t s = slots[at];
        if (s >= dir.slots() || seen[s] || dir.find(dir.label(s)) != s)
          r.fail("ivf.list_slots", "list " + std::to_string(l) + " names slot " + std::to_string(s) +
                                       ", which is not a live slot named once (of " + std::to_string(dir.slots()) +
                                       " slots)");
        seen[s] = true;
      }
    inverted_lists out(nlist, width, interleave);
    std::size_t stored = 0;  // entries the file holds: whole blocks per list (each <= live + interleave)
    for (std::size_t l = 0; l < nlist; ++l) stored += out.rounded(std::size_t(sizes[l]));
    const std::uint64_t values = r.product("ivf.entries", stored, width);
    const std::span<const T> entries =
        entries_steer ? r.structure_array<T>("ivf.entries", values) : r.payload_array<T>("ivf.entries", values);
    if (const std::optional<std::string> why = check(entries)) r.fail("ivf.entries", *why);

    for (std::size_t l = 0, at = 0; l < nlist; at += out.size(l), ++l)
      out.lists_[l].slots.assign(slots.begin() + at, slots.begin() + at + sizes[l]);
    if (r.viewing()) {
      out.borrowed_ = true;
      out.borrowed_entries_ = stored;
    } else if (stored > 0) {
      out.add_arena(stored);
    }
    T* arena = out.arenas_.empty() ? nullptr : reinterpret_cast<T*>(out.arenas_.back().data());
    for (std::size_t l = 0, at = 0; l < nlist; at += out.lists_[l].capacity, ++l) {
      list& li = out.lists_[l];
      if (li.slots.empty()) continue;
      li.capacity = out.rounded(li.slots.size());
      if (out.borrowed_) {
        li.entries = const_cast<T*>(entries.data() + at * width);  // never written: every change refuses
      } else {
        li.entries = arena + at * width;
        std::copy_n(entries.data() + at * width, li.capacity * width, li.entries);
      }
    }
    out.arena_used_ = out.arena_entries_;
    return out;
  }

 private:
  struct list {
    T* entries = nullptr;
    std::size_t capacity = 0;  // entries room at `entries`
    std::vector<slot_t> slots;
  };

  std::size_t arena_free() const { return arenas_.empty() ? 0 : arena_entries_ - arena_used_; }

  void add_arena(std::size_t entries) {
    arenas_.emplace_back(entries * width_ * sizeof(T));  // may throw: then nothing changed
    arena_total_ += entries;
    arena_entries_ = entries;
    arena_used_ = 0;
  }

  // Value q of entry i of list li.
  T* value(const list& li, std::size_t i, std::size_t q) const {
    return li.entries + (i / interleave_) * interleave_ * width_ + q * interleave_ + i % interleave_;
  }

  // Gives list l room for `capacity` entries (whole blocks) in the current
  // arena, which has it. The held entries move as whole blocks; the room
  // past them is fresh arena space, zero (large_block), as unused lanes must be.
  void move_list(std::size_t l, std::size_t capacity) {
    list& li = lists_[l];
    T* to = reinterpret_cast<T*>(arenas_.back().data()) + arena_used_ * width_;
    std::copy_n(li.entries, rounded(li.slots.size()) * width_, to);
    li.entries = to;
    li.capacity = capacity;
    arena_used_ += capacity;
  }

  std::size_t width_ = 0, interleave_ = 1;
  std::vector<list> lists_;
  std::vector<large_block> arenas_;
  std::size_t arena_entries_ = 0, arena_used_ = 0;  // the last arena's room and use, in entries
  std::size_t arena_total_ = 0;                     // every arena's room, in entries
  bool borrowed_ = false;                           // entries read in place from a file
  std::size_t borrowed_entries_ = 0;
};

}  // namespace annulus::ivf
