// The contract between the SIMD kernels and their callers: one instruction
// set's hot kernels as a table of plain functions, and the layout constants
// every instruction set shares.
//
// Layouts never depend on the instruction set: a packed panel is always
// panel_width floats (or bfloat16 values) wide in natural order, whether the
// kernel reading it holds a panel row in one AVX-512 register, two AVX2
// registers or four SSE / NEON registers. A matrix packed in a translation
// unit compiled for one target is read correctly by every other, and can be
// stored in a file.
#pragma once

#include <cstddef>
#include <cstdint>

#include "annulus/core/matrix.hpp"

namespace annulus::kernels {

/// Rows of `b` per packed GEMM panel (see gemm.hpp), for every target.
inline constexpr std::size_t panel_width = 16;
/// Dimensions per pass of the GEMM kernels. Part of the contract: each
/// output is summed in dimension order within a depth block, then the blocks
/// are added, so every target with FMA gives the same bits.
inline constexpr std::size_t depth_block = 256;

/// One instruction set's kernels. Every pointer is set; `name` says which set
/// ("avx2+fma", "avx512", or xsimd's name for the translation unit's own
/// target: "sse2", "sse4.2", "arm64+neon", ...). The GEMM entries read panels
/// packed as gemm.hpp describes.
struct kernel_set {
  const char* name;
  float (*dot)(const float* a, const float* b, std::size_t d);
  float (*l2sq)(const float* a, const float* b, std::size_t d);
  void (*dot_many)(const float* q, matrix_view<const float> rows, float* out);
  void (*l2sq_many)(const float* q, matrix_view<const float> rows, float* out);
  void (*norm_sq_many)(matrix_view<const float> rows, float* out);
  /// out[i * out_stride + j] = <a_i, b_j> for b_rows rows of b packed into
  /// ceil(b_rows / panel_width) panels of a.cols() dimensions each; `panels`
  /// 64-byte aligned.
  void (*panel_products)(matrix_view<const float> a, const float* panels, std::size_t b_rows,
                         float* out, std::size_t out_stride);
  /// out[j] = <q, b_j> for every row of n_panels packed panels (float or
  /// bfloat16 bits); `panels` and `out` 64-byte aligned, `out` with room for
  /// n_panels * panel_width floats.
  void (*row_products)(const float* q, std::size_t d, const float* panels, std::size_t n_panels,
                       float* out);
  void (*row_products_bf16)(const float* q, std::size_t d, const std::uint16_t* panels,
                            std::size_t n_panels, float* out);
  /// The c < n with the smallest key (norms[c] - 2 dots[c], or -dots[c] when
  /// norms is null), the smaller c on ties; writes the key to `key`.
  std::uint32_t (*argmin_key)(const float* dots, const float* norms, std::size_t n, float& key);
  /// The first j < n with x[j] <= t, or n.
  std::size_t (*first_at_most)(const float* x, std::size_t n, float t);
  /// Distances to 8-bit scalar-quantised vectors (quant/sq8.hpp): code c_i
  /// stands for min_i + scale_i c_i. sq8_l2: sum of (scale_i c_i + a_i)^2,
  /// with a_i = min_i - q_i; sq8_dot: sum of w_i c_i, with w_i = q_i scale_i.
  float (*sq8_l2)(const float* a, const float* scale, const std::uint8_t* codes, std::size_t d);
  float (*sq8_dot)(const float* w, const std::uint8_t* codes, std::size_t d);
  /// Sum of codes_i w_i in integers: the walk's kernel (quant/sq8.hpp sizes
  /// the weights so that the sum of |codes_i w_i| stays below 2^31). Exact,
  /// so every set returns the same value.
  std::int32_t (*dot_u8_i16)(const std::uint8_t* codes, const std::int16_t* w, std::size_t d);
};

}  // namespace annulus::kernels
