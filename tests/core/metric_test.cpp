#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "annulus/core/metric.hpp"

using namespace annulus;

TEST_CASE("metric distances: smaller is closer, with the documented formulas", "[metric]") {
  const std::vector<float> a{1, 2, 3}, b{4, 6, 3};
  CHECK(l2::distance(a.data(), b.data(), 3) == Approx(9 + 16));
  CHECK(inner_product::distance(a.data(), b.data(), 3) == Approx(-(4 + 12 + 9)));
  // cosine's distance() expects unit vectors.
  const float s = 1.f / std::sqrt(2.f);
  const std::vector<float> u{s, s, 0}, v{1, 0, 0};
  CHECK(cosine::distance(u.data(), v.data(), 3) == Approx(1 - s));
  CHECK(cosine::distance(v.data(), v.data(), 3) == Approx(0).margin(1e-7));
}

TEST_CASE("from_dot agrees with distance", "[metric]") {
  const std::vector<float> a{1, -2, 0.5f}, b{3, 1, -1};
  const float dot = kernels::dot(a.data(), b.data(), 3);
  const float na = kernels::norm_sq(a.data(), 3), nb = kernels::norm_sq(b.data(), 3);
  CHECK(l2::from_dot(dot, na, nb) == Approx(l2::distance(a.data(), b.data(), 3)));
  CHECK(inner_product::from_dot(dot, na, nb) == inner_product::distance(a.data(), b.data(), 3));
}

TEST_CASE("similarity round-trips every metric's distance", "[metric]") {
  CHECK(similarity<inner_product>(inner_product::from_dot(7.5f, 0, 0)) == 7.5f);
  CHECK(similarity<cosine>(cosine::from_dot(0.25f, 0, 0)) == Approx(0.25f));
  CHECK(similarity<l2>(12.f) == -12.f);  // larger is closer
  CHECK(similarity(metric_kind::cosine, 0.f) == 1.f);
  CHECK_THROWS_AS(similarity(metric_kind(9), 0.f), invalid_argument);
  STATIC_REQUIRE(metric<l2>);
  STATIC_REQUIRE(metric<inner_product>);
  STATIC_REQUIRE(metric<cosine>);
  STATIC_REQUIRE_FALSE(metric<int>);
}
