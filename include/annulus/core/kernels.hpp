// Distance kernels: dot product, squared L2 and norms, one-to-one and
// one-to-many. The SIMD path uses xsimd for the instruction set the including
// translation unit is compiled for (AVX-512, AVX2+FMA, SSE, NEON); compile with
// -march=native or -mavx2 -mfma to get more than the SSE2 baseline.
// simd_target() names the set in use. kernels::scalar holds the plain-loop
// reference the SIMD path is tested against.
//
// No pointer needs any alignment. Results are deterministic for a given build:
// the summation order depends only on the dimension, never on alignment.
#pragma once

#include <cmath>
#include <cstddef>

#include <xsimd/xsimd.hpp>

#include "annulus/core/matrix.hpp"

namespace annulus::kernels {

/// Plain loops in double precision: the reference the SIMD kernels are tested
/// against, and a definition of what each kernel computes.
namespace scalar {
inline float dot(const float* a, const float* b, std::size_t d) {
  double s = 0;
  for (std::size_t i = 0; i < d; ++i) s += double(a[i]) * double(b[i]);
  return static_cast<float>(s);
}
inline float l2sq(const float* a, const float* b, std::size_t d) {
  double s = 0;
  for (std::size_t i = 0; i < d; ++i) {
    const double t = double(a[i]) - double(b[i]);
    s += t * t;
  }
  return static_cast<float>(s);
}
inline float norm_sq(const float* a, std::size_t d) { return dot(a, a, d); }
}  // namespace scalar

using batch = xsimd::batch<float>;
inline constexpr std::size_t simd_width = batch::size;

/// Name of the xsimd architecture these kernels were compiled for ("avx2", ...).
inline const char* simd_target() { return xsimd::default_arch::name(); }

namespace detail {
// Four independent accumulators hide FMA latency; `step` folds one register
// (or, for the last d % simd_width elements, one float) of a and b into an
// accumulator. The tail is a plain loop: building a zero-padded register on
// the stack stalls store forwarding, which at d = 2 .. 7 cost more than the
// whole sum.
template <class Step>
inline float reduce4(const float* a, const float* b, std::size_t d, Step step) {
  constexpr std::size_t w = simd_width;
  std::size_t i = 0;
  float sum = 0.f;
  if (d >= w) {
    batch acc0(0.f), acc1(0.f), acc2(0.f), acc3(0.f);
    for (; i + 4 * w <= d; i += 4 * w) {
      acc0 = step(acc0, batch::load_unaligned(a + i), batch::load_unaligned(b + i));
      acc1 = step(acc1, batch::load_unaligned(a + i + w), batch::load_unaligned(b + i + w));
      acc2 = step(acc2, batch::load_unaligned(a + i + 2 * w), batch::load_unaligned(b + i + 2 * w));
      acc3 = step(acc3, batch::load_unaligned(a + i + 3 * w), batch::load_unaligned(b + i + 3 * w));
    }
    for (; i + w <= d; i += w)
      acc0 = step(acc0, batch::load_unaligned(a + i), batch::load_unaligned(b + i));
    sum = xsimd::hadd((acc0 + acc1) + (acc2 + acc3));
  }
  float tail = 0.f;
  for (; i < d; ++i) tail = step(tail, a[i], b[i]);
  return sum + tail;
}

struct fma_step {
  batch operator()(batch acc, batch x, batch y) const { return xsimd::fma(x, y, acc); }
  float operator()(float acc, float x, float y) const { return acc + x * y; }
};
struct sqdiff_step {
  batch operator()(batch acc, batch x, batch y) const {
    const batch t = x - y;
    return xsimd::fma(t, t, acc);
  }
  float operator()(float acc, float x, float y) const { return acc + (x - y) * (x - y); }
};
}  // namespace detail

/// <a, b> over d elements.
inline float dot(const float* a, const float* b, std::size_t d) {
  return detail::reduce4(a, b, d, detail::fma_step{});
}
/// ||a - b||^2 over d elements.
inline float l2sq(const float* a, const float* b, std::size_t d) {
  return detail::reduce4(a, b, d, detail::sqdiff_step{});
}
/// ||a||^2.
inline float norm_sq(const float* a, std::size_t d) { return dot(a, a, d); }
/// ||a||.
inline float norm(const float* a, std::size_t d) { return std::sqrt(norm_sq(a, d)); }

/// out[i] = <q, rows[i]> for every row (q has rows.cols() elements).
inline void dot_many(const float* q, matrix_view<const float> rows, float* out) {
  for (std::size_t i = 0; i < rows.rows(); ++i) out[i] = dot(q, rows.row_ptr(i), rows.cols());
}
/// out[i] = ||q - rows[i]||^2 for every row.
inline void l2sq_many(const float* q, matrix_view<const float> rows, float* out) {
  for (std::size_t i = 0; i < rows.rows(); ++i) out[i] = l2sq(q, rows.row_ptr(i), rows.cols());
}
/// out[i] = ||rows[i]||^2 for every row.
inline void norm_sq_many(matrix_view<const float> rows, float* out) {
  for (std::size_t i = 0; i < rows.rows(); ++i) out[i] = norm_sq(rows.row_ptr(i), rows.cols());
}

}  // namespace annulus::kernels
