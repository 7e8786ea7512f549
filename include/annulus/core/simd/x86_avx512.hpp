// AVX-512 kernels (x86-64-v4: F, BW, DQ, VL), compiled into every x86-64
// translation unit that needs them whatever its flags, as x86_avx2.hpp
// explains. One panel row of 16 floats is one register, so a GEMM tile holds
// 12 rows of `a` (12 accumulators of 32 registers).
//
// Nothing here runs unless dispatch.hpp chose it or the translation unit
// itself is compiled for AVX-512.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>

#include <immintrin.h>

#include "annulus/core/matrix.hpp"
#include "annulus/core/simd/kernel_set.hpp"
#include "annulus/core/simd/target.hpp"

ANNULUS_DETAIL_TARGET_REGION_BEGIN("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")

namespace annulus::kernels {
inline namespace ANNULUS_DETAIL_SIMD_ABI {
namespace x86_avx512 {

struct vec {
  using reg = __m512;
  static constexpr std::size_t width = 16;
  static constexpr std::size_t gemm_rows = 12;
  static constexpr const char* name = "avx512";

  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(float x) { return _mm512_set1_ps(x); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static reg load_aligned(const float* p) { return _mm512_load_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static void store_aligned(float* p, reg v) { _mm512_store_ps(p, v); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg min(reg a, reg b) { return _mm512_min_ps(a, b); }
  static float sum(reg v) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static bool any_le(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ) != 0; }
  static bool any_eq(reg a, reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ) != 0; }
  static reg load_bf16(const std::uint16_t* p) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  static reg load_u8(const std::uint8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }

  using ireg = __m512i;
  static constexpr std::size_t u8_width = 32;
  static ireg izero() { return _mm512_setzero_si512(); }
  static ireg iadd(ireg a, ireg b) { return _mm512_add_epi32(a, b); }
  static std::int32_t isum(ireg v) { return _mm512_reduce_add_epi32(v); }
  static ireg madd_u8_i16(ireg acc, const std::uint8_t* c, const std::int16_t* w) {  // AVX-512BW
    const __m512i wide = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c)));
    return _mm512_add_epi32(acc, _mm512_madd_epi16(wide, _mm512_loadu_si512(w)));
  }
  // The last n < u8_width dimensions in one masked step (bytes past n are not
  // read): at d = 784 the scalar loop would otherwise take the last 16.
  static ireg madd_u8_i16_partial(ireg acc, const std::uint8_t* c, const std::int16_t* w, std::size_t n) {
    const __mmask32 m = n >= 32 ? ~__mmask32{0} : (__mmask32{1} << n) - 1;
    const __m512i wide = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, c));
    return _mm512_add_epi32(acc, _mm512_madd_epi16(wide, _mm512_maskz_loadu_epi16(m, w)));
  }
};

#include "annulus/core/simd/bodies.hpp"

using impl = kernel_impl<vec>;

}  // namespace x86_avx512
}  // namespace ANNULUS_DETAIL_SIMD_ABI
}  // namespace annulus::kernels

ANNULUS_DETAIL_TARGET_REGION_END
