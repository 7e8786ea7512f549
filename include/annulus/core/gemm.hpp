// Blocked inner products: out(i, j) = <a_i, b_j> for many rows of `a`
// (queries) against many rows of `b` (stored vectors), the core of exact batch
// search (and later of coarse quantizers and k-means).
//
// The classic packed-panel scheme: `b` is repacked into panels of
// panel_width rows stored dimension-major, so one step of the dimension loads
// the panel row (one AVX-512 register, two AVX2, four SSE / NEON) and
// broadcasts one value of each of a tile's rows of `a`; the tile of results
// lives in registers for the whole dimension loop (6 x 2 accumulators on
// AVX2, 12 x 1 on AVX-512). That is about one load per FMA, so the loop runs
// at FMA speed: measured 83 GFLOP/s a core on AVX2 at d = 784, against 59 for
// Eigen 3.4's GEMM and 68 for an unpacked dot-product tile. No OpenMP either
// way (an OpenMP-enabled Eigen starts a team inside each of our workers).
//
// The layout is the same for every instruction set (panel_width = 16, values
// in natural order): a matrix packed in one translation unit is read right
// in any other, whatever either was compiled for. The loops themselves are
// kernels (kernels.hpp), dispatched like the distances.
//
// Summation order: in dimension order per output, unlike kernels::dot; callers
// that need exact distances re-score their final candidates with the kernels.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "annulus/core/kernels.hpp"
#include "annulus/core/matrix.hpp"

namespace annulus::gemm {

inline constexpr std::size_t panel_width = kernels::panel_width;  // rows of b per panel
inline constexpr std::size_t depth_block = kernels::depth_block;  // dimensions per pass

/// Reusable scratch for inner_products (the packed panels of `b`): one per
/// thread, kept across calls so the hot loop allocates nothing after the first.
class workspace {
 public:
  float* panels(std::size_t floats) {
    if (buf_.size() < floats) buf_.resize(floats);
    return buf_.data();
  }

 private:
  std::vector<float, aligned_allocator<float>> buf_;
};

/// bfloat16: a float's sign, exponent and top 7 mantissa bits (relative
/// precision 2^-8, a float's range), for matrices read once per query where
/// bandwidth, not precision, sets the speed (IVF coarse centroids).
struct bf16 {
  std::uint16_t bits;
};
/// Rounds to the nearest bfloat16 (ties to even); values are finite.
inline bf16 to_bf16(float x) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(x);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return {static_cast<std::uint16_t>(u >> 16)};
}
inline float to_float(bf16 h) { return std::bit_cast<float>(std::uint32_t{h.bits} << 16); }
inline float to_float(float x) { return x; }

namespace detail {
// Rows [first, first + rows) of b into a dimension-major panel (value k of
// panel row j at k * panel_width + j); rows past `rows` are zero.
template <class E>
inline void pack_panel(matrix_view<const float> b, std::size_t first, std::size_t rows, E* panel) {
  const std::size_t d = b.cols();
  for (std::size_t j = 0; j < panel_width; ++j) {
    const float* src = j < rows ? b.row_ptr(first + j) : nullptr;
    for (std::size_t k = 0; k < d; ++k) {
      const float x = src ? src[k] : 0.f;
      if constexpr (std::is_same_v<E, bf16>) panel[k * panel_width + j] = to_bf16(x);
      else panel[k * panel_width + j] = x;
    }
  }
}
}  // namespace detail

/// Rows of a matrix packed once into inner_products' panel layout, for a `b`
/// that many calls multiply against (coarse centroids, PQ codebooks). Holds
/// the only copy: row() reads a row back out. E = bf16 stores each value
/// rounded to bfloat16, half the bytes (one_row_products reads it directly;
/// batches multiply against unpacked()).
template <class E>
class basic_packed_matrix {
 public:
  basic_packed_matrix() = default;
  explicit basic_packed_matrix(matrix_view<const float> b)
      : rows_(b.rows()), cols_(b.cols()), panels_(padded_rows() * b.cols()) {
    for (std::size_t p = 0; p * panel_width < rows_; ++p)
      detail::pack_panel(b, p * panel_width, std::min(panel_width, rows_ - p * panel_width),
                         panels_.data() + p * panel_width * cols_);
  }

  std::size_t rows() const { return rows_; }
  std::size_t cols() const { return cols_; }
  /// Rows rounded up to whole panels: the room one_row_products writes.
  std::size_t padded_rows() const { return (rows_ + panel_width - 1) / panel_width * panel_width; }
  const E* panels() const { return panels_.data(); }
  float at(std::size_t i, std::size_t k) const {
    return to_float(panels_[(i / panel_width) * panel_width * cols_ + k * panel_width + i % panel_width]);
  }
  /// Copies row i (cols() floats) to `out`.
  void row(std::size_t i, float* out) const {
    for (std::size_t k = 0; k < cols_; ++k) out[k] = at(i, k);
  }
  /// The same values as floats, same layout.
  basic_packed_matrix<float> unpacked() const {
    basic_packed_matrix<float> out;
    out.rows_ = rows_;
    out.cols_ = cols_;
    out.panels_.resize(panels_.size());
    for (std::size_t i = 0; i < panels_.size(); ++i) out.panels_[i] = to_float(panels_[i]);
    return out;
  }
  std::size_t memory_bytes() const { return panels_.capacity() * sizeof(E); }

 private:
  template <class>
  friend class basic_packed_matrix;
  std::size_t rows_ = 0, cols_ = 0;
  std::vector<E, aligned_allocator<E>> panels_;
};
using packed_matrix = basic_packed_matrix<float>;

/// out[i * out_stride + j] = <a_i, b_j> for every row i of `a` and j of `b`
/// (same column count; out_stride >= b.rows()). Single-threaded: callers
/// split the work over parallel_for. For full speed keep `a` (a few hundred
/// rows) and `b` (about a hundred rows) within L2 together.
inline void inner_products(matrix_view<const float> a, matrix_view<const float> b, float* out,
                           std::size_t out_stride, workspace& ws) {
  constexpr std::size_t nr = panel_width;
  const std::size_t d = a.cols();
  const std::size_t n_panels = (b.rows() + nr - 1) / nr;
  float* panels = ws.panels(n_panels * nr * d);
  for (std::size_t p = 0; p < n_panels; ++p)
    detail::pack_panel(b, p * nr, std::min(nr, b.rows() - p * nr), panels + p * nr * d);
  kernels::panel_products(a, panels, b.rows(), out, out_stride);
}

/// The same against a `b` packed beforehand.
inline void inner_products(matrix_view<const float> a, const packed_matrix& b, float* out,
                           std::size_t out_stride) {
  kernels::panel_products(a, b.panels(), b.rows(), out, out_stride);
}

/// out[j] = <q, b_j> for one row q of b.cols() floats, equal bit for bit to
/// row i of a batch inner_products (against b, or b.unpacked() for bf16).
/// `out` is 64-byte aligned with room for b.padded_rows() floats (the
/// padding rows come out as 0).
template <class E>
inline void one_row_products(const float* q, const basic_packed_matrix<E>& b, float* out) {
  const std::size_t n_panels = b.padded_rows() / panel_width;
  if constexpr (std::is_same_v<E, bf16>)
    kernels::row_products(q, b.cols(), reinterpret_cast<const std::uint16_t*>(b.panels()), n_panels, out);
  else
    kernels::row_products(q, b.cols(), b.panels(), n_panels, out);
}

}  // namespace annulus::gemm
