// The inverted lists of an IVF index. List l holds its entries contiguously
// (each `width` values of T: a vector's floats for IVF-Flat, a PQ code's bytes
// for IVF-PQ), so a probe scans one block, and beside them the slot of each
// entry. Nothing maps a slot back to its list: erase scans the slot arrays
// (4 bytes an entry, about a millisecond per million vectors), which keeps
// the per-vector cost at the entry plus its slot.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "annulus/core/labels.hpp"
#include "annulus/core/matrix.hpp"

namespace annulus::ivf {

template <class T>
class inverted_lists {
 public:
  inverted_lists() = default;
  inverted_lists(std::size_t nlist, std::size_t width) : width_(width), lists_(nlist) {}

  std::size_t nlist() const { return lists_.size(); }
  std::size_t width() const { return width_; }
  std::size_t size(std::size_t l) const { return lists_[l].slots.size(); }
  const T* entries(std::size_t l) const { return lists_[l].entries.data(); }
  const slot_t* slots(std::size_t l) const { return lists_[l].slots.data(); }

  /// Makes room for `extra` more entries in list l: exactly, while the list
  /// is empty (a build sizes every list once), else growing by half.
  void reserve_more(std::size_t l, std::size_t extra) {
    list& li = lists_[l];
    const std::size_t need = li.slots.size() + extra;
    if (need <= li.slots.capacity()) return;
    const std::size_t target = li.slots.empty() ? need : std::max(need, li.slots.capacity() * 3 / 2);
    li.entries.reserve(target * width_);
    li.slots.reserve(target);
  }

  /// Appends an entry for slot s to list l; returns its storage (width() values).
  T* append(std::size_t l, slot_t s) {
    reserve_more(l, 1);
    list& li = lists_[l];
    li.entries.resize(li.entries.size() + width_);
    li.slots.push_back(s);
    return li.entries.data() + li.entries.size() - width_;
  }

  /// Removes the entry of slot s (its list's last entry takes its place);
  /// false if no list holds s.
  bool erase(slot_t s) {
    for (list& li : lists_) {
      const auto it = std::find(li.slots.begin(), li.slots.end(), s);
      if (it == li.slots.end()) continue;
      const std::size_t i = std::size_t(it - li.slots.begin()), last = li.slots.size() - 1;
      std::copy_n(li.entries.data() + last * width_, width_, li.entries.data() + i * width_);
      li.slots[i] = li.slots[last];
      li.slots.pop_back();
      li.entries.resize(last * width_);
      return true;
    }
    return false;
  }

  std::size_t memory_bytes() const {
    std::size_t bytes = lists_.capacity() * sizeof(list);
    for (const list& li : lists_)
      bytes += li.entries.capacity() * sizeof(T) + li.slots.capacity() * sizeof(slot_t);
    return bytes;
  }

 private:
  struct list {
    std::vector<T, aligned_allocator<T>> entries;
    std::vector<slot_t> slots;
  };
  std::size_t width_ = 0;
  std::vector<list> lists_;
};

}  // namespace annulus::ivf
