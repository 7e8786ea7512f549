#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "annulus/core/random.hpp"
#include "core/mixed_flags.hpp"

using namespace annulus;

// This file is compiled for the binary's target (AVX2, AVX-512, NEON ...);
// mixed_flags_baseline.cpp for the x86-64 baseline. What one packs the
// other reads: the layout does not depend on the target.
TEST_CASE("translation units compiled for different targets share packed matrices", "[kernels][gemm]") {
  random_generator rng(21);
  for (std::size_t d : {4u, 33u, 300u}) {
    for (std::size_t n : {3u, 16u, 37u}) {
      matrix<float> b(n, d);
      for (std::size_t i = 0; i < b.size(); ++i) b.view().data()[i] = float(rng.normal());
      INFO("d " << d << ", n " << n);

      const gemm::packed_matrix there = mixed_flags::pack(b.view());  // packed by the baseline unit
      const gemm::packed_matrix here(b.view());
      // The layout itself, for every target: panels of 16 rows, value k of
      // row j of a panel at k * 16 + j; bfloat16 the same, rounded.
      const gemm::basic_packed_matrix<gemm::bf16> half(b.view());
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t k = 0; k < d; ++k) {
          const std::size_t at = i / 16 * 16 * d + k * 16 + i % 16;
          REQUIRE(here.panels()[at] == b(i, k));
          REQUIRE(there.panels()[at] == b(i, k));
          REQUIRE(half.panels()[at].bits == gemm::to_bf16(b(i, k)).bits);
        }
      std::vector<float> row(d);
      for (std::size_t i = 0; i < n; ++i) {
        here.row(i, row.data());
        REQUIRE(std::vector<float>(b.row(i).begin(), b.row(i).end()) == row);
        there.row(i, row.data());
        REQUIRE(std::vector<float>(b.row(i).begin(), b.row(i).end()) == row);
        REQUIRE(mixed_flags::row(here, i) == row);  // read back by the baseline unit
      }

      // bfloat16 panels packed here, multiplied there, and the reverse.
      const gemm::basic_packed_matrix<gemm::bf16> half_here(b.view());
      const auto half_there = mixed_flags::pack_bf16(b.view());
      std::vector<float> q(d);
      for (float& x : q) x = float(rng.normal());
      const std::vector<float> there_products = mixed_flags::row_products(q.data(), half_here);
      std::vector<float, aligned_allocator<float>> here_products(half_there.padded_rows());
      gemm::one_row_products(q.data(), half_there, here_products.data());
      for (std::size_t j = 0; j < n; ++j) {
        std::vector<float> rounded(d);
        half_here.row(j, rounded.data());
        double mag = 0;
        for (std::size_t k = 0; k < d; ++k) mag += std::abs(double(q[k]) * rounded[k]);
        const float want = kernels::scalar::dot(q.data(), rounded.data(), d);
        REQUIRE(std::abs(there_products[j] - want) <= 1e-5 * mag + 1e-6);
        REQUIRE(std::abs(here_products[j] - want) <= 1e-5 * mag + 1e-6);
      }
      REQUIRE(std::abs(mixed_flags::l2sq(q.data(), b.row_ptr(0), d) - kernels::l2sq(q.data(), b.row_ptr(0), d)) <=
              1e-5f * kernels::scalar::l2sq(q.data(), b.row_ptr(0), d));
    }
  }
}

TEST_CASE("each translation unit reports its own way of choosing kernels", "[kernels]") {
  const kernels::simd_target_info there = mixed_flags::simd_target(), here = kernels::simd_target();
  INFO("baseline unit: " << there.describe() << "; this unit: " << here.describe());
  REQUIRE(here.chosen_at_run_time == kernels::chosen_at_run_time);
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(ANNULUS_SIMD_DISPATCH)
  REQUIRE(there.chosen_at_run_time);  // a baseline x86-64 unit dispatches
#endif
  // Two dispatching units on a CPU with AVX2 or AVX-512 pick the same set;
  // below that each falls back to its own target (sse2, sse4.2, ...).
  if (there.chosen_at_run_time && here.chosen_at_run_time && std::string(there.cpu_level) != "baseline" &&
      !there.capped && !here.capped)
    REQUIRE(std::string(there.isa) == here.isa);
}
