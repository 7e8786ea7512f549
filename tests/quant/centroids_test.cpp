// centroid_table: batch and one-point rankings agree with brute force and
// with each other, and ties go to the smaller centroid.
#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "annulus/quant/centroids.hpp"
#include "support/data.hpp"

using namespace annulus;

TEST_CASE("centroid_table: nearest ranks like brute force, batch equals one point", "[centroids]") {
  for (std::size_t d : {5u, 33u}) {
    for (std::size_t k : {3u, 17u, 40u}) {
      const auto centroids = annulus::testing::clustered(k, d, 4, 1);
      const auto points = annulus::testing::clustered(300, d, 4, 2);
      const centroid_table table(centroids.view());
      for (centroid_order order : {centroid_order::l2, centroid_order::inner_product}) {
        const std::size_t count = std::min<std::size_t>(3, k);
        std::vector<std::uint32_t> ids(points.rows() * count), one_id(points.rows());
        std::vector<float> keys(points.rows() * count), one_key(points.rows());
        table.nearest(points.view(), order, count, ids.data(), keys.data(), 2);
        table.nearest(points.view(), order, 1, one_id.data(), one_key.data(), 1);
        std::vector<float, aligned_allocator<float>> scores(table.score_room());
        std::vector<neighbor> heap(count);
        std::vector<std::uint32_t> single(count);
        for (std::size_t i = 0; i < points.rows(); ++i) {
          INFO("d " << d << ", k " << k << ", point " << i);
          std::vector<std::pair<double, std::uint32_t>> truth;
          for (std::uint32_t c = 0; c < k; ++c) {
            const double dot = kernels::scalar::dot(points.row_ptr(i), centroids.row_ptr(c), d);
            const double key = order == centroid_order::l2
                                   ? kernels::scalar::l2sq(points.row_ptr(i), centroids.row_ptr(c), d)
                                   : -dot;
            truth.emplace_back(key, c);
          }
          std::sort(truth.begin(), truth.end());
          // Float keys may swap near-ties; the winner must be within rounding of the best.
          const double best = truth[0].first, tol = 1e-4 * (std::abs(best) + 1);
          const auto key_of = [&](std::uint32_t c) {
            return std::find_if(truth.begin(), truth.end(), [&](auto& t) { return t.second == c; })->first;
          };
          CHECK(key_of(ids[i * count]) <= best + tol);
          CHECK(one_id[i] == ids[i * count]);
          table.score_one(points.row_ptr(i), order, scores.data());
          table.select(scores.data(), count, heap, single.data(), nullptr);
          for (std::size_t r = 0; r < count; ++r) REQUIRE(single[r] == ids[i * count + r]);
        }
      }
    }
  }
}

TEST_CASE("centroid_table: equal centroids go to the smaller index", "[centroids]") {
  matrix<float> c(20, 4);
  for (std::size_t i = 0; i < 20; ++i)
    for (std::size_t j = 0; j < 4; ++j) c(i, j) = float(i % 5 == 3 ? 1 : 9);  // rows 3, 8, 13, 18 equal
  const centroid_table table(c.view());
  const std::vector<float> p{1, 1, 1, 1};
  std::uint32_t id = 99;
  float key = 0;
  table.nearest(matrix_view<const float>(p.data(), 1, 4), centroid_order::l2, 1, &id, &key, 1);
  CHECK(id == 3);
  CHECK(key + 4.f == Approx(0.f).margin(1e-5));  // key + ||p||^2 is the squared distance
}
