#include <catch2/catch.hpp>

#include <cmath>

#include "annulus_bench/results.hpp"

using namespace annulus::bench;

TEST_CASE("pareto_frontier drops dominated points and sorts by recall", "[bench]") {
  const auto f = pareto_frontier({{0.5, 1000}, {0.9, 300}, {0.8, 200}, {0.99, 50}, {0.7, 900}, {0.9, 250}});
  REQUIRE(f.size() == 4);
  CHECK(f[0].recall == 0.5);
  CHECK(f[1].recall == 0.7);
  CHECK(f[2].recall == 0.9);
  CHECK(f[2].qps == 300);
  CHECK(f[3].recall == 0.99);
}

TEST_CASE("qps_at_recall interpolates log-linearly between frontier points", "[bench]") {
  const std::vector<curve_point> f{{0.8, 1000}, {0.9, 100}, {0.99, 10}};
  CHECK(*qps_at_recall(f, 0.9) == 100);
  CHECK(*qps_at_recall(f, 0.85) == Approx(std::sqrt(1000.0 * 100.0)));
  CHECK(*qps_at_recall(f, 0.5) == 1000);  // below the curve: its fastest point above
  CHECK_FALSE(qps_at_recall(f, 0.995));   // never reached
  CHECK_FALSE(qps_at_recall({}, 0.9));
  const std::vector<curve_point> exact{{1.0, 42}};
  CHECK(*qps_at_recall(exact, 0.99) == 42);
}

TEST_CASE("median of repeated measurements", "[bench]") {
  CHECK(median({}) == 0);
  CHECK(median({3.0}) == 3.0);
  CHECK(median({5.0, 1.0, 3.0}) == 3.0);
  CHECK(median({4.0, 1.0, 3.0, 2.0}) == 3.0);  // the upper middle of an even count
}
