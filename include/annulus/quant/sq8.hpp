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
// Two ways to score a code. distance() keeps the query in floats: under l2
// it sums (scale_i c_i + min_i - q_i)^2, under inner product and cosine
// q_i scale_i c_i plus <q, min>: a byte widened to a float and one or two
// FMAs a dimension (kernels::sq8_l2, sq8_dot). walk_distance() is the
// integer form the graph walk uses: the query's per-dimension coefficients
// rounded to int16 weights, summed against the bytes in int32
// (kernels::dot_u8_i16: 16 dimensions per AVX2 multiply-add, about 3x
// sq8_l2's speed on a cached code). Under l2 that needs the code's own
// sum of scale_i^2 c_i^2, stored after its bytes (code_term; a record is
// record_bytes<Metric>() long). One step serves every dimension (the
// largest coefficient over 2^31 / (255 dim), at most 32767 steps): the
// rounding moves a distance by at most step/2 x the sum of the codes, on
// random codes by about sqrt(dim) x 37 x step. A query whose coefficients
// are very uneven across dimensions gets coarser weights on the small
// ones; the walk only ranks with them, results are re-ranked exactly.
//
// Where the data takes at most 256 evenly spaced values a dimension (pixel
// intensities 0..255) and training saw both ends, codes are exact.
//
// Thread safety: const members are safe from any number of threads;
// train and restore are not (hnsw_sq8_index calls them before any node exists).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
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

/// One query as sq8_quantizer scores codes against it.
struct sq8_query {
  // distance(): dim floats and a constant.
  std::vector<float> terms;
  float bias = 0;
  // walk_distance(): whether it may be used for this query (prepare was
  // asked for weights and they are representable), dim int16 weights, what
  // one weight unit is worth, and a constant (l2: |q - min|^2; inner
  // product and cosine: <q, min>).
  bool integer = false;
  std::vector<std::int16_t> weights;
  float step = 0;
  float constant = 0;
};

class sq8_quantizer {
 public:
  /// Levels a code takes: 0..255.
  static constexpr float top = 255.f;
  /// Bytes after an l2 record's code: its float sum of scale_i^2 c_i^2.
  static constexpr std::size_t term_bytes = sizeof(float);
  /// Dimensions up to which walk_distance is offered: beyond, the int16
  /// weights that keep the int32 sum from overflowing (2^31 / (255 dim))
  /// would have about 10 bits or fewer.
  static constexpr std::size_t max_integer_dim = 8192;

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
  /// Bytes of one code as walk_distance<Metric> reads it: dim(), and the
  /// term after it under l2.
  template <metric Metric>
  std::size_t record_bytes() const {
    return dim() + (Metric::kind == metric_kind::l2 ? term_bytes : 0);
  }
  /// Writes the l2 term of the code at `code` (dim bytes) into the
  /// term_bytes after it: the sum of (scale_i c_i)^2, summed in double.
  void put_term(std::uint8_t* code) const {
    const float t = code_term(code);
    std::memcpy(code + dim(), &t, sizeof t);
  }
  float code_term(const std::uint8_t* code) const {
    double sum = 0;
    for (std::size_t j = 0; j < dim(); ++j) {
      const double x = double(scale_[j]) * double(code[j]);
      sum += x * x;
    }
    return float(sum);
  }
  /// Whether walk_distance may be used at this dimension.
  bool integer_walk() const { return dim() <= max_integer_dim; }

  /// The value code `c` stands for in dimension j.
  float decode(std::size_t j, std::uint8_t c) const { return min_[j] + scale_[j] * float(c); }

  /// Query q's terms for distance(), and with `weights` (and integer_walk())
  /// those for walk_distance() (q as Metric searches it: normalised under
  /// cosine); out.integer says whether walk_distance may be used.
  /// Allocates only on a query object's first use.
  template <metric Metric>
  void prepare(const float* q, sq8_query& out, bool weights = true) const {
    const std::size_t d = dim();
    out.terms.resize(d);
    if constexpr (Metric::kind == metric_kind::l2) {
      for (std::size_t j = 0; j < d; ++j) out.terms[j] = min_[j] - q[j];
      out.bias = 0;
    } else {
      for (std::size_t j = 0; j < d; ++j) out.terms[j] = q[j] * scale_[j];
      out.bias = kernels::dot(q, min_.data(), d);
    }
    out.integer = false;
    if (weights && integer_walk()) prepare_weights<Metric>(out);
  }

  /// Metric's distance from the prepared query to the vector `code` stands for.
  template <metric Metric>
  float distance(const sq8_query& q, const std::uint8_t* code) const {
    if constexpr (Metric::kind == metric_kind::l2)
      return kernels::sq8_l2(q.terms.data(), scale_.data(), code, dim());
    else
      return Metric::from_dot(q.bias + kernels::sq8_dot(q.terms.data(), code, dim()), 0.f, 0.f);
  }

  /// distance's integer form (q.integer must hold): `code` is
  /// record_bytes<Metric>() long, its term written by put_term under l2.
  /// A term that is negative or not finite (a damaged file's) counts as 0.
  template <metric Metric>
  float walk_distance(const sq8_query& q, const std::uint8_t* code) const {
    const float sum = q.step * float(kernels::dot_u8_i16(code, q.weights.data(), dim()));
    if constexpr (Metric::kind == metric_kind::l2) {
      std::uint32_t bits;
      std::memcpy(&bits, code + dim(), sizeof bits);
      // Tested on the bits, so that no floating-point mode can let a NaN through.
      const bool usable = (bits >> 31) == 0 && (bits & 0x7f800000u) != 0x7f800000u;
      return q.constant + sum + (usable ? std::bit_cast<float>(bits) : 0.f);
    } else {
      return Metric::from_dot(q.constant + sum, 0.f, 0.f);
    }
  }

 private:
  // The coefficients of c_i (l2: 2 scale_i (min_i - q_i), from the square's
  // cross term; otherwise q_i scale_i) rounded to multiples of `step`, the
  // largest to +-cap, so that the sum of 255 |weight| over dim() stays
  // below 2^31.
  template <metric Metric>
  void prepare_weights(sq8_query& out) const {
    const std::size_t d = dim();
    const double cap = std::min(32767.0, std::floor(2147483647.0 / (double(top) * double(d))));
    out.weights.resize(d);
    double largest = 0, constant = 0;
    for (std::size_t j = 0; j < d; ++j) {
      const double t = out.terms[j];
      largest = std::max(largest, std::abs(Metric::kind == metric_kind::l2 ? 2 * t * scale_[j] : t));
      if constexpr (Metric::kind == metric_kind::l2) constant += t * t;
    }
    const double step = largest > 0 ? largest / cap : 1.0;
    // A step below float's normal range (coefficients near 1e-34) would
    // lose the sum: such a query walks on floats.
    if (!(float(step) >= std::numeric_limits<float>::min())) return;
    for (std::size_t j = 0; j < d; ++j) {
      const double t = out.terms[j];
      const double w = Metric::kind == metric_kind::l2 ? 2 * t * scale_[j] : t;
      out.weights[j] = static_cast<std::int16_t>(std::clamp(std::nearbyint(w / step), -cap, cap));
    }
    out.step = float(step);
    out.constant = Metric::kind == metric_kind::l2 ? float(constant) : out.bias;
    out.integer = true;
  }

  std::vector<float> min_, scale_;
  bool trained_ = false;
};

}  // namespace annulus
