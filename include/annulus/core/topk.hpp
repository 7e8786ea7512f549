// Top-k selection: the neighbour type every search returns, a bounded max-heap
// that lives in storage the caller owns (so search allocates nothing), a k-way
// merge of sorted lists, and result_matrix for batch searches.
// Order everywhere: smaller distance first, ties broken by smaller label, so
// results are deterministic.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/sizes.hpp"

namespace annulus {

/// User-facing identifier of a vector (default: its row number at add).
using label_t = std::uint64_t;

struct neighbor {
  label_t label = 0;
  float distance = std::numeric_limits<float>::infinity();
  friend bool operator==(const neighbor&, const neighbor&) = default;
};

/// Strict order used by every heap and merge: closer first, then smaller label.
constexpr bool closer(const neighbor& a, const neighbor& b) {
  return a.distance < b.distance || (a.distance == b.distance && a.label < b.label);
}

/// Keeps the k closest of what is pushed, in caller-owned storage of at least
/// k elements. The root is the worst kept neighbour, so a candidate is
/// rejected with one comparison once the heap is full.
class topk_heap {
 public:
  topk_heap(std::span<neighbor> storage, std::size_t k) : data_(storage.data()), k_(k) {
    if (storage.size() < k)
      throw invalid_argument("topk_heap: storage for " + std::to_string(storage.size()) +
                             " neighbours, k = " + std::to_string(k));
  }

  std::size_t size() const { return size_; }
  std::size_t capacity() const { return k_; }
  bool full() const { return size_ == k_; }
  /// Distance a candidate must beat to enter (infinity while not full).
  float threshold() const {
    return full() ? data_[0].distance : std::numeric_limits<float>::infinity();
  }

  /// Offers a candidate; returns whether it was kept.
  bool push(label_t label, float distance) {
    const neighbor n{label, distance};
    if (size_ < k_) {
      data_[size_++] = n;
      std::push_heap(data_, data_ + size_, closer);
      return true;
    }
    if (k_ == 0 || !closer(n, data_[0])) return false;
    replace_top(n);
    return true;
  }

  /// Sorts the kept neighbours closest first, in place; returns how many.
  /// The heap is empty afterwards.
  std::size_t sort() {
    std::sort_heap(data_, data_ + size_, closer);
    const std::size_t n = size_;
    size_ = 0;
    return n;
  }

 private:
  void replace_top(const neighbor& n) {
    std::size_t i = 0;
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= size_) break;
      if (child + 1 < size_ && closer(data_[child], data_[child + 1])) ++child;
      if (!closer(n, data_[child])) break;
      data_[i] = data_[child];
      i = child;
    }
    data_[i] = n;
  }

  neighbor* data_;
  std::size_t k_;
  std::size_t size_ = 0;
};

/// Merges lists each sorted closest first into the k closest overall, written
/// to out (size >= k); returns how many were written. Allocates nothing.
inline std::size_t merge_topk(std::span<const std::span<const neighbor>> lists, std::size_t k,
                              std::span<neighbor> out) {
  if (out.size() < k)
    throw invalid_argument("merge_topk: output holds " + std::to_string(out.size()) +
                           " neighbours, k = " + std::to_string(k));
  std::size_t written = 0;
  // Few lists (shards, probes): a linear pick of the best head is fastest.
  constexpr std::size_t max_lists = 1024;
  if (lists.size() > max_lists)
    throw invalid_argument("merge_topk: " + std::to_string(lists.size()) + " lists, at most " +
                           std::to_string(max_lists));
  std::size_t cursor[max_lists] = {};
  while (written < k) {
    std::size_t best = lists.size();
    for (std::size_t l = 0; l < lists.size(); ++l)
      if (cursor[l] < lists[l].size() &&
          (best == lists.size() || closer(lists[l][cursor[l]], lists[best][cursor[best]])))
        best = l;
    if (best == lists.size()) break;
    out[written++] = lists[best][cursor[best]++];
  }
  return written;
}

/// Results of a batch search: row i holds the neighbours of query i, closest
/// first; a row may hold fewer than k (a filter passed fewer items).
class result_matrix {
 public:
  result_matrix() = default;
  result_matrix(std::size_t queries, std::size_t k)
      : k_(k), data_(sizes::product(queries, k, "result_matrix")), counts_(queries, 0) {}

  std::size_t size() const { return counts_.size(); }
  std::size_t k() const { return k_; }
  /// The neighbours found for query i.
  std::span<const neighbor> operator[](std::size_t i) const {
    return {data_.data() + i * k_, counts_[i]};
  }
  /// Full k-slot row i, for the search that fills it; then set_count.
  std::span<neighbor> row_storage(std::size_t i) { return {data_.data() + i * k_, k_}; }
  void set_count(std::size_t i, std::size_t n) { counts_[i] = n; }

 private:
  std::size_t k_ = 0;
  std::vector<neighbor> data_;
  std::vector<std::size_t> counts_;
};

}  // namespace annulus
