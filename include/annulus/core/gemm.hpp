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
#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>
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
using kernels::batch;
using kernels::simd_width;

// Where element j (< panel_width) of a bf16 panel row is stored: the order
// in which unpacking the row's words with zeros (a shuffle within each
// 128-bit lane, no shift) yields elements [0, W) in one register and
// [W, 2W) in the other, W = simd_width.
constexpr std::size_t bf16_position(std::size_t j) {
  const bool high = j >= simd_width;
  const std::size_t e = high ? j - simd_width : j;
  return e / 4 * 8 + (high ? 4 : 0) + e % 4;
}

// One panel row (panel_width elements, 64-byte aligned storage) as two
// registers of floats: elements [0, W) and [W, 2W).
inline void load_panel_row(const float* p, batch& lo, batch& hi) {
  lo = batch::load_aligned(p);
  hi = batch::load_aligned(p + simd_width);
}
inline void load_panel_row(const bf16* p, batch& lo, batch& hi) {
#if defined(__AVX512BW__)
  if constexpr (simd_width == 16) {
    const __m512i w = _mm512_load_si512(p), zero = _mm512_setzero_si512();
    lo = batch(_mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, w)));
    hi = batch(_mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, w)));
    return;
  }
#endif
#if defined(__AVX2__)
  if constexpr (simd_width == 8) {
    const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(p)), zero = _mm256_setzero_si256();
    lo = batch(_mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, w)));
    hi = batch(_mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, w)));
    return;
  }
#endif
  alignas(64) float tmp[panel_width];
  for (std::size_t j = 0; j < panel_width; ++j) tmp[j] = to_float(p[bf16_position(j)]);
  lo = batch::load_aligned(tmp);
  hi = batch::load_aligned(tmp + simd_width);
}

// Rows [0, rows) of b into a dimension-major panel; rows past `rows` are zero.
template <class E>
inline void pack_panel(matrix_view<const float> b, std::size_t first, std::size_t rows, E* panel) {
  const std::size_t d = b.cols();
  for (std::size_t j = 0; j < panel_width; ++j) {
    const float* src = j < rows ? b.row_ptr(first + j) : nullptr;
    for (std::size_t k = 0; k < d; ++k) {
      const float x = src ? src[k] : 0.f;
      if constexpr (std::is_same_v<E, bf16>) panel[k * panel_width + bf16_position(j)] = to_bf16(x);
      else panel[k * panel_width + j] = x;
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
        alignas(64) float edge[mr * nr] = {};
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
// The whole depth in one pass (a stream per panel), keeping each depth
// block's partial sum in registers and adding the blocks in the batch's
// order, so the result is the batch's bit for bit.
template <std::size_t P, class E>
inline void row_tile(const float* q, std::size_t d, const E* panels, std::size_t panel_elems, float* out) {
  batch t0[P], t1[P];
  for (std::size_t p = 0; p < P; ++p) t0[p] = t1[p] = batch(0.f);  // overwritten by the first block
  for (std::size_t k0 = 0; k0 < d; k0 += depth_block) {
    batch c0[P], c1[P];
    for (std::size_t p = 0; p < P; ++p) c0[p] = c1[p] = batch(0.f);
    for (std::size_t k = k0, end = std::min(d, k0 + depth_block); k < end; ++k) {
      const batch qv(q[k]);
#pragma GCC unroll 8
      for (std::size_t p = 0; p < P; ++p) {
        batch lo, hi;
        load_panel_row(panels + p * panel_elems + k * panel_width, lo, hi);
        c0[p] = xsimd::fma(qv, lo, c0[p]);
        c1[p] = xsimd::fma(qv, hi, c1[p]);
      }
    }
    for (std::size_t p = 0; p < P; ++p) {
      t0[p] = k0 == 0 ? c0[p] : c0[p] + t0[p];
      t1[p] = k0 == 0 ? c1[p] : c1[p] + t1[p];
    }
  }
  for (std::size_t p = 0; p < P; ++p) {
    t0[p].store_aligned(out + p * panel_width);
    t1[p].store_aligned(out + p * panel_width + simd_width);
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
    return to_float(panels_[(i / panel_width) * panel_width * cols_ + k * panel_width + position(i % panel_width)]);
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
    for (std::size_t r = 0; r < panels_.size(); r += panel_width)
      for (std::size_t j = 0; j < panel_width; ++j) out.panels_[r + j] = to_float(panels_[r + position(j)]);
    return out;
  }
  std::size_t memory_bytes() const { return panels_.capacity() * sizeof(E); }

 private:
  template <class>
  friend class basic_packed_matrix;
  static constexpr std::size_t position(std::size_t j) {
    return std::is_same_v<E, bf16> ? detail::bf16_position(j) : j;
  }
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
  detail::multiply(a, panels, b.rows(), out, out_stride);
}

/// The same against a `b` packed beforehand.
inline void inner_products(matrix_view<const float> a, const packed_matrix& b, float* out,
                           std::size_t out_stride) {
  detail::multiply(a, b.panels(), b.rows(), out, out_stride);
}

/// out[j] = <q, b_j> for one row q of b.cols() floats, equal bit for bit to
/// row i of a batch inner_products (against b, or b.unpacked() for bf16).
/// `out` is 64-byte aligned with room for b.padded_rows() floats (the
/// padding rows come out as 0).
template <class E>
inline void one_row_products(const float* q, const basic_packed_matrix<E>& b, float* out) {
  constexpr std::size_t group = 4;  // panels per pass: 8 accumulators hide FMA latency
  const std::size_t d = b.cols(), panel_elems = panel_width * d;
  const std::size_t n_panels = b.padded_rows() / panel_width;
  std::size_t p = 0;
  for (; p + group <= n_panels; p += group)
    detail::row_tile<group>(q, d, b.panels() + p * panel_elems, panel_elems, out + p * panel_width);
  for (; p < n_panels; ++p)
    detail::row_tile<1>(q, d, b.panels() + p * panel_elems, panel_elems, out + p * panel_width);
}

}  // namespace annulus::gemm
