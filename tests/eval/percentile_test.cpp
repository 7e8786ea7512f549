// percentile: nearest rank on a sorted copy; bad samples and p are refused.
#include <catch2/catch.hpp>

#include <vector>

#include "annulus/eval/percentile.hpp"

using namespace annulus;

TEST_CASE("percentile: nearest rank of the sorted sample, the input untouched", "[eval]") {
  const std::vector<double> sample{9, 1, 5, 3, 7};
  CHECK(percentile(sample, 0.0) == 1);
  CHECK(percentile(sample, 0.5) == 5);
  CHECK(percentile(sample, 0.99) == 9);
  CHECK(percentile(sample, 1.0) == 9);
  CHECK(percentile(sample, 0.3) == 3);  // rank round(0.3 * 4) = 1
  CHECK(sample.front() == 9);
  CHECK(percentile({42}, 0.99) == 42);
}

TEST_CASE("percentile: an empty sample or p outside [0, 1] is refused", "[eval]") {
  CHECK_THROWS_AS(percentile({}, 0.5), invalid_argument);
  CHECK_THROWS_AS(percentile({1, 2}, -0.1), invalid_argument);
  CHECK_THROWS_AS(percentile({1, 2}, 1.5), invalid_argument);
  CHECK_THROWS_WITH(percentile({1, 2}, 2), Catch::Contains("expected 0..1"));
}
