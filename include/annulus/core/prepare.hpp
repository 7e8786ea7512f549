// Turning user vectors into what an index stores and searches with, in one
// place for every index: validation at the boundary, then the copy and, under
// cosine, the one normalisation the metric needs.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>
#include <string_view>

#include "annulus/core/kernels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/validate.hpp"

namespace annulus {

/// Throws unless `rows` can be stored under M: `dim` columns, finite values,
/// and (cosine) no zero vector. `what` names the input in messages ("data").
template <metric M>
void validate_rows(std::string_view what, matrix_view<const float> rows, std::size_t dim) {
  if (rows.rows() == 0) return;
  check::dimension(what, rows.cols(), dim);
  check::finite(what, rows);
  if constexpr (M::normalizes) check::nonzero_rows(what, rows);
}

/// Writes row i of `rows` to out + i * rows.cols(), normalised under cosine.
/// The rows passed validate_rows.
template <metric M>
void store_rows(matrix_view<const float> rows, float* out) {
  const std::size_t d = rows.cols();
  for (std::size_t i = 0; i < rows.rows(); ++i) {
    const float* src = rows.row_ptr(i);
    float* dst = out + i * d;
    if constexpr (M::normalizes) {
      const float inv = 1.f / kernels::norm(src, d);
      for (std::size_t j = 0; j < d; ++j) dst[j] = src[j] * inv;
    } else {
      std::copy_n(src, d, dst);
    }
  }
}

/// Validates a query and returns what to search with: the query itself, or
/// under cosine its normalised copy written to `scratch` (>= dim floats).
template <metric M>
std::span<const float> prepare_query(std::span<const float> q, std::size_t dim,
                                     std::span<float> scratch) {
  check::dimension("query", q.size(), dim);
  check::finite("query", q);
  if constexpr (M::normalizes) {
    const matrix_view<const float> one(q.data(), 1, q.size());
    check::nonzero_rows("query", one);
    store_rows<M>(one, scratch.data());
    return scratch.first(dim);
  } else {
    return q;
  }
}

}  // namespace annulus
