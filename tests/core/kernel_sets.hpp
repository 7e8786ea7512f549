// Every kernel set a test should check: the ones this build can run on this
// CPU (kernels::available_sets()), and the kernel bodies instantiated over a
// plain-array vector of 4, 8 and 16 floats, which runs the code paths of
// every register width (SSE / NEON, AVX2, AVX-512) on any host, including
// hosts without AVX-512, where CI cannot run the real AVX-512 set.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

#include "annulus/core/kernels.hpp"

namespace kernel_sets_detail {
using annulus::matrix_view;
using annulus::kernels::depth_block;
using annulus::kernels::kernel_set;
using annulus::kernels::panel_width;

template <std::size_t W>
struct array_vec {
  struct reg {
    float v[W];
  };
  static constexpr std::size_t width = W;
  static constexpr std::size_t gemm_rows = W == 16 ? 12 : W == 8 ? 6 : 2;
  static constexpr const char* name = W == 16 ? "array16" : W == 8 ? "array8" : "array4";

  template <class F>
  static reg map(F f) {
    reg r;
    for (std::size_t i = 0; i < W; ++i) r.v[i] = f(i);
    return r;
  }
  static reg zero() { return set1(0.f); }
  static reg set1(float x) { return map([&](std::size_t) { return x; }); }
  static reg load(const float* p) { return map([&](std::size_t i) { return p[i]; }); }
  // The alignment a W-float register load needs (64 bytes for W = 16): the
  // real AVX-512 set faults on less, so this stand-in refuses it too.
  static void require_aligned(const float* p) {
    if (reinterpret_cast<std::uintptr_t>(p) % (W * sizeof(float)) != 0)
      throw std::logic_error("array_vec: aligned access to a misaligned pointer");
  }
  static reg load_aligned(const float* p) {
    require_aligned(p);
    return load(p);
  }
  static void store(float* p, reg v) {
    for (std::size_t i = 0; i < W; ++i) p[i] = v.v[i];
  }
  static void store_aligned(float* p, reg v) {
    require_aligned(p);
    store(p, v);
  }
  static reg add(reg a, reg b) { return map([&](std::size_t i) { return a.v[i] + b.v[i]; }); }
  static reg sub(reg a, reg b) { return map([&](std::size_t i) { return a.v[i] - b.v[i]; }); }
  static reg mul(reg a, reg b) { return map([&](std::size_t i) { return a.v[i] * b.v[i]; }); }
  static reg fma(reg a, reg b, reg c) { return map([&](std::size_t i) { return std::fma(a.v[i], b.v[i], c.v[i]); }); }
  static reg min(reg a, reg b) { return map([&](std::size_t i) { return b.v[i] < a.v[i] ? b.v[i] : a.v[i]; }); }
  static float sum(reg v) {
    float s = 0;
    for (std::size_t i = 0; i < W; ++i) s += v.v[i];
    return s;
  }
  static bool any_le(reg a, reg b) {
    for (std::size_t i = 0; i < W; ++i)
      if (a.v[i] <= b.v[i]) return true;
    return false;
  }
  static bool any_eq(reg a, reg b) {
    for (std::size_t i = 0; i < W; ++i)
      if (a.v[i] == b.v[i]) return true;
    return false;
  }
  static reg load_bf16(const std::uint16_t* p) {
    return map([&](std::size_t i) { return std::bit_cast<float>(std::uint32_t{p[i]} << 16); });
  }
  static reg load_u8(const std::uint8_t* p) {
    return map([&](std::size_t i) { return float(p[i]); });
  }

  // Integer lanes as the real sets hold them: W int32 lanes, each the sum of
  // a pair of byte-by-weight products.
  struct ireg {
    std::int32_t v[W];
  };
  static constexpr std::size_t u8_width = 2 * W;
  static ireg izero() { return ireg{}; }
  static ireg iadd(ireg a, ireg b) {
    for (std::size_t i = 0; i < W; ++i) a.v[i] += b.v[i];
    return a;
  }
  static std::int32_t isum(ireg v) {
    std::int32_t s = 0;
    for (std::size_t i = 0; i < W; ++i) s += v.v[i];
    return s;
  }
  static ireg madd_u8_i16(ireg acc, const std::uint8_t* c, const std::int16_t* w) {
    for (std::size_t i = 0; i < W; ++i)
      acc.v[i] += std::int32_t{c[2 * i]} * w[2 * i] + std::int32_t{c[2 * i + 1]} * w[2 * i + 1];
    return acc;
  }
  // The AVX-512 width also has the masked tail step (n < u8_width values,
  // none read past them), so hosts without AVX-512 run that path too.
  static ireg madd_u8_i16_partial(ireg acc, const std::uint8_t* c, const std::int16_t* w, std::size_t n)
    requires(W == 16)
  {
    if (n >= u8_width) throw std::logic_error("array_vec: a masked tail of a full step");
    for (std::size_t j = 0; j < n; ++j) acc.v[j / 2] += std::int32_t{c[j]} * w[j];
    return acc;
  }
};

#include "annulus/core/simd/bodies.hpp"
}  // namespace kernel_sets_detail

inline std::vector<const annulus::kernels::kernel_set*> kernel_sets_to_check() {
  using namespace kernel_sets_detail;
  std::vector<const kernel_set*> sets = annulus::kernels::available_sets();
  sets.push_back(&kernel_impl<array_vec<4>>::table);
  sets.push_back(&kernel_impl<array_vec<8>>::table);
  sets.push_back(&kernel_impl<array_vec<16>>::table);
  return sets;
}
