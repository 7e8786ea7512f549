// What the including translation unit is compiled for, and whether its
// kernels are chosen at run time: macros only, read by the kernel headers
// and dispatch.hpp (which documents the user-facing ANNULUS_SIMD_DISPATCH).
// ANNULUS_DETAIL_* names are internal.
#pragma once

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#define ANNULUS_DETAIL_SIMD_X86 1
#else
#define ANNULUS_DETAIL_SIMD_X86 0
#endif

// The translation unit's own x86 level: 2 = AVX-512 (F, BW, DQ, VL),
// 1 = AVX2 + FMA, 0 = below (or not x86).
#if ANNULUS_DETAIL_SIMD_X86 && defined(__AVX512F__) && defined(__AVX512BW__) && \
    defined(__AVX512DQ__) && defined(__AVX512VL__)
#define ANNULUS_DETAIL_SIMD_TU_LEVEL 2
#elif ANNULUS_DETAIL_SIMD_X86 && defined(__AVX2__) && defined(__FMA__)
#define ANNULUS_DETAIL_SIMD_TU_LEVEL 1
#else
#define ANNULUS_DETAIL_SIMD_TU_LEVEL 0
#endif

#if defined(ANNULUS_SIMD_DISPATCH)
#define ANNULUS_DETAIL_SIMD_RUN_TIME (ANNULUS_SIMD_DISPATCH && ANNULUS_DETAIL_SIMD_X86)
#else
#define ANNULUS_DETAIL_SIMD_RUN_TIME (ANNULUS_DETAIL_SIMD_X86 && ANNULUS_DETAIL_SIMD_TU_LEVEL == 0)
#endif

// A name for the translation unit's target and mode: every kernel and the
// public kernel functions live in an inline namespace of this name
// (annulus::kernels::compiled_avx2, ...::run_time_from_sse2, ...), so
// translation units compiled with different flags never share a definition
// whose body differs.
#if ANNULUS_DETAIL_SIMD_TU_LEVEL == 2
#define ANNULUS_DETAIL_SIMD_TU avx512
#elif ANNULUS_DETAIL_SIMD_TU_LEVEL == 1
#define ANNULUS_DETAIL_SIMD_TU avx2
#elif defined(__AVX__) && defined(__FMA__)
#define ANNULUS_DETAIL_SIMD_TU avx_fma
#elif defined(__AVX__)
#define ANNULUS_DETAIL_SIMD_TU avx
#elif defined(__SSE4_2__)
#define ANNULUS_DETAIL_SIMD_TU sse4_2
#elif defined(__SSE4_1__)
#define ANNULUS_DETAIL_SIMD_TU sse4_1
#elif defined(__SSSE3__)
#define ANNULUS_DETAIL_SIMD_TU ssse3
#elif defined(__SSE3__)
#define ANNULUS_DETAIL_SIMD_TU sse3
#elif defined(__SSE2__)
#define ANNULUS_DETAIL_SIMD_TU sse2
#elif defined(__aarch64__)
#define ANNULUS_DETAIL_SIMD_TU neon64
#elif defined(__ARM_NEON)
#define ANNULUS_DETAIL_SIMD_TU neon
#else
#define ANNULUS_DETAIL_SIMD_TU generic
#endif
#define ANNULUS_DETAIL_CAT2(a, b) a##b
#define ANNULUS_DETAIL_CAT(a, b) ANNULUS_DETAIL_CAT2(a, b)
#if ANNULUS_DETAIL_SIMD_RUN_TIME
#define ANNULUS_DETAIL_SIMD_ABI ANNULUS_DETAIL_CAT(run_time_from_, ANNULUS_DETAIL_SIMD_TU)
#else
#define ANNULUS_DETAIL_SIMD_ABI ANNULUS_DETAIL_CAT(compiled_, ANNULUS_DETAIL_SIMD_TU)
#endif

// The start and end of a region whose functions are compiled for `isa`
// (a GCC / Clang target string) whatever the command line says; x86_avx2.hpp
// and x86_avx512.hpp. GCC 12's AVX-512 intrinsics initialise their
// "undefined" registers from themselves, which -Wuninitialized reports once
// they are inlined into such a region: silenced for the region only.
#define ANNULUS_DETAIL_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define ANNULUS_DETAIL_TARGET_REGION_BEGIN(isa) \
  ANNULUS_DETAIL_PRAGMA(clang attribute push(__attribute__((target(isa))), apply_to = function))
#define ANNULUS_DETAIL_TARGET_REGION_END ANNULUS_DETAIL_PRAGMA(clang attribute pop)
#else
#define ANNULUS_DETAIL_TARGET_REGION_BEGIN(isa)                        \
  ANNULUS_DETAIL_PRAGMA(GCC diagnostic push)                           \
  ANNULUS_DETAIL_PRAGMA(GCC diagnostic ignored "-Wuninitialized")      \
  ANNULUS_DETAIL_PRAGMA(GCC diagnostic ignored "-Wmaybe-uninitialized") \
  ANNULUS_DETAIL_PRAGMA(GCC push_options)                              \
  ANNULUS_DETAIL_PRAGMA(GCC target(isa))
#define ANNULUS_DETAIL_TARGET_REGION_END \
  ANNULUS_DETAIL_PRAGMA(GCC pop_options) ANNULUS_DETAIL_PRAGMA(GCC diagnostic pop)
#endif
