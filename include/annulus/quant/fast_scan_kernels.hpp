// The kernels of quant/fast_scan.hpp, one per instruction set: the block
// scans, each computing exactly what fast_scan::isa::scan_blocks_scalar
// computes, and (at the end) the table rows of quantize_lut. Read
// fast_scan.hpp first: it documents the packed layout, the table layout and
// the arithmetic these functions share.
//
// Every block scan has the signature
//   void f(const std::uint8_t* packed, std::size_t n_blocks, std::size_t pairs,
//          const std::uint8_t* lut, std::uint16_t* out)
// and writes out[32 b + i], the saturated uint16 sum for vector i of block b.
// No pointer needs any alignment.
//
// Why the results agree bit for bit although the kernels add in different
// orders and widths: every term is a non-negative byte, so a chain of
// saturating uint16 adds yields min(65535, exact sum) whatever the order or
// grouping, and partial sums of at most two bytes (<= 510) cannot overflow a
// plain uint16 add. One exception by contract: scan_blocks_avx2_unsaturated
// wraps instead of saturating, and is called only for tables whose sums
// cannot pass 65535, where the two agree.
//
// Which kernels exist depends on the translation unit (target.hpp): AVX2 and
// AVX-512 wherever dispatch.hpp could choose them (carrying their own target,
// so a baseline build holds them), SSSE3 when the unit is compiled for it
// (x86-64-v2 and up), NEON on aarch64. All live in the inline namespace named
// for the unit's flags, so units built with different flags never share a
// definition whose body differs.
#pragma once

#include <cstddef>
#include <cstdint>

#include "annulus/core/simd/target.hpp"

#define ANNULUS_DETAIL_FAST_SCAN_AVX2 \
  (ANNULUS_DETAIL_SIMD_X86 && (ANNULUS_DETAIL_SIMD_RUN_TIME || ANNULUS_DETAIL_SIMD_TU_LEVEL >= 1))
#define ANNULUS_DETAIL_FAST_SCAN_AVX512 \
  (ANNULUS_DETAIL_SIMD_X86 && (ANNULUS_DETAIL_SIMD_RUN_TIME || ANNULUS_DETAIL_SIMD_TU_LEVEL == 2))
#if ANNULUS_DETAIL_SIMD_X86 && defined(__SSSE3__)
#define ANNULUS_DETAIL_FAST_SCAN_SSSE3 1
#else
#define ANNULUS_DETAIL_FAST_SCAN_SSSE3 0
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#define ANNULUS_DETAIL_FAST_SCAN_NEON 1
#else
#define ANNULUS_DETAIL_FAST_SCAN_NEON 0
#endif

#if ANNULUS_DETAIL_SIMD_X86
#include <immintrin.h>
#endif
#if ANNULUS_DETAIL_FAST_SCAN_NEON
#include <arm_neon.h>
#endif

// ---- SSSE3: a pair's 32 bytes as two 16-byte halves ----
#if ANNULUS_DETAIL_FAST_SCAN_SSSE3
namespace annulus::fast_scan {
inline namespace ANNULUS_DETAIL_SIMD_ABI {
namespace isa {
inline void scan_blocks_ssse3(const std::uint8_t* packed, std::size_t n_blocks, std::size_t pairs,
                              const std::uint8_t* lut, std::uint16_t* out) {
  const __m128i nibble = _mm_set1_epi8(0x0F), low_byte = _mm_set1_epi16(0x00FF);
  for (std::size_t b = 0; b < n_blocks; ++b, out += 32) {
    const std::uint8_t* block = packed + b * pairs * 32;
    // even[h] holds vectors 16h + 0, 2, ..., 14; odd[h] vectors 16h + 1, 3, ...
    __m128i even[2] = {_mm_setzero_si128(), _mm_setzero_si128()};
    __m128i odd[2] = {_mm_setzero_si128(), _mm_setzero_si128()};
    for (std::size_t p = 0; p < pairs; ++p) {
      const __m128i t_lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(lut + 32 * p));
      const __m128i t_hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(lut + 32 * p + 16));
      for (int h = 0; h < 2; ++h) {
        const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 32 * p + 16 * h));
        const __m128i a = _mm_shuffle_epi8(t_lo, _mm_and_si128(c, nibble));
        const __m128i z = _mm_shuffle_epi8(t_hi, _mm_and_si128(_mm_srli_epi16(c, 4), nibble));
        const __m128i e = _mm_add_epi16(_mm_and_si128(a, low_byte), _mm_and_si128(z, low_byte));
        const __m128i o = _mm_add_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(z, 8));
        even[h] = _mm_adds_epu16(even[h], e);
        odd[h] = _mm_adds_epu16(odd[h], o);
      }
    }
    for (int h = 0; h < 2; ++h) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16 * h), _mm_unpacklo_epi16(even[h], odd[h]));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16 * h + 8), _mm_unpackhi_epi16(even[h], odd[h]));
    }
  }
}
}  // namespace isa
}  // namespace ANNULUS_DETAIL_SIMD_ABI
}  // namespace annulus::fast_scan
#endif

// ---- AVX2: a pair's 32 bytes in one register, the two tables broadcast ----
// The region adds AVX2 to the unit's target without removing AVX-512 (unlike
// core/simd/x86_avx2.hpp): GCC refuses to inline the unit's own AVX2
// intrinsics into a no-avx512f function of a unit compiled for AVX-512, and
// such a unit needs an AVX-512 CPU anyway. Present in AVX-512 units so that
// tests compare it there too.
#if ANNULUS_DETAIL_FAST_SCAN_AVX2
ANNULUS_DETAIL_TARGET_REGION_BEGIN("avx2")
namespace annulus::fast_scan {
inline namespace ANNULUS_DETAIL_SIMD_ABI {
namespace isa {
// One pair of sub-spaces for the 32 vectors of a block: the sums of both
// tables' bytes, split into even and odd vectors as uint16 lanes.
inline void fast_scan_pair_avx2(__m256i c, const std::uint8_t* lut, __m256i& even, __m256i& odd) {
  const __m256i nibble = _mm256_set1_epi8(0x0F), low_byte = _mm256_set1_epi16(0x00FF);
  const __m256i t_lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lut)));
  const __m256i t_hi = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lut + 16)));
  const __m256i a = _mm256_shuffle_epi8(t_lo, _mm256_and_si256(c, nibble));
  const __m256i z = _mm256_shuffle_epi8(t_hi, _mm256_and_si256(_mm256_srli_epi16(c, 4), nibble));
  even = _mm256_adds_epu16(even, _mm256_add_epi16(_mm256_and_si256(a, low_byte), _mm256_and_si256(z, low_byte)));
  odd = _mm256_adds_epu16(odd, _mm256_add_epi16(_mm256_srli_epi16(a, 8), _mm256_srli_epi16(z, 8)));
}
// Lane k of even / odd is vector 2k / 2k + 1; interleave within 128-bit
// lanes (vectors 0-7 | 16-23 and 8-15 | 24-31), then put the halves in order.
inline void fast_scan_store_avx2(__m256i even, __m256i odd, std::uint16_t* out) {
  const __m256i lo = _mm256_unpacklo_epi16(even, odd), hi = _mm256_unpackhi_epi16(even, odd);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permute2x128_si256(lo, hi, 0x20));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
}
inline void scan_blocks_avx2(const std::uint8_t* packed, std::size_t n_blocks, std::size_t pairs,
                             const std::uint8_t* lut, std::uint16_t* out) {
  for (std::size_t b = 0; b < n_blocks; ++b, out += 32) {
    const std::uint8_t* block = packed + b * pairs * 32;
    __m256i even = _mm256_setzero_si256(), odd = _mm256_setzero_si256();
    for (std::size_t p = 0; p < pairs; ++p)
      fast_scan_pair_avx2(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 32 * p)), lut + 32 * p,
                          even, odd);
    fast_scan_store_avx2(even, odd, out);
  }
}
// The same sums, only for a table whose sums cannot pass 65535 (the caller
// checks: fast_scan.hpp's sums_fit), in two fewer operations a pair: the
// 16-bit lanes take both looked-up bytes at once, wrapping (all = even +
// 256 odd mod 2^16), beside the odd bytes alone (odd mod 2^16); even = all -
// 256 odd mod 2^16 is exact because both true sums fit in 16 bits. +4-7%
// QPS for ivf_pq_fs (m = 196) on Fashion-MNIST.
inline void scan_blocks_avx2_unsaturated(const std::uint8_t* packed, std::size_t n_blocks, std::size_t pairs,
                                         const std::uint8_t* lut, std::uint16_t* out) {
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  for (std::size_t b = 0; b < n_blocks; ++b, out += 32) {
    const std::uint8_t* block = packed + b * pairs * 32;
    __m256i all = _mm256_setzero_si256(), odd = _mm256_setzero_si256();
    for (std::size_t p = 0; p < pairs; ++p) {
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 32 * p));
      const std::uint8_t* t = lut + 32 * p;
      const __m256i t_lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t)));
      const __m256i t_hi = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 16)));
      const __m256i a = _mm256_shuffle_epi8(t_lo, _mm256_and_si256(c, nibble));
      const __m256i z = _mm256_shuffle_epi8(t_hi, _mm256_and_si256(_mm256_srli_epi16(c, 4), nibble));
      all = _mm256_add_epi16(all, _mm256_add_epi16(a, z));
      odd = _mm256_add_epi16(odd, _mm256_add_epi16(_mm256_srli_epi16(a, 8), _mm256_srli_epi16(z, 8)));
    }
    fast_scan_store_avx2(_mm256_sub_epi16(all, _mm256_slli_epi16(odd, 8)), odd, out);
  }
}
}  // namespace isa
}  // namespace ANNULUS_DETAIL_SIMD_ABI
}  // namespace annulus::fast_scan
ANNULUS_DETAIL_TARGET_REGION_END
#endif

// ---- AVX-512BW: two pairs (64 bytes) per register ----
#if ANNULUS_DETAIL_FAST_SCAN_AVX512
ANNULUS_DETAIL_TARGET_REGION_BEGIN("avx512f,avx512bw,avx512vl,avx2")
namespace annulus::fast_scan {
inline namespace ANNULUS_DETAIL_SIMD_ABI {
namespace isa {
inline void scan_blocks_avx512(const std::uint8_t* packed, std::size_t n_blocks, std::size_t pairs,
                               const std::uint8_t* lut, std::uint16_t* out) {
  const __m512i nibble = _mm512_set1_epi8(0x0F), low_byte = _mm512_set1_epi16(0x00FF);
  const __m256i nibble256 = _mm256_set1_epi8(0x0F), low_byte256 = _mm256_set1_epi16(0x00FF);
  const __mmask16 upper = 0xFF00;  // the 128-bit lanes 2 and 3, as 32-bit elements
  for (std::size_t b = 0; b < n_blocks; ++b, out += 32) {
    const std::uint8_t* block = packed + b * pairs * 32;
    __m512i even = _mm512_setzero_si512(), odd = _mm512_setzero_si512();
    std::size_t p = 0;
    for (; p + 2 <= pairs; p += 2) {
      // Lanes 0-1: pair p, lanes 2-3: pair p + 1; each lane sees its pair's table.
      const std::uint8_t* t = lut + 32 * p;
      const __m512i t_lo = _mm512_mask_broadcast_i32x4(
          _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t))), upper,
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 32)));
      const __m512i t_hi = _mm512_mask_broadcast_i32x4(
          _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 16))), upper,
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 48)));
      const __m512i c = _mm512_loadu_si512(block + 32 * p);
      const __m512i a = _mm512_shuffle_epi8(t_lo, _mm512_and_si512(c, nibble));
      const __m512i z = _mm512_shuffle_epi8(t_hi, _mm512_and_si512(_mm512_srli_epi16(c, 4), nibble));
      even = _mm512_adds_epu16(even, _mm512_add_epi16(_mm512_and_si512(a, low_byte), _mm512_and_si512(z, low_byte)));
      odd = _mm512_adds_epu16(odd, _mm512_add_epi16(_mm512_srli_epi16(a, 8), _mm512_srli_epi16(z, 8)));
    }
    // Fold the two pairs' halves: the same vectors, so a saturating add.
    __m256i e = _mm256_adds_epu16(_mm512_castsi512_si256(even), _mm512_extracti64x4_epi64(even, 1));
    __m256i o = _mm256_adds_epu16(_mm512_castsi512_si256(odd), _mm512_extracti64x4_epi64(odd, 1));
    if (p < pairs) {  // an odd number of pairs: the last one at 256 bits
      const std::uint8_t* t = lut + 32 * p;
      const __m256i t_lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t)));
      const __m256i t_hi = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 16)));
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 32 * p));
      const __m256i a = _mm256_shuffle_epi8(t_lo, _mm256_and_si256(c, nibble256));
      const __m256i z = _mm256_shuffle_epi8(t_hi, _mm256_and_si256(_mm256_srli_epi16(c, 4), nibble256));
      e = _mm256_adds_epu16(e, _mm256_add_epi16(_mm256_and_si256(a, low_byte256), _mm256_and_si256(z, low_byte256)));
      o = _mm256_adds_epu16(o, _mm256_add_epi16(_mm256_srli_epi16(a, 8), _mm256_srli_epi16(z, 8)));
    }
    const __m256i lo = _mm256_unpacklo_epi16(e, o), hi = _mm256_unpackhi_epi16(e, o);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
  }
}
}  // namespace isa
}  // namespace ANNULUS_DETAIL_SIMD_ABI
}  // namespace annulus::fast_scan
ANNULUS_DETAIL_TARGET_REGION_END
#endif

// ---- NEON: vqtbl1q_u8, widened in order by vaddl (no interleave needed) ----
#if ANNULUS_DETAIL_FAST_SCAN_NEON
namespace annulus::fast_scan {
inline namespace ANNULUS_DETAIL_SIMD_ABI {
namespace isa {
inline void scan_blocks_neon(const std::uint8_t* packed, std::size_t n_blocks, std::size_t pairs,
                             const std::uint8_t* lut, std::uint16_t* out) {
  const uint8x16_t nibble = vdupq_n_u8(0x0F);
  for (std::size_t b = 0; b < n_blocks; ++b, out += 32) {
    const std::uint8_t* block = packed + b * pairs * 32;
    uint16x8_t acc[4] = {vdupq_n_u16(0), vdupq_n_u16(0), vdupq_n_u16(0), vdupq_n_u16(0)};  // vectors 8k..8k+7
    for (std::size_t p = 0; p < pairs; ++p) {
      const uint8x16_t t_lo = vld1q_u8(lut + 32 * p), t_hi = vld1q_u8(lut + 32 * p + 16);
      for (int h = 0; h < 2; ++h) {
        const uint8x16_t c = vld1q_u8(block + 32 * p + 16 * h);
        const uint8x16_t a = vqtbl1q_u8(t_lo, vandq_u8(c, nibble));
        const uint8x16_t z = vqtbl1q_u8(t_hi, vshrq_n_u8(c, 4));
        acc[2 * h] = vqaddq_u16(acc[2 * h], vaddl_u8(vget_low_u8(a), vget_low_u8(z)));
        acc[2 * h + 1] = vqaddq_u16(acc[2 * h + 1], vaddl_high_u8(a, z));
      }
    }
    for (int k = 0; k < 4; ++k) vst1q_u16(out + 8 * k, acc[k]);
  }
}
}  // namespace isa
}  // namespace ANNULUS_DETAIL_SIMD_ABI
}  // namespace annulus::fast_scan
#endif

// ---- Table rows: the per-query quantisation of fast_scan::quantize_lut ----
// A row is one sub-space's 16 floats. Its minimum and maximum are a
// reduction across the row, which scalar code runs as one serial chain of
// 15 compares (a third of a fast-scan query at m = 392); 16 floats are four
// 128-bit registers, so SSE2 (every x86-64) and NEON do it in a few
// independent steps. row_ranges is also quantize_lut's finiteness check:
// SSE2's min/max may drop a NaN, so an unordered compare of every entry
// reports it; NEON's vminq / vmaxq / vminvq return NaN when an input is.
// A +0/-0 tie may pick either, which changes no byte. Bytes (finite rows
// only): min((t - lo) * scale + 0.5, 255), truncated (>= 0).
#if ANNULUS_DETAIL_SIMD_X86 && defined(__SSE2__)
#define ANNULUS_DETAIL_FAST_SCAN_ROWS_SSE2 1
#else
#define ANNULUS_DETAIL_FAST_SCAN_ROWS_SSE2 0
#endif
#if ANNULUS_DETAIL_FAST_SCAN_ROWS_SSE2
#include <emmintrin.h>
#endif

namespace annulus::fast_scan {
inline namespace ANNULUS_DETAIL_SIMD_ABI {
namespace isa {

#if ANNULUS_DETAIL_FAST_SCAN_ROWS_SSE2
inline void row_min_max_sse2(const float* t, __m128& lo, __m128& hi) {
  const __m128 a = _mm_loadu_ps(t), b = _mm_loadu_ps(t + 4), c = _mm_loadu_ps(t + 8), d = _mm_loadu_ps(t + 12);
  lo = _mm_min_ps(_mm_min_ps(a, b), _mm_min_ps(c, d));
  hi = _mm_max_ps(_mm_max_ps(a, b), _mm_max_ps(c, d));
  lo = _mm_min_ps(lo, _mm_shuffle_ps(lo, lo, _MM_SHUFFLE(1, 0, 3, 2)));
  hi = _mm_max_ps(hi, _mm_shuffle_ps(hi, hi, _MM_SHUFFLE(1, 0, 3, 2)));
  lo = _mm_min_ps(lo, _mm_shuffle_ps(lo, lo, _MM_SHUFFLE(2, 3, 0, 1)));  // all four lanes hold the minimum
  hi = _mm_max_ps(hi, _mm_shuffle_ps(hi, hi, _MM_SHUFFLE(2, 3, 0, 1)));
}
#elif ANNULUS_DETAIL_FAST_SCAN_NEON
inline void row_min_max_neon(const float* t, float32x4_t& lo, float32x4_t& hi) {
  const float32x4_t a = vld1q_f32(t), b = vld1q_f32(t + 4), c = vld1q_f32(t + 8), d = vld1q_f32(t + 12);
  lo = vminq_f32(vminq_f32(a, b), vminq_f32(c, d));
  hi = vmaxq_f32(vmaxq_f32(a, b), vmaxq_f32(c, d));
}
#endif

/// lo[r], hi[r] = the smallest and largest entry of row r < rows (row r at
/// t + r * stride, 16 floats). Returns false if any entry is NaN (then lo
/// and hi may hold anything); an infinite entry makes lo or hi infinite.
inline bool row_ranges(const float* t, std::size_t rows, std::size_t stride, float* lo, float* hi) {
#if ANNULUS_DETAIL_FAST_SCAN_ROWS_SSE2
  __m128 nan = _mm_setzero_ps();  // lanes where some entry was unordered (NaN)
  for (std::size_t r = 0; r < rows; ++r, t += stride) {
    __m128 l, h;
    row_min_max_sse2(t, l, h);
    nan = _mm_or_ps(nan, _mm_or_ps(_mm_cmpunord_ps(_mm_loadu_ps(t), _mm_loadu_ps(t + 4)),
                                   _mm_cmpunord_ps(_mm_loadu_ps(t + 8), _mm_loadu_ps(t + 12))));
    lo[r] = _mm_cvtss_f32(l);
    hi[r] = _mm_cvtss_f32(h);
  }
  return _mm_movemask_ps(nan) == 0;
#elif ANNULUS_DETAIL_FAST_SCAN_NEON
  // vminq / vmaxq return NaN when either input is: a NaN reaches lo.
  bool ok = true;
  for (std::size_t r = 0; r < rows; ++r, t += stride) {
    float32x4_t l, h;
    row_min_max_neon(t, l, h);
    lo[r] = vminvq_f32(l);
    hi[r] = vmaxvq_f32(h);
    ok &= lo[r] == lo[r];
  }
  return ok;
#else
  bool ok = true;
  for (std::size_t r = 0; r < rows; ++r, t += stride) {
    float l = t[0], h = t[0];
    for (std::size_t c = 0; c < 16; ++c) {
      ok &= t[c] == t[c];
      l = t[c] < l ? t[c] : l;
      h = t[c] > h ? t[c] : h;
    }
    lo[r] = l;
    hi[r] = h;
  }
  return ok;
#endif
}

/// out[16 r + c] = min((t[r][c] - lo_r) * scale + 0.5, 255) truncated, lo_r
/// the smallest entry of row r; `scale` > 0 and small enough that the
/// values stay within a few ulp of 255 (quantize_lut's choice).
inline void quantize_rows(const float* t, std::size_t rows, std::size_t stride, float scale, std::uint8_t* out) {
  for (std::size_t r = 0; r < rows; ++r, t += stride, out += 16) {
#if ANNULUS_DETAIL_FAST_SCAN_ROWS_SSE2
    __m128 lo, hi;
    row_min_max_sse2(t, lo, hi);
    const __m128 s = _mm_set1_ps(scale), half = _mm_set1_ps(0.5f), top = _mm_set1_ps(255.f);
    __m128i v[4];
    for (int i = 0; i < 4; ++i)
      v[i] = _mm_cvttps_epi32(
          _mm_min_ps(_mm_add_ps(_mm_mul_ps(_mm_sub_ps(_mm_loadu_ps(t + 4 * i), lo), s), half), top));
    // 0..255 in int32: signed saturation to int16 keeps them, unsigned to bytes too.
    const __m128i bytes = _mm_packus_epi16(_mm_packs_epi32(v[0], v[1]), _mm_packs_epi32(v[2], v[3]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), bytes);
#elif ANNULUS_DETAIL_FAST_SCAN_NEON
    float32x4_t l, h;
    row_min_max_neon(t, l, h);
    const float32x4_t lo = vdupq_n_f32(vminvq_f32(l)), s = vdupq_n_f32(scale);
    const float32x4_t half = vdupq_n_f32(0.5f), top = vdupq_n_f32(255.f);
    uint32x4_t v[4];
    for (int i = 0; i < 4; ++i)
      v[i] = vcvtq_u32_f32(vminq_f32(vaddq_f32(vmulq_f32(vsubq_f32(vld1q_f32(t + 4 * i), lo), s), half), top));
    const uint16x8_t w0 = vcombine_u16(vmovn_u32(v[0]), vmovn_u32(v[1]));
    const uint16x8_t w1 = vcombine_u16(vmovn_u32(v[2]), vmovn_u32(v[3]));
    vst1q_u8(out, vcombine_u8(vmovn_u16(w0), vmovn_u16(w1)));
#else
    float lo = t[0];
    for (std::size_t c = 1; c < 16; ++c) lo = t[c] < lo ? t[c] : lo;
    for (std::size_t c = 0; c < 16; ++c) {
      const float v = (t[c] - lo) * scale + 0.5f;
      out[c] = static_cast<std::uint8_t>(v < 255.f ? v : 255.f);
    }
#endif
  }
}

}  // namespace isa
}  // namespace ANNULUS_DETAIL_SIMD_ABI
}  // namespace annulus::fast_scan
