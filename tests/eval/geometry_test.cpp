// geometry(): norm statistics, the top-norm share and the train/serve numbers
// on a case small enough to work out by hand.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "annulus/eval/geometry.hpp"
#include "annulus/eval/synthetic.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"

using namespace annulus;
using annulus::testing::message_has;

namespace {
matrix<float> rows_of(std::initializer_list<std::pair<float, float>> xy) {
  matrix<float> m(xy.size(), 2);
  std::size_t i = 0;
  for (const auto& [x, y] : xy) m(i, 0) = x, m(i++, 1) = y;
  return m;
}

// Eight items in the plane, two queries along the axes.
//   item     x, y      norm    q0=(1,0): dot  cos    l2     q1=(0,1): dot  cos    l2
//   0     5.0, 1.5    5.220             5.0   .958  18.25           1.5   .287  25.25
//   1     1.0, 0.5    1.118             1.0   .894   .25             .5   .447   1.25
//   2     0.9, 0.0    0.900              .9  1.000   .01              0      0   1.81
//   3     0.0, 3.0    3.000               0      0  10               3.0  1.000   4
//   4     0.4, 0.8    0.894              .4   .447  1.0              .8   .894    .2
//   5     0.1, 1.0    1.005              .1   .100  1.81            1.0   .995    .01
//   6    -1.0, 0.0    1.000             -1.0 -1.000  4                0      0    2
//   7     0.6,-0.1    0.608              .6   .986   .17            -.1  -.164   1.57
// Orders (best first):
//   q0  dot 0 1 2 7 ...   cosine 2 7 0 1 ...   l2 2 7 1 4 ...
//   q1  dot 3 0 5 4 ...   cosine 3 5 4 1 ...   l2 5 4 1 7 ...
const matrix<float> items = rows_of({{5, 1.5f}, {1, .5f}, {.9f, 0}, {0, 3}, {.4f, .8f}, {.1f, 1}, {-1, 0}, {.6f, -.1f}});
const matrix<float> queries = rows_of({{1, 0}, {0, 1}});
}  // namespace

TEST_CASE("geometry: quartiles interpolate between order statistics", "[geometry]") {
  // Sorted norms: .608 .894 .9 1 1.005 1.118 3 5.220; positions 1.75, 3.5, 5.25 of 0..7.
  const norm_stats s = describe_norms(items.view());
  const double sorted[8] = {std::hypot(.6, .1), std::hypot(.4, .8), .9, 1, std::hypot(.1, 1),
                            std::hypot(1, .5), 3, std::hypot(5, 1.5)};
  CHECK(s.min == Approx(sorted[0]));
  CHECK(s.q1 == Approx(sorted[1] + 0.75 * (sorted[2] - sorted[1])));
  CHECK(s.median == Approx(0.5 * (sorted[3] + sorted[4])));
  CHECK(s.q3 == Approx(sorted[5] + 0.25 * (sorted[6] - sorted[5])));
  CHECK(s.max == Approx(sorted[7]));
  double sum = 0;
  for (double x : sorted) sum += x;
  CHECK(s.mean == Approx(sum / 8));

  // One row: every statistic is its norm; odd counts hit an order statistic exactly.
  const norm_stats one = describe_norms(rows_of({{3, 4}}).view());
  CHECK((one.min == 5 && one.q1 == 5 && one.median == 5 && one.q3 == 5 && one.max == 5 && one.mean == 5));
  const norm_stats five = describe_norms(rows_of({{1, 0}, {2, 0}, {0, 3}, {4, 0}, {0, 5}}).view());
  CHECK((five.q1 == 2 && five.median == 3 && five.q3 == 4));
  CHECK_THROWS_AS(describe_norms(matrix<float>().view()), invalid_argument);
}

TEST_CASE("geometry: top-norm share and train/serve overlap, worked by hand", "[geometry]") {
  const geometry_report r = geometry(items.view(), queries.view(), {.k = 2, .depth = 4, .threads = 1});
  CHECK(r.items == 8);
  CHECK(r.queries == 2);
  CHECK(r.dim == 2);
  CHECK(r.k == 2);
  CHECK(r.depth == 4);
  // ceil(8 / 100) = 1 item: item 0. It is in both dot top-2 lists (2 of 4
  // slots) and in neither cosine top-2 list.
  CHECK(r.top_norm_items == 1);
  CHECK(r.top_norm_share == 0.5);
  CHECK(r.top_norm_share_cosine == 0.0);
  // Cosine: q0 {0,1} vs {2,7}: 0; q1 {3,0} vs {3,5}: 1 -> 1/4.
  // Within cosine top-4: q0 {2,7,0,1} holds 2; q1 {3,5,4,1} holds 1 -> 3/4.
  CHECK(r.cosine.served == metric_kind::cosine);
  CHECK(r.cosine.overlap == 0.25);
  CHECK(r.cosine.recall_at_depth == 0.75);
  // l2: q0 {2,7}: 0; q1 {5,4}: 0 -> 0. Within l2 top-4: q0 {2,7,1,4} holds 1; q1 {5,4,1,7} none -> 1/4.
  CHECK(r.l2.served == metric_kind::l2);
  CHECK(r.l2.overlap == 0.0);
  CHECK(r.l2.recall_at_depth == 0.25);
  CHECK(r.query_norms.min == 1.0);
  CHECK(r.query_norms.max == 1.0);

  // depth is raised to k and capped at the item count: all 8 hold every top-k.
  const geometry_report all = geometry(items.view(), queries.view(), {.k = 2});
  CHECK(all.depth == 8);
  CHECK(all.cosine.recall_at_depth == 1.0);
  CHECK(all.l2.recall_at_depth == 1.0);
  CHECK(all.cosine.overlap == 0.25);

  const std::string text = r.summary();
  CHECK_THAT(text, Catch::Contains("8 items x 2 dims, 2 queries, k = 2"));
  CHECK_THAT(text, Catch::Contains("hold 50.0% of dot-product top-2 slots, 0.0% of cosine top-2"));
  CHECK_THAT(text, Catch::Contains("overlap@2 0.250, dot top-2 within cosine top-4 0.750"));
  CHECK_THAT(text, Catch::Contains("overlap@2 0.000, dot top-2 within l2 top-4 0.250"));
  CHECK_THAT(text, Catch::Contains("norms carry signal") && Catch::Contains("serve by inner product"));
  // 8 items, fewer than a band's minimum (1,000): one band.
  CHECK(r.norm_bands == 1);
  CHECK_THAT(text, Catch::Contains("would form 1 norm band here") && Catch::Contains("same as mips_index"));
}

TEST_CASE("geometry: norms spread 8x form the bands banded_mips_index would", "[geometry]") {
  const matrix<float> spread = gaussian_mixture(16, {.clusters = 8, .norm_ratio = 8.0, .seed = 9}).sample(5000, 1);
  const geometry_report r = geometry(spread.view(), matrix_view<const float>(spread.data(), 20, 16), {.k = 5, .threads = 1});
  // 5 bands of at least 1,000 items; each 1.25x wide until the minimum size takes over.
  CHECK(r.norm_bands >= 3);
  CHECK(r.norm_bands <= 5);
  CHECK_THAT(r.summary(), Catch::Contains("would form " + std::to_string(r.norm_bands) + " norm bands here") &&
                              Catch::Contains("take the bands"));
}

TEST_CASE("geometry: unit-norm items make dot and cosine agree", "[geometry]") {
  auto base = annulus::testing::clustered(400, 8, 4, 3);
  for (std::size_t i = 0; i < base.rows(); ++i) {
    double s = 0;
    for (float x : base.row(i)) s += double(x) * x;
    for (float& x : base.row(i)) x = float(x / std::sqrt(s));
  }
  const auto qs = annulus::testing::clustered(20, 8, 4, 4);
  const geometry_report r = geometry(base.view(), qs.view(), {.k = 5});
  CHECK(r.top_norm_items == 4);  // ceil(400 / 100)
  CHECK(r.item_norms.max - r.item_norms.min < 1e-6);
  CHECK(r.cosine.overlap == 1.0);
  CHECK(r.l2.overlap == 1.0);  // |q - v|^2 = |q|^2 + 1 - 2<q,v> for unit v: the same order
  CHECK_THAT(r.summary(), Catch::Contains("normalising in training and serving alike is safe"));
}

TEST_CASE("geometry: bad input", "[geometry]") {
  CHECK_THROWS_AS(geometry(matrix<float>().view(), queries.view()), invalid_argument);
  CHECK_THROWS_AS(geometry(items.view(), matrix<float>(0, 2).view()), invalid_argument);
  CHECK_THROWS_AS(geometry(items.view(), matrix<float>(1, 3).view()), dimension_mismatch);
  CHECK_THROWS_MATCHES(geometry(items.view(), queries.view(), {.k = 9}), invalid_argument, message_has("9"));
  CHECK_THROWS_AS(geometry(items.view(), queries.view(), {.k = 0}), invalid_argument);
  matrix<float> zero = items;
  zero(6, 0) = 0;
  CHECK_THROWS_MATCHES(geometry(zero.view(), queries.view(), {.k = 2}), invalid_argument, message_has("row 6"));
  matrix<float> nan = queries;
  nan(1, 1) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_MATCHES(geometry(items.view(), nan.view(), {.k = 2}), invalid_argument, message_has("row 1, column 1"));
}
