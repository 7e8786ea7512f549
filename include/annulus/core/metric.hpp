// Metrics say how close two vectors are. Every metric reports a distance where
// smaller is closer, so one heap and one merge serve them all:
//   l2             squared Euclidean distance  ||a - b||^2
//   inner_product  -<a, b>
//   cosine         1 - cos(a, b); indexes normalise stored vectors once at add
//                  and the query once per search, so distance() sees unit vectors
// similarity() turns a distance back into the number users usually want.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "annulus/core/error.hpp"
#include "annulus/core/kernels.hpp"
#include "annulus/core/matrix.hpp"

namespace annulus {

/// Stable numbering, stored in files: never renumber.
enum class metric_kind : std::uint8_t { l2 = 1, inner_product = 2, cosine = 3 };

struct l2 {
  static constexpr metric_kind kind = metric_kind::l2;
  static constexpr std::string_view name = "l2";
  static constexpr bool normalizes = false;
  static float distance(const float* a, const float* b, std::size_t d) {
    return kernels::l2sq(a, b, d);
  }
  /// out[i] = distance(q, rows[i]) for every row, bit for bit: one kernel
  /// call for many rows (scans pay one dispatch, not one per row).
  static void distances(const float* q, matrix_view<const float> rows, float* out) {
    kernels::l2sq_many(q, rows, out);
  }
  /// The same distance from a dot product and squared norms (for GEMM paths).
  static float from_dot(float dot, float norm_sq_a, float norm_sq_b) {
    return norm_sq_a + norm_sq_b - 2.f * dot;
  }
};

struct inner_product {
  static constexpr metric_kind kind = metric_kind::inner_product;
  static constexpr std::string_view name = "inner_product";
  static constexpr bool normalizes = false;
  static float distance(const float* a, const float* b, std::size_t d) {
    return -kernels::dot(a, b, d);
  }
  static void distances(const float* q, matrix_view<const float> rows, float* out) {
    kernels::dot_many(q, rows, out);
    for (std::size_t i = 0; i < rows.rows(); ++i) out[i] = -out[i];
  }
  static float from_dot(float dot, float, float) { return -dot; }
};

struct cosine {
  static constexpr metric_kind kind = metric_kind::cosine;
  static constexpr std::string_view name = "cosine";
  static constexpr bool normalizes = true;
  /// a and b are already unit vectors.
  static float distance(const float* a, const float* b, std::size_t d) {
    return 1.f - kernels::dot(a, b, d);
  }
  static void distances(const float* q, matrix_view<const float> rows, float* out) {
    kernels::dot_many(q, rows, out);
    for (std::size_t i = 0; i < rows.rows(); ++i) out[i] = 1.f - out[i];
  }
  static float from_dot(float dot, float, float) { return 1.f - dot; }
};

/// What an index needs of a metric type.
template <class M>
concept metric = requires(const float* a, std::size_t d, float x, matrix_view<const float> rows, float* out) {
  { M::kind } -> std::convertible_to<metric_kind>;
  { M::name } -> std::convertible_to<std::string_view>;
  { M::normalizes } -> std::convertible_to<bool>;
  { M::distance(a, a, d) } -> std::same_as<float>;
  M::distances(a, rows, out);
  { M::from_dot(x, x, x) } -> std::same_as<float>;
};

/// Larger-is-closer value for a distance: the dot product for inner_product,
/// the cosine for cosine, and the negated squared distance for l2.
constexpr float similarity(metric_kind m, float distance) {
  switch (m) {
    case metric_kind::l2: return -distance;
    case metric_kind::inner_product: return -distance;
    case metric_kind::cosine: return 1.f - distance;
  }
  throw invalid_argument("similarity: unknown metric kind " + std::to_string(int(m)));
}
template <metric M>
constexpr float similarity(float distance) {
  return similarity(M::kind, distance);
}

constexpr std::string_view metric_name(metric_kind m) {
  switch (m) {
    case metric_kind::l2: return l2::name;
    case metric_kind::inner_product: return inner_product::name;
    case metric_kind::cosine: return cosine::name;
  }
  return "unknown";
}

}  // namespace annulus
