// 8-bit scalar quantisation with a range per dimension: code c of dimension
// i stands for min_i + scale_i c, scale_i = (max_i - min_i) / 255, the range
// being what training saw. A vector becomes dim bytes, a quarter of its
// floats; hnsw_sq8_index walks its graph on them and re-ranks exactly.
//
//   sq8_quantizer sq(dim);
//   sq.train<l2>(rows);                       // per-dimension min and max
//   sq.encode(v, code);                       // dim bytes; values outside the range clamp
//   sq.prepare<l2>(q, query);                 // once per query
//   float d = sq.distance<l2>(query, code);   // ~ l2::distance(q, decoded code)
//
// Distances are asymmetric: the query stays in floats. Under l2 the kernel
// sums (scale_i c_i + min_i - q_i)^2; under inner_product and cosine it sums
// q_i scale_i c_i and adds <q, min>, so a code costs one byte load, a
// widening and one or two FMAs a dimension (kernels::sq8_l2, sq8_dot).
// Where the data takes at most 256 evenly spaced values a dimension (pixel
// intensities 0..255) and training saw both ends, codes are exact.
//
// Thread safety: const members are safe from any number of threads;
// train and restore are not (hnsw_sq8_index calls them before any node exists).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/kernels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/prepare.hpp"

namespace annulus {

/// One query's terms for sq8_quantizer::distance: dim floats and a constant.
struct sq8_query {
  std::vector<float> terms;
  float bias = 0;
};

class sq8_quantizer {
 public:
  /// Levels a code takes: 0..255.
  static constexpr float top = 255.f;

  /// An untrained quantiser for `dim`-dimensional vectors (its ranges are
  /// allocated now, so training allocates nothing). Throws std::bad_alloc.
  explicit sq8_quantizer(std::size_t dim) : min_(dim, 0.f), scale_(dim, 0.f) {}

  std::size_t dim() const { return min_.size(); }
  bool trained() const { return trained_; }
  /// Per-dimension lower ends and steps (dim floats each).
  std::span<const float> min() const { return min_; }
  std::span<const float> scale() const { return scale_; }

  /// Ranges from `rows` as Metric stores them (normalised under cosine):
  /// each dimension's smallest and largest value. Rows must be finite and
  /// have dim() columns (the caller validated them). A dimension that holds
  /// one value gets step 0: every code means that value. Allocates dim
  /// floats of scratch (throws std::bad_alloc before changing anything).
  template <metric Metric>
  void train(matrix_view<const float> rows) {
    const std::size_t d = dim();
    std::vector<float> lo(d, std::numeric_limits<float>::infinity()), hi(d, -std::numeric_limits<float>::infinity());
    std::vector<float> row(d);
    for (std::size_t i = 0; i < rows.rows(); ++i) {
      store_rows<Metric>(rows.rows_slice(i, 1), row.data());
      for (std::size_t j = 0; j < d; ++j) {
        lo[j] = std::min(lo[j], row[j]);
        hi[j] = std::max(hi[j], row[j]);
      }
    }
    if (rows.rows() == 0) std::fill(lo.begin(), lo.end(), 0.f), std::fill(hi.begin(), hi.end(), 0.f);
    for (std::size_t j = 0; j < d; ++j) {
      min_[j] = lo[j];
      // The step in double: max - min can exceed float's range (-3e38..3e38).
      scale_[j] = float((double(hi[j]) - double(lo[j])) / double(top));
    }
    trained_ = true;
  }

  /// Ranges a file saved (checked: finite, steps not negative). Throws
  /// invalid_argument on a size or value that is not so.
  void restore(std::span<const float> min, std::span<const float> scale) {
    if (min.size() != dim() || scale.size() != dim())
      throw invalid_argument("sq8_quantizer: " + std::to_string(dim()) + " ranges expected, got " +
                             std::to_string(min.size()) + " and " + std::to_string(scale.size()));
    for (std::size_t j = 0; j < dim(); ++j)
      if (!std::isfinite(min[j]) || !std::isfinite(scale[j]) || scale[j] < 0 ||
          std::abs(double(min[j]) + double(top) * double(scale[j])) > double(std::numeric_limits<float>::max()))
        throw invalid_argument("sq8_quantizer: dimension " + std::to_string(j) + " has range (" +
                               std::to_string(min[j]) + ", step " + std::to_string(scale[j]) + ")");
    std::copy(min.begin(), min.end(), min_.begin());
    std::copy(scale.begin(), scale.end(), scale_.begin());
    trained_ = true;
  }

  /// The code of v (dim floats, as stored: normalised under cosine) into
  /// out (dim bytes): the nearest level, values outside the trained range
  /// clamped to its ends.
  void encode(const float* v, std::uint8_t* out) const {
    for (std::size_t j = 0; j < dim(); ++j) {
      const float s = scale_[j];
      const double level = s > 0 ? (double(v[j]) - double(min_[j])) / double(s) : 0.0;
      out[j] = static_cast<std::uint8_t>(std::clamp(std::nearbyint(level), 0.0, double(top)));
    }
  }
  /// The value code `c` stands for in dimension j.
  float decode(std::size_t j, std::uint8_t c) const { return min_[j] + scale_[j] * float(c); }

  /// Query q's terms (q as Metric searches it: normalised under cosine).
  template <metric Metric>
  void prepare(const float* q, sq8_query& out) const {
    const std::size_t d = dim();
    out.terms.resize(d);
    if constexpr (Metric::kind == metric_kind::l2) {
      for (std::size_t j = 0; j < d; ++j) out.terms[j] = min_[j] - q[j];
      out.bias = 0;
    } else {
      for (std::size_t j = 0; j < d; ++j) out.terms[j] = q[j] * scale_[j];
      out.bias = kernels::dot(q, min_.data(), d);
    }
  }

  /// Metric's distance from the prepared query to the vector `code` stands for.
  template <metric Metric>
  float distance(const sq8_query& q, const std::uint8_t* code) const {
    if constexpr (Metric::kind == metric_kind::l2)
      return kernels::sq8_l2(q.terms.data(), scale_.data(), code, dim());
    else
      return Metric::from_dot(q.bias + kernels::sq8_dot(q.terms.data(), code, dim()), 0.f, 0.f);
  }

 private:
  std::vector<float> min_, scale_;
  bool trained_ = false;
};

}  // namespace annulus
