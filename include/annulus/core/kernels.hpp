// Distance kernels: dot product, squared L2 and norms, one-to-one and
// one-to-many, and the building blocks of the GEMM and selection loops.
// Which instruction set runs them is decided by dispatch.hpp: the one the
// translation unit is compiled for when that is AVX2 + FMA or AVX-512 (or
// not x86), otherwise the best the CPU has, chosen once at run time.
// simd_target() says which, and how it was chosen. kernels::scalar holds the
// plain-loop reference every set is tested against.
//
// No pointer needs any alignment unless stated (the GEMM blocks: 64 bytes).
// Results are deterministic for a given set: the summation order depends only
// on the dimension, never on alignment; sets differ from each other by float
// rounding only (register width, and SSE2's separate multiply and add where
// the others fuse them).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "annulus/core/dispatch.hpp"
#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/simd/kernel_set.hpp"

namespace annulus::kernels {

/// Plain loops in double precision: the reference the SIMD kernels are tested
/// against, and a definition of what each kernel computes.
namespace scalar {
inline float dot(const float* a, const float* b, std::size_t d) {
  double s = 0;
  for (std::size_t i = 0; i < d; ++i) s += double(a[i]) * double(b[i]);
  return static_cast<float>(s);
}
inline float l2sq(const float* a, const float* b, std::size_t d) {
  double s = 0;
  for (std::size_t i = 0; i < d; ++i) {
    const double t = double(a[i]) - double(b[i]);
    s += t * t;
  }
  return static_cast<float>(s);
}
inline float norm_sq(const float* a, std::size_t d) { return dot(a, a, d); }
}  // namespace scalar

/// What runs, as simd_target() reports it.
struct simd_target_info {
  /// The kernel set in use: "avx512", "avx2+fma", or xsimd's name for the
  /// translation unit's own target ("sse2", "sse4.2", "arm64+neon", ...).
  const char* isa;
  /// True when dispatch.hpp chose `isa` from the CPU at run time; false when
  /// the translation unit's compile flags fixed it.
  bool chosen_at_run_time;
  /// xsimd's name for what the translation unit is compiled for.
  const char* compiled_for;
  /// For run-time choices: the CPU's level ("avx512", "avx2", "baseline"),
  /// and whether ANNULUS_SIMD_MAX held the choice below it. Compile-time
  /// choices: "" and false.
  const char* cpu_level;
  bool capped;
  /// One line, e.g. "avx2+fma (chosen at run time, CPU level avx2;
  /// compiled for sse2)" or "avx2+fma (compiled in; compiled for fma3+avx2)".
  std::string describe() const {
    std::string s = isa;
    if (chosen_at_run_time)
      s += std::string(" (chosen at run time, CPU level ") + cpu_level +
           (capped ? ", capped by ANNULUS_SIMD_MAX" : "");
    else
      s += " (compiled in";
    return s + "; compiled for " + compiled_for + ")";
  }
};

// Everything whose body depends on the mode or the compile target sits in an
// inline namespace named for both (dispatch.hpp), so that translation units
// compiled with different flags never share one name for two bodies.
inline namespace ANNULUS_DETAIL_SIMD_ABI {

inline constexpr bool chosen_at_run_time = ANNULUS_DETAIL_SIMD_RUN_TIME;

namespace detail {
// The GEMM kernels load panels and store one-row results with aligned
// instructions (a 64-byte AVX-512 register): a misaligned pointer would
// fault there only, so it is refused everywhere.
inline void require_aligned(const void* p, const char* what) {
  if (reinterpret_cast<std::uintptr_t>(p) % 64 != 0)
    throw invalid_argument(std::string("kernels::") + what + " must be 64-byte aligned");
}

#if ANNULUS_DETAIL_SIMD_RUN_TIME
// The same static members as a kernel_impl, each forwarding to the set
// chosen at run time.
struct run_time_kernels {
  static const kernel_set& set() { return dispatch::run_time_set<portable::native>::get(); }
  static float dot(const float* a, const float* b, std::size_t d) { return set().dot(a, b, d); }
  static float l2sq(const float* a, const float* b, std::size_t d) { return set().l2sq(a, b, d); }
  static void dot_many(const float* q, matrix_view<const float> rows, float* out) { set().dot_many(q, rows, out); }
  static void l2sq_many(const float* q, matrix_view<const float> rows, float* out) { set().l2sq_many(q, rows, out); }
  static void norm_sq_many(matrix_view<const float> rows, float* out) { set().norm_sq_many(rows, out); }
  static void panel_products(matrix_view<const float> a, const float* panels, std::size_t b_rows, float* out,
                             std::size_t out_stride) {
    set().panel_products(a, panels, b_rows, out, out_stride);
  }
  static void row_products(const float* q, std::size_t d, const float* panels, std::size_t n, float* out) {
    set().row_products(q, d, panels, n, out);
  }
  static void row_products_bf16(const float* q, std::size_t d, const std::uint16_t* panels, std::size_t n,
                                float* out) {
    set().row_products_bf16(q, d, panels, n, out);
  }
  static std::uint32_t argmin_key(const float* dots, const float* norms, std::size_t n, float& key) {
    return set().argmin_key(dots, norms, n, key);
  }
  static std::size_t first_at_most(const float* x, std::size_t n, float t) { return set().first_at_most(x, n, t); }
  static float sq8_l2(const float* a, const float* scale, const std::uint8_t* codes, std::size_t d) {
    return set().sq8_l2(a, scale, codes, d);
  }
  static float sq8_dot(const float* w, const std::uint8_t* codes, std::size_t d) { return set().sq8_dot(w, codes, d); }
  static std::int32_t dot_u8_i16(const std::uint8_t* codes, const std::int16_t* w, std::size_t d) {
    return set().dot_u8_i16(codes, w, d);
  }
};
using use = run_time_kernels;
#elif ANNULUS_DETAIL_SIMD_TU_LEVEL == 2
using use = x86_avx512::impl;
#elif ANNULUS_DETAIL_SIMD_TU_LEVEL == 1
using use = x86_avx2::impl;
#else
using use = portable::native;
#endif
}  // namespace detail

/// The kernel set every function below uses.
inline const kernel_set& active() {
#if ANNULUS_DETAIL_SIMD_RUN_TIME
  return detail::run_time_kernels::set();
#else
  return detail::use::table;
#endif
}

/// The kernel sets this translation unit can run on this CPU, lowest first
/// (for tests and benchmarks that compare them; active() is one of them).
inline std::vector<const kernel_set*> available_sets() {
#if ANNULUS_DETAIL_SIMD_RUN_TIME
  std::vector<const kernel_set*> sets{&portable::native::table};
  const dispatch::level cpu = dispatch::cpu_level();
  if (cpu >= dispatch::level::avx2) sets.push_back(&x86_avx2::impl::table);
  if (cpu >= dispatch::level::avx512) sets.push_back(&x86_avx512::impl::table);
  return sets;
#else
  return {&detail::use::table};
#endif
}

/// Which kernels run and how they were chosen.
inline simd_target_info simd_target() {
  const char* compiled_for = xsimd::default_arch::name();
#if ANNULUS_DETAIL_SIMD_RUN_TIME
  const dispatch::choice& c = dispatch::run_time_choice<portable::native>();
  return {c.set->name, true, compiled_for, dispatch::level_name(c.cpu), c.capped};
#else
  return {detail::use::table.name, false, compiled_for, "", false};
#endif
}

/// <a, b> over d elements.
inline float dot(const float* a, const float* b, std::size_t d) { return detail::use::dot(a, b, d); }
/// ||a - b||^2 over d elements.
inline float l2sq(const float* a, const float* b, std::size_t d) { return detail::use::l2sq(a, b, d); }
/// ||a||^2.
inline float norm_sq(const float* a, std::size_t d) { return dot(a, a, d); }
/// ||a||.
inline float norm(const float* a, std::size_t d) { return std::sqrt(norm_sq(a, d)); }

/// out[i] = <q, rows[i]> for every row (q has rows.cols() elements); each
/// equals dot(q, rows[i]) bit for bit.
inline void dot_many(const float* q, matrix_view<const float> rows, float* out) {
  detail::use::dot_many(q, rows, out);
}
/// out[i] = ||q - rows[i]||^2 for every row.
inline void l2sq_many(const float* q, matrix_view<const float> rows, float* out) {
  detail::use::l2sq_many(q, rows, out);
}
/// out[i] = ||rows[i]||^2 for every row.
inline void norm_sq_many(matrix_view<const float> rows, float* out) { detail::use::norm_sq_many(rows, out); }

// ---- Building blocks of gemm.hpp, quant/centroids.hpp and flat search ----

/// See kernel_set::panel_products (gemm.hpp packs the panels). Throws
/// invalid_argument unless `panels` is 64-byte aligned.
inline void panel_products(matrix_view<const float> a, const float* panels, std::size_t b_rows,
                           float* out, std::size_t out_stride) {
  detail::require_aligned(panels, "panel_products: panels");
  detail::use::panel_products(a, panels, b_rows, out, out_stride);
}
/// See kernel_set::row_products. Throws invalid_argument unless `panels` and
/// `out` are 64-byte aligned.
inline void row_products(const float* q, std::size_t d, const float* panels, std::size_t n_panels,
                         float* out) {
  detail::require_aligned(panels, "row_products: panels");
  detail::require_aligned(out, "row_products: out");
  detail::use::row_products(q, d, panels, n_panels, out);
}
inline void row_products(const float* q, std::size_t d, const std::uint16_t* panels,
                         std::size_t n_panels, float* out) {
  detail::require_aligned(panels, "row_products: panels");
  detail::require_aligned(out, "row_products: out");
  detail::use::row_products_bf16(q, d, panels, n_panels, out);
}
/// See kernel_set::argmin_key.
inline std::uint32_t argmin_key(const float* dots, const float* norms, std::size_t n, float& key) {
  return detail::use::argmin_key(dots, norms, n, key);
}
/// See kernel_set::first_at_most.
inline std::size_t first_at_most(const float* x, std::size_t n, float t) {
  return detail::use::first_at_most(x, n, t);
}
/// See kernel_set::sq8_l2 and sq8_dot (quant/sq8.hpp builds the terms).
inline float sq8_l2(const float* a, const float* scale, const std::uint8_t* codes, std::size_t d) {
  return detail::use::sq8_l2(a, scale, codes, d);
}
inline float sq8_dot(const float* w, const std::uint8_t* codes, std::size_t d) {
  return detail::use::sq8_dot(w, codes, d);
}
/// See kernel_set::dot_u8_i16: the sum must stay within int32 (the caller's bound).
inline std::int32_t dot_u8_i16(const std::uint8_t* codes, const std::int16_t* w, std::size_t d) {
  return detail::use::dot_u8_i16(codes, w, d);
}

}  // namespace ANNULUS_DETAIL_SIMD_ABI
}  // namespace annulus::kernels
