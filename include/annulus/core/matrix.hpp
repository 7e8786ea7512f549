// Row-major matrices: a non-owning view and an owning, 64-byte aligned matrix.
//
// Ownership: matrix_view never owns memory; whoever built the view keeps the
// data alive while the view is used. matrix<T> owns its storage. Indexes take
// matrix_view<const float> at their boundary, so any of the adapters below
// (pointer, span, vector) hands data over without a copy. The Eigen adapters
// (view_of an Eigen matrix, to_row_major) are in core/eigen.hpp, which the
// umbrella annulus.hpp includes: this header, and so every index header, does
// not include Eigen.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/sizes.hpp"

namespace annulus {

/// n x d row-major view over memory owned elsewhere; `stride` is the distance
/// between row starts, in elements (>= cols). Cheap to copy.
template <class T>
class matrix_view {
 public:
  using value_type = std::remove_const_t<T>;

  constexpr matrix_view() = default;
  constexpr matrix_view(T* data, std::size_t rows, std::size_t cols)
      : matrix_view(data, rows, cols, cols) {}
  matrix_view(T* data, std::size_t rows, std::size_t cols, std::size_t stride)
      : data_(data), rows_(rows), cols_(cols), stride_(stride) {
    if (stride < cols)
      throw invalid_argument("matrix_view: row stride " + std::to_string(stride) +
                             " is smaller than the row length " + std::to_string(cols));
    if (data == nullptr && rows != 0 && cols != 0)
      throw invalid_argument("matrix_view: null data pointer for " + std::to_string(rows) +
                             " rows");
  }
  /// A view of mutable data converts to a view of const data.
  template <class U>
    requires(std::is_const_v<T> && std::is_same_v<const U, T>)
  constexpr matrix_view(const matrix_view<U>& other)  // NOLINT: implicit by design
      : data_(other.data()), rows_(other.rows()), cols_(other.cols()), stride_(other.stride()) {}

  constexpr T* data() const { return data_; }
  constexpr std::size_t rows() const { return rows_; }
  constexpr std::size_t cols() const { return cols_; }
  constexpr std::size_t stride() const { return stride_; }
  constexpr bool empty() const { return rows_ == 0 || cols_ == 0; }
  constexpr bool contiguous() const { return stride_ == cols_; }

  constexpr T* row_ptr(std::size_t i) const { return data_ + i * stride_; }
  constexpr std::span<T> row(std::size_t i) const { return {row_ptr(i), cols_}; }
  constexpr T& operator()(std::size_t i, std::size_t j) const { return data_[i * stride_ + j]; }

  /// Rows [begin, begin + count) as a view.
  matrix_view rows_slice(std::size_t begin, std::size_t count) const {
    if (begin > rows_ || count > rows_ - begin)
      throw invalid_argument("matrix_view: rows [" + std::to_string(begin) + ", " +
                             std::to_string(begin + count) + ") out of " +
                             std::to_string(rows_) + " rows");
    return {data_ + begin * stride_, count, cols_, stride_};
  }

 private:
  T* data_ = nullptr;
  std::size_t rows_ = 0;
  std::size_t cols_ = 0;
  std::size_t stride_ = 0;
};

/// Allocator for std::vector whose storage starts on a 64-byte boundary, so
/// rows of a multiple of 16 floats never straddle cache lines.
template <class T, std::size_t Align = 64>
struct aligned_allocator {
  using value_type = T;
  aligned_allocator() = default;
  template <class U>
  constexpr aligned_allocator(const aligned_allocator<U, Align>&) noexcept {}  // NOLINT
  template <class U>
  struct rebind {
    using other = aligned_allocator<U, Align>;
  };
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new[](sizes::bytes(n, sizeof(T), "aligned_allocator"), std::align_val_t{Align}));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete[](p, std::align_val_t{Align}); }
  friend bool operator==(const aligned_allocator&, const aligned_allocator&) { return true; }
};

/// Owning row-major matrix with rows stored contiguously (stride == cols) and
/// the first element aligned to 64 bytes. Zero-initialised.
template <class T>
class matrix {
  static_assert(std::is_trivially_copyable_v<T>, "matrix holds plain numbers");

 public:
  static constexpr std::size_t alignment = 64;

  matrix() = default;
  /// Throws capacity_error when rows x cols x sizeof(T) overflows or passes
  /// sizes::max_allocation_bytes, std::bad_alloc when memory runs out.
  matrix(std::size_t rows, std::size_t cols) : matrix(rows, cols, uninitialized) {
    if (size() != 0) std::memset(static_cast<void*>(data_.get()), 0, size() * sizeof(T));
  }
  /// Tag for a matrix whose elements the caller overwrites before reading:
  /// its pages are not touched here, so memory is committed only as rows are
  /// written (a reader that fails at row 1 of a huge file costs one row).
  struct uninitialized_t {};
  static constexpr uninitialized_t uninitialized{};
  matrix(std::size_t rows, std::size_t cols, uninitialized_t) : rows_(rows), cols_(cols) {
    const std::size_t bytes = sizes::array_bytes(rows, cols, sizeof(T), "matrix " + std::to_string(rows) +
                                                                           " x " + std::to_string(cols));
    if (bytes != 0)
      data_.reset(static_cast<T*>(::operator new[](bytes, std::align_val_t{alignment})));
  }
  /// Deep copy of any view.
  explicit matrix(matrix_view<const T> v) : matrix(v.rows(), v.cols(), uninitialized) {
    for (std::size_t i = 0; i < v.rows(); ++i)
      std::copy_n(v.row_ptr(i), v.cols(), row_ptr(i));
  }
  matrix(const matrix& o) : matrix(o.view()) {}
  matrix& operator=(const matrix& o) {
    if (this != &o) *this = matrix(o);
    return *this;
  }
  matrix(matrix&&) noexcept = default;
  matrix& operator=(matrix&&) noexcept = default;

  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  std::size_t rows() const { return rows_; }
  std::size_t cols() const { return cols_; }
  std::size_t size() const { return rows_ * cols_; }
  bool empty() const { return size() == 0; }

  T* row_ptr(std::size_t i) { return data_.get() + i * cols_; }
  const T* row_ptr(std::size_t i) const { return data_.get() + i * cols_; }
  std::span<T> row(std::size_t i) { return {row_ptr(i), cols_}; }
  std::span<const T> row(std::size_t i) const { return {row_ptr(i), cols_}; }
  T& operator()(std::size_t i, std::size_t j) { return data_[i * cols_ + j]; }
  const T& operator()(std::size_t i, std::size_t j) const { return data_[i * cols_ + j]; }

  matrix_view<T> view() { return {data_.get(), rows_, cols_, cols_}; }
  matrix_view<const T> view() const { return {data_.get(), rows_, cols_, cols_}; }
  operator matrix_view<const T>() const { return view(); }  // NOLINT: implicit by design

 private:
  struct aligned_delete {
    void operator()(T* p) const { ::operator delete[](p, std::align_val_t{alignment}); }
  };
  std::unique_ptr<T[], aligned_delete> data_;
  std::size_t rows_ = 0;
  std::size_t cols_ = 0;
};

// ---- Adapters: hand existing data to annulus without copying ----

/// A flat buffer of rows x cols values, row after row.
template <class T>
matrix_view<T> view_of(std::span<T> values, std::size_t cols) {
  if (cols == 0) throw invalid_argument("view_of: the row length (cols) must be positive, got 0");
  if (values.size() % cols != 0)
    throw dimension_mismatch("view_of: " + std::to_string(values.size()) +
                             " values do not split into rows of " + std::to_string(cols));
  return {values.data(), values.size() / cols, cols, cols};
}
template <class T>
matrix_view<const T> view_of(const std::vector<T>& values, std::size_t cols) {
  return view_of(std::span<const T>(values), cols);
}
template <class T>
matrix_view<T> view_of(std::vector<T>& values, std::size_t cols) {
  return view_of(std::span<T>(values), cols);
}
/// Rows given as a vector of vectors (what many callers hold), copied once
/// into a matrix. Throws dimension_mismatch naming the first row whose length
/// differs from row 0's, invalid_argument for rows of length 0.
template <class T>
matrix<T> from_rows(const std::vector<std::vector<T>>& rows) {
  const std::size_t cols = rows.empty() ? 0 : rows[0].size();
  if (!rows.empty() && cols == 0) throw invalid_argument("from_rows: row 0 is empty");
  for (std::size_t i = 1; i < rows.size(); ++i)
    if (rows[i].size() != cols)
      throw dimension_mismatch("from_rows: row " + std::to_string(i) + " has " + std::to_string(rows[i].size()) +
                               " values, row 0 has " + std::to_string(cols));
  matrix<T> out(rows.size(), cols);
  for (std::size_t i = 0; i < rows.size(); ++i) std::copy(rows[i].begin(), rows[i].end(), out.row_ptr(i));
  return out;
}
/// A single vector as a 1 x d matrix.
template <class T>
matrix_view<T> row_view(std::span<T> v) {
  return {v.data(), v.empty() ? 0 : std::size_t{1}, v.size(), v.size()};
}

}  // namespace annulus
