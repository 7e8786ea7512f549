// Which kernels run. A translation unit compiled for AVX2 + FMA or AVX-512
// (-march=x86-64-v3 / -v4 / native on such a CPU) calls that set's kernels
// directly: compiled in, inlined, no dispatch. A translation unit compiled
// for the x86-64 baseline (no -march, or x86-64-v2) dispatches instead: the
// first kernel call reads the CPU (cpuid, through the compiler's
// __builtin_cpu_supports) and picks AVX-512, AVX2 + FMA or the translation
// unit's own target, once per program, in a thread-safe static; every later
// call goes through that table. Nothing beyond the baseline runs before the
// choice, and nothing the CPU lacks runs after it.
//
// Macros (define them the same way in every translation unit of a program):
//   ANNULUS_SIMD_DISPATCH=1  dispatch at run time even when compiled for AVX2
//                            (a program whose files use different flags, or a
//                            build that should use AVX-512 where present);
//   ANNULUS_SIMD_DISPATCH=0  never dispatch: the compile target's kernels
//                            only (SSE2 in a baseline build).
// Environment, read once at the choice:
//   ANNULUS_SIMD_MAX=avx512|avx2|baseline caps the run-time choice (to avoid
//   AVX-512 clock throttling, or to test a lower set); it never raises it.
//
// Dispatch exists on x86-64 with GCC or Clang. Elsewhere (aarch64: NEON is
// the baseline) the compile target's kernels run, chosen at compile time.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <string>
#include <string_view>

#include "annulus/core/simd/portable.hpp"

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

#if ANNULUS_DETAIL_SIMD_X86 && (ANNULUS_DETAIL_SIMD_RUN_TIME || ANNULUS_DETAIL_SIMD_TU_LEVEL == 1)
#include "annulus/core/simd/x86_avx2.hpp"
#endif
#if ANNULUS_DETAIL_SIMD_X86 && (ANNULUS_DETAIL_SIMD_RUN_TIME || ANNULUS_DETAIL_SIMD_TU_LEVEL == 2)
#include "annulus/core/simd/x86_avx512.hpp"
#endif

// A name for the translation unit's target and mode: the public kernel
// functions live in an inline namespace of this name (kernels.hpp), so
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

namespace annulus::kernels::dispatch {

/// Instruction-set levels, lowest first.
enum class level : unsigned char { baseline = 0, avx2 = 1, avx512 = 2 };

inline const char* level_name(level l) {
  switch (l) {
    case level::avx512: return "avx512";
    case level::avx2: return "avx2";
    case level::baseline: break;
  }
  return "baseline";
}

/// The highest level this CPU (and its operating system: the compiler's
/// check reads XCR0 for the saved register state) can run.
inline level cpu_level() {
#if ANNULUS_DETAIL_SIMD_X86
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return level::avx512;
  if (avx2) return level::avx2;
#endif
  return level::baseline;
}

/// ANNULUS_SIMD_MAX from the environment (avx512 when unset or not understood).
inline level level_cap() {
  const char* v = std::getenv("ANNULUS_SIMD_MAX");
  const std::string_view s = v ? v : "";
  if (s == "baseline" || s == "sse" || s == "sse2") return level::baseline;
  if (s == "avx2") return level::avx2;
  return level::avx512;
}

/// What the run-time choice saw and took.
struct choice {
  const kernel_set* set;
  level cpu;
  level cap;
};

/// The run-time choice for translation units whose own target's kernels are
/// `Native` (a template, so units compiled for different baselines keep
/// their own fallback). Made once, on first use, by a thread-safe static.
template <class Native>
const choice& run_time_choice() {
  static const choice chosen = [] {
    const level cpu = cpu_level(), cap = level_cap();
    const kernel_set* set = &Native::table;
#if ANNULUS_DETAIL_SIMD_X86 && ANNULUS_DETAIL_SIMD_RUN_TIME
    const level use = cap < cpu ? cap : cpu;
    if (use == level::avx512) set = &x86_avx512::impl::table;
    else if (use == level::avx2) set = &x86_avx2::impl::table;
#endif
    return choice{set, cpu, cap};
  }();
  return chosen;
}

}  // namespace annulus::kernels::dispatch
