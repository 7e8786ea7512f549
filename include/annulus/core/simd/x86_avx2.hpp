// AVX2 + FMA kernels (x86-64-v3), compiled into every x86-64 translation
// unit that needs them whatever its flags: the functions below carry the
// target themselves (a GCC / Clang target region), so a baseline build can
// hold them and call them once the CPU is known to have AVX2 and FMA
// (dispatch.hpp). A region adds to the unit's own target, so below AVX-512
// it also turns AVX-512 off: under forced dispatch in a unit compiled for
// AVX2, the AVX2 set must still run on an AVX2-only CPU. A unit compiled for
// AVX-512 runs only on AVX-512 CPUs anyway, and GCC will not inline its
// intrinsics (compiled for AVX-512) into a region without it, so there the
// region keeps AVX-512 on: forced dispatch in such a unit (for
// ANNULUS_SIMD_MAX=avx2, 256-bit kernels against AVX-512 clock throttling)
// compiles. Each unit's flags get their own copy (the namespace named for
// them, target.hpp).
//
// Nothing here runs unless dispatch.hpp chose it or the translation unit
// itself is compiled for AVX2 + FMA.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>

#include <immintrin.h>

#include "annulus/core/matrix.hpp"
#include "annulus/core/simd/kernel_set.hpp"
#include "annulus/core/simd/target.hpp"

#if ANNULUS_DETAIL_SIMD_TU_LEVEL == 2
ANNULUS_DETAIL_TARGET_REGION_BEGIN("avx2,fma")
#else
ANNULUS_DETAIL_TARGET_REGION_BEGIN("avx2,fma,no-avx512f")
#endif

namespace annulus::kernels {
inline namespace ANNULUS_DETAIL_SIMD_ABI {
namespace x86_avx2 {

struct vec {
  using reg = __m256;
  static constexpr std::size_t width = 8;
  static constexpr std::size_t gemm_rows = 6;  // 12 accumulators + 2 panel registers of 16
  static constexpr const char* name = "avx2+fma";

  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(float x) { return _mm256_set1_ps(x); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static reg load_aligned(const float* p) { return _mm256_load_ps(p); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static void store_aligned(float* p, reg v) { _mm256_store_ps(p, v); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
  static float sum(reg v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static bool any_le(reg a, reg b) { return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_LE_OQ)) != 0; }
  static bool any_eq(reg a, reg b) { return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_EQ_OQ)) != 0; }
  static reg load_bf16(const std::uint16_t* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static reg load_u8(const std::uint8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }

  using ireg = __m256i;
  static constexpr std::size_t u8_width = 16;
  static ireg izero() { return _mm256_setzero_si256(); }
  static ireg iadd(ireg a, ireg b) { return _mm256_add_epi32(a, b); }
  static std::int32_t isum(ireg v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
  }
  static ireg madd_u8_i16(ireg acc, const std::uint8_t* c, const std::int16_t* w) {
    const __m256i wide = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(wide, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w))));
  }
};

#include "annulus/core/simd/bodies.hpp"

using impl = kernel_impl<vec>;

}  // namespace x86_avx2
}  // namespace ANNULUS_DETAIL_SIMD_ABI
}  // namespace annulus::kernels

ANNULUS_DETAIL_TARGET_REGION_END
