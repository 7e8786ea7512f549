#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "annulus/core/kernels.hpp"
#include "annulus/eval/synthetic.hpp"

using namespace annulus;

TEST_CASE("gaussian_mixture: reproducible, streams differ, norms uneven", "[synthetic]") {
  const gaussian_mixture g(16, {.clusters = 5, .norm_ratio = 16.0, .seed = 3});
  const matrix<float> a = g.sample(2000, 1), b = g.sample(2000, 1), c = g.sample(2000, 2);
  REQUIRE(a.rows() == 2000);
  REQUIRE(a.cols() == 16);
  CHECK(std::equal(a.data(), a.data() + a.size(), b.data()));
  CHECK_FALSE(std::equal(a.data(), a.data() + a.size(), c.data()));
  double lo = 1e30, hi = 0;
  for (std::size_t i = 0; i < a.rows(); ++i) {
    const double n = kernels::norm(a.row_ptr(i), a.cols());
    lo = std::min(lo, n), hi = std::max(hi, n);
  }
  CHECK(hi / lo > 8.0);  // the 16x scale range shows in the norms
  CHECK_THROWS_AS(gaussian_mixture(0), invalid_argument);
  CHECK_THROWS_AS(gaussian_mixture(4, {.clusters = 0}), invalid_argument);
  CHECK_THROWS_AS(gaussian_mixture(4, {.norm_ratio = 0.5}), invalid_argument);
}
