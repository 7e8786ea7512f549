// Blocked inner products: out(i, j) = <a_i, b_j> for many rows of `a`
// (queries) against many rows of `b` (stored vectors), the core of exact batch
// search (and later of coarse quantizers and k-means).
//
// The classic packed-panel scheme: `b` is repacked into panels of
// panel_width rows stored dimension-major, so one step of the dimension loads
// two registers of b and broadcasts one value of each of tile_rows rows of
// `a`; the tile_rows x panel_width block of results lives in registers for the
// whole dimension loop (2 x tile_rows accumulators: 12 of AVX2's 16). That is
// two loads per 2 x tile_rows FMAs, so the loop runs at FMA speed: measured
// 83 GFLOP/s a core on AVX2 at d = 784, against 59 for Eigen 3.4's GEMM and 68
// for an unpacked dot-product tile. No OpenMP either way (an OpenMP-enabled
// Eigen starts a team inside each of our workers).
//
// Summation order: in dimension order per output, unlike kernels::dot; callers
// that need exact distances re-score their final candidates with the kernels.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

#include "annulus/core/kernels.hpp"
#include "annulus/core/matrix.hpp"

namespace annulus::gemm {

inline constexpr std::size_t panel_width = 2 * kernels::simd_width;  // rows of b per panel
inline constexpr std::size_t tile_rows = 6;                          // rows of a per tile
inline constexpr std::size_t depth_block = 256;                      // dimensions per pass

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

namespace detail {
using kernels::batch;
using kernels::simd_width;

// Rows [0, rows) of b into a dimension-major panel; rows past `rows` are zero.
inline void pack_panel(matrix_view<const float> b, std::size_t first, std::size_t rows,
                       float* panel) {
  const std::size_t d = b.cols();
  for (std::size_t j = 0; j < panel_width; ++j) {
    if (j < rows) {
      const float* src = b.row_ptr(first + j);
      for (std::size_t k = 0; k < d; ++k) panel[k * panel_width + j] = src[k];
    } else {
      for (std::size_t k = 0; k < d; ++k) panel[k * panel_width + j] = 0.f;
    }
  }
}

// out[i][0 .. panel_width) (+)= the partial products of MR rows of a with
// the panel over dimensions [k0, k0 + kc); `add` accumulates onto out.
template <std::size_t MR>
inline void tile(matrix_view<const float> a, std::size_t first, std::size_t k0, std::size_t kc,
                 const float* panel, float* out, std::size_t out_stride, bool add) {
  const float* rows[MR];
  for (std::size_t i = 0; i < MR; ++i) rows[i] = a.row_ptr(first + i) + k0;
  panel += k0 * panel_width;
  batch c0[MR], c1[MR];
  for (std::size_t i = 0; i < MR; ++i) c0[i] = c1[i] = batch(0.f);
  for (std::size_t k = 0; k < kc; ++k, panel += panel_width) {
    const batch b0 = batch::load_aligned(panel), b1 = batch::load_aligned(panel + simd_width);
#pragma GCC unroll 8  // the accumulators must stay in registers, also at -O2
    for (std::size_t i = 0; i < MR; ++i) {
      const batch av(rows[i][k]);
      c0[i] = xsimd::fma(av, b0, c0[i]);
      c1[i] = xsimd::fma(av, b1, c1[i]);
    }
  }
  for (std::size_t i = 0; i < MR; ++i) {
    float* o = out + i * out_stride;
    if (add) {
      c0[i] += batch::load_unaligned(o);
      c1[i] += batch::load_unaligned(o + simd_width);
    }
    c0[i].store_unaligned(o);
    c1[i].store_unaligned(o + simd_width);
  }
}

template <std::size_t... MR>
inline void tile_rest(std::size_t rest, matrix_view<const float> a, std::size_t first,
                      std::size_t k0, std::size_t kc, const float* panel, float* out,
                      std::size_t out_stride, bool add, std::index_sequence<MR...>) {
  ((rest == MR + 1 ? tile<MR + 1>(a, first, k0, kc, panel, out, out_stride, add) : void()), ...);
}

// The tile loops of inner_products over `b` already packed: n_panels panels
// of panel_width rows each (b_rows rows in all), d = a.cols() floats deep.
inline void multiply(matrix_view<const float> a, const float* panels, std::size_t b_rows,
                     float* out, std::size_t out_stride) {
  constexpr std::size_t nr = panel_width, mr = tile_rows;
  const std::size_t d = a.cols();
  const std::size_t n_panels = (b_rows + nr - 1) / nr;
  // Dimension chunks of depth_block keep a panel's slice (16 KiB on AVX2) in
  // L1 while every row tile of a passes over it.
  for (std::size_t k0 = 0; k0 < d; k0 += depth_block) {
    const std::size_t kc = std::min(depth_block, d - k0);
    const bool add = k0 != 0;
    for (std::size_t p = 0; p < n_panels; ++p) {
      const std::size_t cols = std::min(nr, b_rows - p * nr);
      const float* panel = panels + p * nr * d;
      for (std::size_t i = 0; i < a.rows(); i += mr) {
        const std::size_t rows = std::min(mr, a.rows() - i);
        float* dst = out + i * out_stride + p * nr;
        // A last, partial panel computes into `edge`, then copies its columns.
        alignas(64) float edge[mr * nr];
        const bool direct = cols == nr;
        float* target = direct ? dst : edge;
        const std::size_t stride = direct ? out_stride : nr;
        if (!direct && add)
          for (std::size_t r = 0; r < rows; ++r) std::copy_n(dst + r * out_stride, cols, edge + r * nr);
        if (rows == mr)
          tile<mr>(a, i, k0, kc, panel, target, stride, add);
        else
          tile_rest(rows, a, i, k0, kc, panel, target, stride, add, std::make_index_sequence<mr - 1>{});
        if (!direct)
          for (std::size_t r = 0; r < rows; ++r) std::copy_n(edge + r * nr, cols, dst + r * out_stride);
      }
    }
  }
}

// One row `q` against P consecutive panels: the per-output arithmetic of
// tile (FMAs in dimension order from zero within a depth block, then added
// to the partial sum), so one query gets bit for bit what a batch gets, with
// 2P independent accumulators instead of tile's 2 x tile_rows.
template <std::size_t P>
inline void row_tile(const float* q, std::size_t k0, std::size_t kc, const float* panels,
                     std::size_t panel_floats, float* out, bool add) {
  batch c0[P], c1[P];
  for (std::size_t p = 0; p < P; ++p) c0[p] = c1[p] = batch(0.f);
  for (std::size_t k = k0; k < k0 + kc; ++k) {
    const batch qv(q[k]);
#pragma GCC unroll 8
    for (std::size_t p = 0; p < P; ++p) {
      const float* at = panels + p * panel_floats + k * panel_width;
      c0[p] = xsimd::fma(qv, batch::load_aligned(at), c0[p]);
      c1[p] = xsimd::fma(qv, batch::load_aligned(at + simd_width), c1[p]);
    }
  }
  for (std::size_t p = 0; p < P; ++p) {
    float* o = out + p * panel_width;
    if (add) {
      c0[p] += batch::load_aligned(o);
      c1[p] += batch::load_aligned(o + simd_width);
    }
    c0[p].store_aligned(o);
    c1[p].store_aligned(o + simd_width);
  }
}
}  // namespace detail

/// Rows of a matrix packed once into inner_products' panel layout, for a `b`
/// that many calls multiply against (coarse centroids, PQ codebooks). Holds
/// the only copy: row() reads a row back out.
class packed_matrix {
 public:
  packed_matrix() = default;
  explicit packed_matrix(matrix_view<const float> b)
      : rows_(b.rows()), cols_(b.cols()), panels_(padded_rows() * b.cols()) {
    for (std::size_t p = 0; p * panel_width < rows_; ++p)
      detail::pack_panel(b, p * panel_width, std::min(panel_width, rows_ - p * panel_width),
                         panels_.data() + p * panel_width * cols_);
  }

  std::size_t rows() const { return rows_; }
  std::size_t cols() const { return cols_; }
  /// Rows rounded up to whole panels: the room one_row_products writes.
  std::size_t padded_rows() const { return (rows_ + panel_width - 1) / panel_width * panel_width; }
  const float* panels() const { return panels_.data(); }
  float at(std::size_t i, std::size_t k) const {
    return panels_[(i / panel_width) * panel_width * cols_ + k * panel_width + i % panel_width];
  }
  /// Copies row i (cols() floats) to `out`.
  void row(std::size_t i, float* out) const {
    for (std::size_t k = 0; k < cols_; ++k) out[k] = at(i, k);
  }
  std::size_t memory_bytes() const { return panels_.capacity() * sizeof(float); }

 private:
  std::size_t rows_ = 0, cols_ = 0;
  std::vector<float, aligned_allocator<float>> panels_;
};

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
  detail::multiply(a, panels, b.rows(), out, out_stride);
}

/// The same against a `b` packed beforehand.
inline void inner_products(matrix_view<const float> a, const packed_matrix& b, float* out,
                           std::size_t out_stride) {
  detail::multiply(a, b.panels(), b.rows(), out, out_stride);
}

/// out[j] = <q, b_j> for one row q of b.cols() floats, equal bit for bit to
/// row i of a batch inner_products. `out` is 64-byte aligned with room for
/// b.padded_rows() floats (the padding rows come out as 0).
inline void one_row_products(const float* q, const packed_matrix& b, float* out) {
  constexpr std::size_t group = 4;  // panels per pass: 8 accumulators hide FMA latency
  const std::size_t d = b.cols(), panel_floats = panel_width * d;
  const std::size_t n_panels = b.padded_rows() / panel_width;
  for (std::size_t k0 = 0; k0 < d; k0 += depth_block) {
    const std::size_t kc = std::min(depth_block, d - k0);
    std::size_t p = 0;
    for (; p + group <= n_panels; p += group)
      detail::row_tile<group>(q, k0, kc, b.panels() + p * panel_floats, panel_floats,
                              out + p * panel_width, k0 != 0);
    for (; p < n_panels; ++p)
      detail::row_tile<1>(q, k0, kc, b.panels() + p * panel_floats, panel_floats,
                          out + p * panel_width, k0 != 0);
  }
}

}  // namespace annulus::gemm
