// k-means: the objective never rises, beats the random start, repairs empty
// clusters, does not depend on the thread count, and refuses bad input.
#include <catch2/catch.hpp>

#include <set>
#include <vector>

#include "annulus/quant/kmeans.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"

using namespace annulus;
using annulus::testing::message_has;

namespace {
// Sum of squared distances from each row to its nearest centroid, by brute force.
double objective(matrix_view<const float> data, const matrix<float>& centroids) {
  double total = 0;
  for (std::size_t i = 0; i < data.rows(); ++i) {
    double best = 1e300;
    for (std::size_t c = 0; c < centroids.rows(); ++c)
      best = std::min(best, double(kernels::scalar::l2sq(data.row_ptr(i), centroids.row_ptr(c), data.cols())));
    total += best;
  }
  return total;
}
}  // namespace

TEST_CASE("kmeans: the objective falls every iteration and ends below random centroids", "[kmeans]") {
  const auto data = annulus::testing::clustered(4000, 12, 16, 1);
  const auto result = kmeans(data.view(), 32, {.iterations = 15, .tolerance = -1, .seed = 5});
  REQUIRE(result.centroids.rows() == 32);
  REQUIRE(result.centroids.cols() == 12);
  REQUIRE(result.objective.size() == 15);
  for (std::size_t i = 1; i < result.objective.size(); ++i) {
    INFO("iteration " << i);
    CHECK(result.objective[i] <= result.objective[i - 1] * (1 + 1e-6));
  }
  CHECK(result.objective.back() < 0.8 * result.objective.front());  // the first is random rows
  // The reported objective is that of the returned centroids.
  CHECK(objective(data.view(), result.centroids) == Approx(result.objective.back()).epsilon(1e-4));

  // Random centroids (other rows of the data) do worse.
  random_generator rng(99);
  matrix<float> random(32, 12);
  for (std::size_t c = 0; c < 32; ++c) {
    const std::size_t r = rng.below(data.rows());
    std::copy_n(data.row_ptr(r), 12, random.row(c).data());
  }
  CHECK(result.objective.back() < 0.8 * objective(data.view(), random));
}

TEST_CASE("kmeans: the same centroids on 1 and 2 threads, and for the same seed", "[kmeans]") {
  const auto data = annulus::testing::clustered(3000, 9, 8, 2);
  const auto one = kmeans(data.view(), 20, {.iterations = 8, .seed = 3, .threads = 1});
  const auto two = kmeans(data.view(), 20, {.iterations = 8, .seed = 3, .threads = 2});
  REQUIRE(one.objective == two.objective);
  for (std::size_t i = 0; i < one.centroids.size(); ++i)
    REQUIRE(one.centroids.data()[i] == two.centroids.data()[i]);
  const auto other = kmeans(data.view(), 20, {.iterations = 8, .seed = 4, .threads = 1});
  CHECK(other.objective != one.objective);
}

TEST_CASE("kmeans: empty clusters take the points farthest from their centroids", "[kmeans]") {
  // 40 points at 10 distinct places: random starts often pick the same place
  // twice, leaving a cluster empty that the repair must fill.
  matrix<float> data(40, 3);
  for (std::size_t i = 0; i < 40; ++i)
    for (std::size_t j = 0; j < 3; ++j) data(i, j) = float((i % 10) * 10 + j) + (i >= 20 ? 0.5f : 0.f);
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    const auto result = kmeans(data.view(), 20, {.iterations = 20, .tolerance = -1, .seed = seed});
    // Every centroid sits on some data point's neighbourhood: none is left stranded.
    std::set<std::size_t> used;
    for (std::size_t i = 0; i < data.rows(); ++i) {
      std::size_t best = 0;
      for (std::size_t c = 1; c < 20; ++c)
        if (kernels::scalar::l2sq(data.row_ptr(i), result.centroids.row_ptr(c), 3) <
            kernels::scalar::l2sq(data.row_ptr(i), result.centroids.row_ptr(best), 3))
          best = c;
      used.insert(best);
    }
    INFO("seed " << seed);
    CHECK(used.size() == 20);  // 20 distinct points: the optimum uses every centroid
    CHECK(result.objective.back() < 1e-3);
  }
}

TEST_CASE("kmeans: samples at most max_points_per_centroid points per centroid", "[kmeans]") {
  const auto data = annulus::testing::clustered(5000, 6, 4, 3);
  const auto result = kmeans(data.view(), 10, {.iterations = 3, .max_points_per_centroid = 50});
  CHECK(result.training_points == 500);
}

TEST_CASE("kmeans: bad input is a clear error", "[kmeans]") {
  const auto data = annulus::testing::clustered(50, 4, 2, 4);
  CHECK_THROWS_MATCHES(kmeans(data.view(), 0), invalid_argument, message_has("got 0"));
  CHECK_THROWS_MATCHES(kmeans(data.view(), 51), invalid_argument,
                       message_has("50 training points for 51 centroids"));
  CHECK_THROWS_AS(kmeans(data.view(), 5, {.iterations = 0}), invalid_argument);
  matrix<float> bad(data.view());
  bad(7, 2) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_MATCHES(kmeans(bad.view(), 5), invalid_argument, message_has("row 7, column 2"));
}
