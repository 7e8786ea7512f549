// Input checks shared by every index's public calls. Each throws an annulus
// error whose message names the values; inner loops trust what passed.
#pragma once

#include <cmath>
#include <cstddef>
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

/// Every row has a positive norm (cosine cannot normalise a zero vector).
inline void nonzero_rows(std::string_view what, matrix_view<const float> m) {
  for (std::size_t i = 0; i < m.rows(); ++i)
    if (!(kernels::norm_sq(m.row_ptr(i), m.cols()) > 0.f))
      throw invalid_argument(std::string(what) + " row " + std::to_string(i) +
                             " is a zero vector, which has no direction under cosine");
}

/// 1 <= k <= available.
inline void k_in_range(std::size_t k, std::size_t available) {
  if (k == 0) throw invalid_argument("k must be at least 1, got 0");
  if (k > available)
    throw invalid_argument("k = " + std::to_string(k) + " exceeds the " +
                           std::to_string(available) + " vectors in the index");
}

/// `out` can hold k results.
inline void output_size(std::size_t out_size, std::size_t k) {
  if (out_size < k)
    throw invalid_argument("output holds " + std::to_string(out_size) + " neighbours, k = " +
                           std::to_string(k) + " needs " + std::to_string(k));
}

}  // namespace annulus::check
