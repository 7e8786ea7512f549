// Forced run-time dispatch (ANNULUS_SIMD_DISPATCH=1) in a unit compiled for
// the binary's own target (core/forced_dispatch_unit.cpp): it compiled, it
// says it dispatches (x86), and its kernels agree with the scalar reference.
// Only in annulus_tests: the release preset builds it for the host (AVX-512
// on CI), the clang preset for AVX2.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <vector>

#include "annulus/core/kernels.hpp"
#include "annulus/core/random.hpp"

namespace forced_dispatch {
float l2sq(const float* a, const float* b, std::size_t d);
float dot(const float* a, const float* b, std::size_t d);
annulus::kernels::simd_target_info simd_target();
}  // namespace forced_dispatch

using namespace annulus;

TEST_CASE("forced dispatch compiles for the binary's own target and agrees with it", "[kernels]") {
  const kernels::simd_target_info forced = forced_dispatch::simd_target();
  INFO("forced unit: " << forced.describe() << "; this unit: " << kernels::simd_target().describe());
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
  REQUIRE(forced.chosen_at_run_time);
#endif
  random_generator rng(7, 0);
  for (const std::size_t d : {1u, 7u, 16u, 33u, 128u, 784u}) {
    std::vector<float> a(d), b(d);
    for (std::size_t j = 0; j < d; ++j) a[j] = float(rng.normal()), b[j] = float(rng.normal());
    const float ref_l2 = kernels::scalar::l2sq(a.data(), b.data(), d);
    const float ref_dot = kernels::scalar::dot(a.data(), b.data(), d);
    INFO("d = " << d);
    REQUIRE(std::abs(forced_dispatch::l2sq(a.data(), b.data(), d) - ref_l2) <= 1e-4f * (1 + ref_l2));
    // |dot| <= |a||b| <= (|a|^2 + |b|^2) / 2: the same scale as the l2 terms.
    REQUIRE(std::abs(forced_dispatch::dot(a.data(), b.data(), d) - ref_dot) <= 1e-4f * (1 + ref_l2 + std::abs(ref_dot)));
  }
}
