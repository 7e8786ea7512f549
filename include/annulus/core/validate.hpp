// Input checks shared by every index's public calls. Each throws an annulus
// error whose message names the values; inner loops trust what passed.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string>

#include "annulus/core/error.hpp"
#include "annulus/core/kernels.hpp"
#include "annulus/core/matrix.hpp"

namespace annulus::check {

/// `what` has `got` dimensions where `expected` are needed.
inline void dimension(std::string_view what, std::size_t got, std::size_t expected) {
  if (got != expected)
    throw dimension_mismatch(std::string(what) + " has " + std::to_string(got) +
                             " dimensions, index has " + std::to_string(expected));
}

/// Every value finite; names the first bad row and column.
inline void finite(std::string_view what, matrix_view<const float> m) {
  for (std::size_t i = 0; i < m.rows(); ++i) {
    const float* r = m.row_ptr(i);
    for (std::size_t j = 0; j < m.cols(); ++j)
      if (!std::isfinite(r[j]))
        throw invalid_argument(std::string(what) + " row " + std::to_string(i) + ", column " +
                               std::to_string(j) + " is " + std::to_string(r[j]) +
                               "; values must be finite");
  }
}
inline void finite(std::string_view what, std::span<const float> v) {
  finite(what, matrix_view<const float>(v.data(), v.empty() ? 0 : 1, v.size()));
}

}  // namespace annulus::check

namespace annulus {

/// |x| of a finite vector, right at both ends of the float range: the float
/// kernel where |x|^2 is a comfortable float (the common case, and the
/// rounding every stored vector has always had), double otherwise, where
/// components near 1e19 overflow |x|^2 in float and near 1e-20 underflow it.
inline double row_norm(const float* x, std::size_t d) {
  const float f = kernels::norm_sq(x, d);
  if (f >= 1e-30f && f <= 1e30f) return std::sqrt(double(f));
  double s = 0;
  for (std::size_t j = 0; j < d; ++j) s += double(x[j]) * double(x[j]);
  return std::sqrt(s);
}

/// The largest norm l2 and inner_product take: distances between two such
/// vectors (|a - b|^2 <= 4 max|x|^2, |<a, b>| <= max|x|^2) stay finite floats.
inline const double max_row_norm = std::sqrt(double(std::numeric_limits<float>::max()) / 4);

}  // namespace annulus

namespace annulus::check {

/// Every row has a positive norm (cosine cannot normalise a zero vector).
/// Tiny norms (components of 1e-30) are not zero: they normalise exactly.
inline void nonzero_rows(std::string_view what, matrix_view<const float> m) {
  for (std::size_t i = 0; i < m.rows(); ++i)
    if (!(row_norm(m.row_ptr(i), m.cols()) > 0))
      throw invalid_argument(std::string(what) + " row " + std::to_string(i) +
                             " is a zero vector, which has no direction under cosine");
}

/// Every row's norm at most max_row_norm (about 9.2e18), so l2 and inner
/// product distances cannot overflow to infinity and rank silently wrong.
inline void norms_in_range(std::string_view what, matrix_view<const float> m) {
  for (std::size_t i = 0; i < m.rows(); ++i) {
    if (kernels::norm_sq(m.row_ptr(i), m.cols()) <= 1e30f) continue;  // fast path: far below the limit
    const double n = row_norm(m.row_ptr(i), m.cols());
    if (n > max_row_norm)
      throw invalid_argument(std::string(what) + " row " + std::to_string(i) + " has norm " + std::to_string(n) +
                             ", above the " + std::to_string(max_row_norm) +
                             " at which squared distances overflow float; scale the data down");
  }
}

/// 1 <= k <= available.
inline void k_in_range(std::size_t k, std::size_t available) {
  if (k == 0) throw invalid_argument("k must be at least 1, got 0");
  if (k > available)
    throw invalid_argument("k = " + std::to_string(k) + " exceeds the " +
                           std::to_string(available) + " vectors in the index");
}

/// i < count: the position of a part (a shard, a band) an index has
/// `count` of; `what` names the call ("sharded_index::shard"), `part` the
/// part ("shard"). Returns i.
inline std::size_t part_index(std::string_view what, std::string_view part, std::size_t i, std::size_t count) {
  if (i >= count)
    throw invalid_argument(std::string(what) + ": " + std::string(part) + " " + std::to_string(i) +
                           " does not exist; the index has " + std::to_string(count) + " " + std::string(part) + "s");
  return i;
}

/// `out` can hold k results.
inline void output_size(std::size_t out_size, std::size_t k) {
  if (out_size < k)
    throw invalid_argument("output holds " + std::to_string(out_size) + " neighbours, k = " +
                           std::to_string(k) + " needs " + std::to_string(k));
}

}  // namespace annulus::check
