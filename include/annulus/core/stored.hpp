// stored_array<T>: an index's bulk storage (vectors, norms, codes) that
// either owns a growable 64-byte aligned array or, for an index served from
// a memory-mapped file (view()), reads a window of that file in place.
//
// Owned: as std::vector (data, size, reserve, resize). Borrowed: read-only;
// every call that would change it throws read_only_error, so an index
// cannot write into a file it is viewing even through a path the base's
// checks missed. Whoever borrows keeps the mapping alive (index_base does).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"

namespace annulus {

template <class T>
class stored_array {
 public:
  stored_array() = default;

  /// An owned copy of `values`. Throws std::bad_alloc.
  static stored_array copy_of(std::span<const T> values) {
    stored_array a;
    a.own_.assign(values.begin(), values.end());
    return a;
  }
  /// A read-only window on `values`, which must outlive the array.
  static stored_array borrow(std::span<const T> values) {
    stored_array a;
    a.borrowed_ = values.data();
    a.borrowed_size_ = values.size();
    a.borrowing_ = true;
    return a;
  }

  bool borrowed() const { return borrowing_; }
  const T* data() const { return borrowing_ ? borrowed_ : own_.data(); }
  T* data() {
    refuse("write to");
    return own_.data();
  }
  std::size_t size() const { return borrowing_ ? borrowed_size_ : own_.size(); }
  std::span<const T> span() const { return {data(), size()}; }
  const T& operator[](std::size_t i) const { return data()[i]; }
  T& operator[](std::size_t i) { return data()[i]; }

  void reserve(std::size_t n) {
    refuse("grow");
    own_.reserve(n);
  }
  void resize(std::size_t n) {
    refuse("grow");
    own_.resize(n);
  }
  /// Bytes this array holds: its capacity when owned, the window when
  /// borrowed (page cache the index reads, shared with other processes).
  std::size_t memory_bytes() const { return (borrowing_ ? borrowed_size_ : own_.capacity()) * sizeof(T); }

 private:
  void refuse(const char* what) const {
    if (borrowing_) throw read_only_error(std::string("cannot ") + what + " storage read from a memory-mapped file");
  }

  std::vector<T, aligned_allocator<T>> own_;
  const T* borrowed_ = nullptr;
  std::size_t borrowed_size_ = 0;
  bool borrowing_ = false;
};

}  // namespace annulus
