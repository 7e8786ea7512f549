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
/// and under cosine no zero vector, under l2 and inner_product no norm above
/// max_row_norm. `what` names the input in messages ("data").
template <metric M>
void validate_rows(std::string_view what, matrix_view<const float> rows, std::size_t dim) {
  if (rows.rows() == 0) return;
  check::dimension(what, rows.cols(), dim);
  check::finite(what, rows);
  if constexpr (M::normalizes)
    check::nonzero_rows(what, rows);
  else
    check::norms_in_range(what, rows);
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
      const double norm = row_norm(src, d);
      if (norm >= 1e-15 && norm <= 1e15) {  // as always: one float reciprocal
        const float inv = 1.f / float(norm);
        for (std::size_t j = 0; j < d; ++j) dst[j] = src[j] * inv;
      } else {  // 1 / norm would leave float's range: divide in double
        for (std::size_t j = 0; j < d; ++j) dst[j] = float(double(src[j]) / norm);
      }
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
  const matrix_view<const float> one(q.data(), 1, q.size());
  validate_rows<M>("query", one, dim);
  if constexpr (M::normalizes) {
    store_rows<M>(one, scratch.data());
    return scratch.first(dim);
  } else {
    return q;
  }
}

}  // namespace annulus
