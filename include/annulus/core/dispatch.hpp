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
// Macros:
//   ANNULUS_SIMD_DISPATCH=1  dispatch at run time even when compiled for AVX2
//                            (an AVX2 build that uses AVX-512 where present;
//                            its fallback is still AVX2, the unit's target);
//   ANNULUS_SIMD_DISPATCH=0  never dispatch: the compile target's kernels
//                            only (SSE2 in a baseline build).
// Environment, read once at the choice:
//   ANNULUS_SIMD_MAX=avx512|avx2|baseline caps the run-time choice (to avoid
//   AVX-512 clock throttling, or to test a lower set); it never raises it,
//   and other values are ignored.
//
// Dispatch exists on x86-64 with GCC or Clang. Elsewhere (aarch64: NEON is
// the baseline) the compile target's kernels run, chosen at compile time.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <string>
#include <string_view>

#include "annulus/core/simd/portable.hpp"
#include "annulus/core/simd/target.hpp"

#if ANNULUS_DETAIL_SIMD_X86 && (ANNULUS_DETAIL_SIMD_RUN_TIME || ANNULUS_DETAIL_SIMD_TU_LEVEL == 1)
#include "annulus/core/simd/x86_avx2.hpp"
#endif
#if ANNULUS_DETAIL_SIMD_X86 && (ANNULUS_DETAIL_SIMD_RUN_TIME || ANNULUS_DETAIL_SIMD_TU_LEVEL == 2)
#include "annulus/core/simd/x86_avx512.hpp"
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
  bool capped;  ///< ANNULUS_SIMD_MAX made it take a lower set than the CPU allows
};

/// The run-time choice for translation units whose own target's kernels are
/// `Native` (a type in the namespace named for the unit's flags, so units
/// compiled for different baselines keep their own fallback and choice).
/// Made once, on first use, by a thread-safe static.
template <class Native>
const choice& run_time_choice() {
  static const choice chosen = [] {
    const level cpu = cpu_level(), cap = level_cap();
    auto set_for = [](level l) {
      const kernel_set* set = &Native::table;
#if ANNULUS_DETAIL_SIMD_X86 && ANNULUS_DETAIL_SIMD_RUN_TIME
      if (l == level::avx512) set = &x86_avx512::impl::table;
      else if (l == level::avx2) set = &x86_avx2::impl::table;
#else
      (void)l;
#endif
      return set;
    };
    const kernel_set* set = set_for(cap < cpu ? cap : cpu);
    return choice{set, cpu, set != set_for(cpu)};
  }();
  return chosen;
}

/// The chosen set on the hot path: one acquire load (a plain load on x86)
/// and a test, inlined into every dispatched call; run_time_choice runs once,
/// behind it.
template <class Native>
struct run_time_set {
  static inline std::atomic<const kernel_set*> cached{nullptr};
  static const kernel_set& get() {
    if (const kernel_set* s = cached.load(std::memory_order_acquire)) return *s;
    return first();
  }
  [[gnu::noinline, gnu::cold]] static const kernel_set& first() {
    const kernel_set* s = run_time_choice<Native>().set;
    cached.store(s, std::memory_order_release);
    return *s;
  }
};

}  // namespace annulus::kernels::dispatch
