#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "annulus/core/gemm.hpp"
#include "annulus/core/random.hpp"

using namespace annulus;

TEST_CASE("gemm::inner_products equals the scalar dot at every edge shape", "[gemm]") {
  random_generator rng(8);
  gemm::workspace ws;  // reused across shapes, as callers do
  for (std::size_t d : {1u, 7u, 16u, 33u, 784u}) {
    for (std::size_t na : {1u, 5u, 6u, 13u}) {
      for (std::size_t nb : {1u, 15u, 16u, 17u, 40u}) {
        // Strided, unaligned views: a's rows padded by 3, b offset by one float.
        std::vector<float> a_buf(na * (d + 3) + 1), b_buf(nb * d + 1);
        for (float& x : a_buf) x = float(rng.normal());
        for (float& x : b_buf) x = float(rng.normal());
        const matrix_view<const float> a(a_buf.data() + 1, na, d, d + 3), b(b_buf.data() + 1, nb, d);
        const std::size_t stride = nb + 2;
        std::vector<float> out(na * stride, -7.f);
        gemm::inner_products(a, b, out.data(), stride, ws);
        for (std::size_t i = 0; i < na; ++i) {
          for (std::size_t j = 0; j < nb; ++j) {
            double mag = 0;
            for (std::size_t k = 0; k < d; ++k) mag += std::abs(double(a(i, k)) * b(j, k));
            INFO("d " << d << ", " << na << " x " << nb << ", at " << i << ", " << j);
            REQUIRE(std::abs(out[i * stride + j] - kernels::scalar::dot(a.row_ptr(i), b.row_ptr(j), d)) <=
                    1e-5 * mag + 1e-6);
          }
          for (std::size_t j = nb; j < stride; ++j) REQUIRE(out[i * stride + j] == -7.f);  // untouched
        }
      }
    }
  }
}
