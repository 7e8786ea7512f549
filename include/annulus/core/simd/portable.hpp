// The kernels for the including translation unit's own target, through
// xsimd: whatever the compile flags allow (SSE2 on a plain x86-64 build,
// SSE4.2 under -march=x86-64-v2, NEON on aarch64, and the other
// architectures xsimd supports). On x86 this is the baseline of a
// dispatching build; elsewhere it is the only set.
//
// Like every kernel, this lives in the inline namespace named for the unit's
// target and mode (target.hpp): units compiled with different flags keep
// their own copies.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include <xsimd/xsimd.hpp>

#include "annulus/core/matrix.hpp"
#include "annulus/core/simd/kernel_set.hpp"
#include "annulus/core/simd/target.hpp"

namespace annulus::kernels {
inline namespace ANNULUS_DETAIL_SIMD_ABI {
namespace portable {

template <class Arch>
struct portable_vec {
  using reg = xsimd::batch<float, Arch>;
  static constexpr std::size_t width = reg::size;
  // Rows of `a` per GEMM tile: the accumulators (rows x panel registers)
  // plus a panel row must fit the register file (16 on x86, 32 on NEON).
#if XSIMD_WITH_NEON64 || XSIMD_WITH_NEON
  static constexpr std::size_t gemm_rows = 6;
#else
  static constexpr std::size_t gemm_rows = width >= 8 ? 6 : 2;
#endif
  static constexpr const char* name = Arch::name();

  static reg zero() { return reg(0.f); }
  static reg set1(float x) { return reg(x); }
  static reg load(const float* p) { return reg::load_unaligned(p); }
  static reg load_aligned(const float* p) { return reg::load_aligned(p); }
  static void store(float* p, reg v) { v.store_unaligned(p); }
  static void store_aligned(float* p, reg v) { v.store_aligned(p); }
  static reg add(reg a, reg b) { return a + b; }
  static reg sub(reg a, reg b) { return a - b; }
  static reg mul(reg a, reg b) { return a * b; }
  static reg fma(reg a, reg b, reg c) { return xsimd::fma(a, b, c); }
  static reg min(reg a, reg b) { return xsimd::min(a, b); }
  static float sum(reg v) { return xsimd::hadd(v); }
  static bool any_le(reg a, reg b) { return xsimd::any(a <= b); }
  static bool any_eq(reg a, reg b) { return xsimd::any(a == b); }
  // `width` bfloat16 values (the high halves of floats) widened to floats.
  static reg load_bf16(const std::uint16_t* p) {
#if XSIMD_WITH_NEON64
    if constexpr (width == 4) return reg(vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)));
#elif XSIMD_WITH_SSE2 && !XSIMD_WITH_AVX
    if constexpr (width == 4)
      return reg(_mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(),
                                                     _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))));
#endif
    alignas(64) float tmp[width];
    for (std::size_t j = 0; j < width; ++j) tmp[j] = std::bit_cast<float>(std::uint32_t{p[j]} << 16);
    return reg::load_aligned(tmp);
  }
  // `width` unsigned bytes widened to floats.
  static reg load_u8(const std::uint8_t* p) {
#if XSIMD_WITH_NEON64
    if constexpr (width == 4) {
      std::uint32_t four;
      std::memcpy(&four, p, 4);
      const uint16x4_t half = vget_low_u16(vmovl_u8(vcreate_u8(four)));
      return reg(vcvtq_f32_u32(vmovl_u16(half)));
    }
#elif XSIMD_WITH_SSE2 && !XSIMD_WITH_AVX
    if constexpr (width == 4) {
      std::int32_t four;
      std::memcpy(&four, p, 4);
      const __m128i zero = _mm_setzero_si128();
      const __m128i bytes = _mm_cvtsi32_si128(four);
      return reg(_mm_cvtepi32_ps(_mm_unpacklo_epi16(_mm_unpacklo_epi8(bytes, zero), zero)));
    }
#endif
    alignas(64) float tmp[width];
    for (std::size_t j = 0; j < width; ++j) tmp[j] = float(p[j]);
    return reg::load_aligned(tmp);
  }

  // Integer lanes for dot_u8_i16: 128-bit registers where the architecture
  // has them (xsimd has no pairwise multiply-add), plain ints elsewhere.
#if XSIMD_WITH_NEON64
  using ireg = int32x4_t;
  static constexpr std::size_t u8_width = 8;
  static ireg izero() { return vdupq_n_s32(0); }
  static ireg iadd(ireg a, ireg b) { return vaddq_s32(a, b); }
  static std::int32_t isum(ireg v) { return vaddvq_s32(v); }
  static ireg madd_u8_i16(ireg acc, const std::uint8_t* c, const std::int16_t* w) {
    const int16x8_t wide = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(c)));
    const int16x8_t weights = vld1q_s16(w);
    acc = vmlal_s16(acc, vget_low_s16(wide), vget_low_s16(weights));
    return vmlal_high_s16(acc, wide, weights);
  }
#elif XSIMD_WITH_SSE2
  using ireg = __m128i;
  static constexpr std::size_t u8_width = 8;
  static ireg izero() { return _mm_setzero_si128(); }
  static ireg iadd(ireg a, ireg b) { return _mm_add_epi32(a, b); }
  static std::int32_t isum(ireg v) {
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
    return _mm_cvtsi128_si32(v);
  }
  static ireg madd_u8_i16(ireg acc, const std::uint8_t* c, const std::int16_t* w) {
    const __m128i wide = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c)), _mm_setzero_si128());
    return _mm_add_epi32(acc, _mm_madd_epi16(wide, _mm_loadu_si128(reinterpret_cast<const __m128i*>(w))));
  }
#else
  using ireg = std::int32_t;
  static constexpr std::size_t u8_width = 1;
  static ireg izero() { return 0; }
  static ireg iadd(ireg a, ireg b) { return a + b; }
  static std::int32_t isum(ireg v) { return v; }
  static ireg madd_u8_i16(ireg acc, const std::uint8_t* c, const std::int16_t* w) { return acc + std::int32_t{*c} * *w; }
#endif
};

#include "annulus/core/simd/bodies.hpp"

/// The kernels for the translation unit's own target.
using native = kernel_impl<portable_vec<xsimd::default_arch>>;

}  // namespace portable
}  // namespace ANNULUS_DETAIL_SIMD_ABI
}  // namespace annulus::kernels
