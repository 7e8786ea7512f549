// banded_mips_index: the bands it forms, exact results through exact bands
// (the early stop loses nothing), recall where one M fails, routing of adds
// and cross-band updates, bad input. The shared interface, lifecycle and
// persistence tests run over it too (index/index_types.hpp, the MIPS list).
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "annulus/eval/synthetic.hpp"
#include "annulus/index/banded_mips.hpp"
#include "annulus/index/flat.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"

using namespace annulus;
using annulus::testing::message_has;

namespace {
using flat_bands = banded_mips_index<flat_index<l2>>;
using hnsw_bands = banded_mips_index<>;

double norm_of(std::span<const float> v) {
  double s = 0;
  for (const float x : v) s += double(x) * x;
  return std::sqrt(s);
}

// Norms spread 8x, as annulus-bench's default set (where one M fails).
matrix<float> spread_items(std::size_t n, std::uint64_t stream) {
  return gaussian_mixture(32, {.clusters = 16, .norm_ratio = 8.0, .seed = 5}).sample(n, stream);
}
}  // namespace

static_assert(mutable_index<hnsw_bands> && filterable_index<hnsw_bands, accept_all>);
static_assert(std::is_same_v<hnsw_bands::metric_type, inner_product>);

TEST_CASE("banded_mips: bands hold their norm ranges, longest first", "[banded_mips]") {
  const matrix<float> items = spread_items(4000, 1);
  const flat_bands idx = flat_bands::build(items.view(), {.band_ratio = 1.5, .min_band_size = 200}, 1);
  REQUIRE(idx.size() == items.rows());
  // 8x in bands of 1.5x: at least log(8) / log(1.5) = 5 bands.
  REQUIRE(idx.band_count() >= 5);
  std::size_t held = 0;
  for (std::size_t b = 0; b < idx.band_count(); ++b) {
    const double upper = idx.band_bound(b);
    const double lower = b + 1 < idx.band_count() ? idx.band_bound(b + 1) : 0.0;
    REQUIRE(lower < upper);
    REQUIRE(idx.band(b).max_norm() == upper);
    double smallest = upper;
    for (const label_t label : idx.band(b).labels()) {
      const double n = norm_of(items.row(label));
      INFO("band " << b << ", label " << label);
      REQUIRE(n <= upper);
      REQUIRE(n > lower);
      smallest = std::min(smallest, n);
    }
    // Within the ratio, except where min_band_size (200) made the band take more.
    if (idx.band(b).size() > 200 && b + 1 < idx.band_count()) CHECK(upper / smallest <= 1.5 * 1.0001);
    held += idx.band(b).size();
  }
  REQUIRE(held == items.rows());
  REQUIRE_THROWS_MATCHES(idx.band(idx.band_count()), invalid_argument,
                         message_has("band " + std::to_string(idx.band_count()) + " does not exist"));
  REQUIRE_THROWS_MATCHES(idx.band_bound(idx.band_count()), invalid_argument, message_has("::band_bound: band "));
}

TEST_CASE("banded_mips: exact bands give exact MIPS: the early stop skips nothing it needs", "[banded_mips]") {
  const matrix<float> items = spread_items(3000, 1);
  const matrix<float> queries = spread_items(60, 2);
  const flat_bands idx = flat_bands::build(items.view(), {.min_band_size = 100}, 1);
  REQUIRE(idx.band_count() >= 4);
  for (std::size_t q = 0; q < queries.rows(); ++q) {
    const auto truth = annulus::testing::brute_force<inner_product>(items.view(), queries.row_ptr(q), 10);
    const auto got = idx.search(queries.row(q), 10);
    INFO("query " << q);
    REQUIRE(got.size() == 10);
    // Near-ties may swap within the dot's rounding (index/mips.hpp): compare values, then labels.
    for (std::size_t r = 0; r < 10; ++r) REQUIRE(got[r].distance == Approx(truth[r].distance).epsilon(1e-4));
    CHECK(annulus::testing::overlap(truth, got) >= 0.9);
  }
}

TEST_CASE("banded_mips: recall where one M fails (norms spread 8x)", "[banded_mips]") {
  const matrix<float> items = spread_items(6000, 1);
  const matrix<float> queries = spread_items(100, 2);
  const hnsw_bands idx = hnsw_bands::build(items.view(), {.inner = {.m = 16, .ef_construction = 100, .seed = 3}}, 1);
  double recall = 0;
  for (std::size_t q = 0; q < queries.rows(); ++q) {
    const auto truth = annulus::testing::brute_force<inner_product>(items.view(), queries.row_ptr(q), 10);
    recall += annulus::testing::overlap(truth, idx.search(queries.row(q), 10, {.ef = 64}));
  }
  recall /= double(queries.rows());
  INFO(idx.band_count() << " bands");
  CHECK(recall >= 0.95);
}

TEST_CASE("banded_mips: adds go to the band of their norm; updates move across bands", "[banded_mips]") {
  const matrix<float> items = spread_items(2000, 1);
  hnsw_bands idx = hnsw_bands::build(items.view(), {.min_band_size = 200, .norm_headroom = 2}, 1);
  const std::size_t bands = idx.band_count();
  REQUIRE(bands >= 3);

  // A short vector lands in the last band, under the next free label.
  std::vector<float> shortest(items.row(0).begin(), items.row(0).end());
  const double scale = 0.5 * idx.band_bound(bands - 1) / norm_of(shortest);
  for (float& x : shortest) x = float(x * scale);
  idx.add(row_view(std::span<const float>(shortest)));
  REQUIRE(idx.size() == 2001);
  REQUIRE(idx.band(bands - 1).contains(2000));

  // Label 2000 grown past the top band's first norm: it moves to band 0, is
  // found first by a query along it, and is held once.
  std::vector<float> longest = shortest;
  const double grow = 1.5 * idx.band_bound(1) / norm_of(longest);
  for (float& x : longest) x = float(x * grow);
  idx.update(2000, longest);
  REQUIRE(idx.band(0).contains(2000));
  REQUIRE_FALSE(idx.band(bands - 1).contains(2000));
  REQUIRE(idx.size() == 2001);
  REQUIRE(idx.get(2000) == longest);
  const auto hits = idx.search(longest, 10, {.ef = 64});
  REQUIRE(hits.front().label == 2000);

  // Above M_0 = 2 x the largest norm: capacity_error, nothing changed.
  std::vector<float> too_long = longest;
  for (float& x : too_long) x = float(x * 3 * idx.band_bound(0) / norm_of(longest));
  REQUIRE_THROWS_MATCHES(idx.add(too_long, 7777), capacity_error, message_has("norm_headroom"));
  REQUIRE_THROWS_AS(idx.update(2000, too_long), capacity_error);
  REQUIRE(idx.size() == 2001);
  REQUIRE_FALSE(idx.contains(7777));
  REQUIRE(idx.get(2000) == longest);

  // A label held by another band is refused whichever band the row would go to.
  REQUIRE_THROWS_MATCHES(idx.add(shortest, 2000), invalid_argument, message_has("already in the index"));
  idx.remove(2000);
  REQUIRE_FALSE(idx.contains(2000));
  REQUIRE_THROWS_MATCHES(idx.remove(2000), invalid_argument, message_has("not in the index"));
}

TEST_CASE("banded_mips: an empty index takes its bands from the first add", "[banded_mips]") {
  hnsw_bands idx(32, {.min_band_size = 300});
  REQUIRE(idx.band_count() == 0);
  REQUIRE(idx.size() == 0);
  const matrix<float> items = spread_items(1500, 1);
  idx.add(items.view());
  REQUIRE(idx.band_count() >= 2);
  REQUIRE(idx.size() == 1500);
  REQUIRE(idx.labels().size() == 1500);
  REQUIRE(idx.search(items.row(3), 5, {.ef = 32}).size() == 5);
}

TEST_CASE("banded_mips: bad parameters are refused", "[banded_mips]") {
  REQUIRE_THROWS_MATCHES(hnsw_bands(0), invalid_argument, message_has("dimension"));
  REQUIRE_THROWS_MATCHES(hnsw_bands(8, {.band_ratio = 1.0}), invalid_argument, message_has("band_ratio"));
  REQUIRE_THROWS_MATCHES(hnsw_bands(8, {.band_ratio = std::nan("")}), invalid_argument, message_has("band_ratio"));
  REQUIRE_THROWS_MATCHES(hnsw_bands(8, {.min_band_size = 0}), invalid_argument, message_has("min_band_size"));
  REQUIRE_THROWS_MATCHES(hnsw_bands(8, {.norm_headroom = 0.5}), invalid_argument, message_has("norm_headroom"));
}
