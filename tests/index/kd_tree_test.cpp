// kd_tree_index: exact search equals flat search (duplicates, points on the
// cutting planes, adds after the build), the approximate knobs trade recall
// monotonically, filters, and the refusal of inner_product.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "annulus/index/flat.hpp"
#include "annulus/index/kd_tree.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"
#include "support/recall.hpp"

using namespace annulus;

namespace {

// Integer coordinates on a small grid: many exact duplicates and many points
// exactly on any midpoint cut, and distances computed without rounding, so
// the tree and the flat scan must agree label for label.
matrix<float> grid_points(std::size_t n, std::size_t d, int side, std::uint64_t seed) {
  random_generator rng(seed, 0);
  matrix<float> m(n, d);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j) m(i, j) = float(rng.below(std::uint64_t(side)));
  return m;
}

// Under l2 the tree and the flat scan compute the same float distances (the
// same kernel), so labels and distances must match exactly. Under cosine flat ranks by 1 - dot, which loses
// digits to cancellation near 1, and the tree by ||q - v||^2 / 2, which does
// not: both are checked against double precision instead, rank by rank.
template <class M>
void require_same_as_flat(const matrix<float>& base, const matrix<float>& queries, std::size_t k,
                          std::size_t leaf_size) {
  const auto tree = kd_tree_index<M>::build(base.view(), {.leaf_size = leaf_size});
  const auto flat = flat_index<M>::build(base.view());
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    INFO(M::name << ", leaf " << leaf_size << ", query " << i);
    const auto want = flat.search(queries.row(i), k);
    const auto got = tree.search(queries.row(i), k);
    REQUIRE(got.size() == want.size());
    if constexpr (M::kind == metric_kind::l2) {
      for (std::size_t r = 0; r < k; ++r) {
        CHECK(got[r].label == want[r].label);
        CHECK(got[r].distance == want[r].distance);
      }
    } else {
      const auto truth = annulus::testing::brute_force<M>(base.view(), queries.row_ptr(i), k);
      for (std::size_t r = 0; r < k; ++r) {
        const double true_distance = annulus::testing::exact_distance<M>(
            queries.row_ptr(i), base.row_ptr(got[r].label), base.cols());
        CHECK(true_distance == Approx(truth[r].distance).margin(1e-6));
        CHECK(got[r].distance == Approx(truth[r].distance).margin(1e-6));
      }
    }
  }
}

}  // namespace

TEST_CASE("kd_tree: exact search equals flat search", "[kd_tree]") {
  for (std::size_t d : {2u, 3u, 8u}) {
    INFO("d = " << d);
    SECTION("grid data: duplicates and points on the cuts, d = " + std::to_string(d)) {
      const auto base = grid_points(3000, d, 12, d);
      const auto queries = grid_points(60, d, 12, d + 100);
      for (std::size_t leaf : {1u, 4u, 16u}) require_same_as_flat<l2>(base, queries, 10, leaf);
    }
    SECTION("clustered data, uneven norms, d = " + std::to_string(d)) {
      const auto base = annulus::testing::clustered(4000, d, 8, 1);
      const auto queries = annulus::testing::clustered(60, d, 8, 2);
      require_same_as_flat<l2>(base, queries, 10, 8);
      require_same_as_flat<cosine>(base, queries, 10, 8);
    }
  }
}

TEST_CASE("kd_tree: exact on decimal grids, where cell bounds and distances round differently", "[kd_tree]") {
  // Coordinates in multiples of 0.1 make many distances tie or nearly tie
  // after rounding; every k from 1 to n and leaf sizes from 1 up.
  random_generator rng(77, 0);
  for (std::size_t trial = 0; trial < 200; ++trial) {
    const std::size_t d = 1 + trial % 5, n = 20 + rng.below(280), leaf = 1 + rng.below(8);
    matrix<float> base(n, d), queries(25, d);
    for (std::size_t i = 0; i < base.size(); ++i) base.data()[i] = float(rng.below(5)) * 0.1f;
    for (std::size_t i = 0; i < queries.size(); ++i) queries.data()[i] = float(rng.below(5)) * 0.1f;
    const auto tree = kd_tree_index<l2>::build(base.view(), {.leaf_size = leaf});
    const auto flat = flat_index<l2>::build(base.view());
    for (std::size_t i = 0; i < queries.rows(); ++i) {
      const std::size_t k = i == 0 ? n : 1 + rng.below(n);
      INFO("trial " << trial << ", d " << d << ", n " << n << ", leaf " << leaf << ", k " << k);
      const auto got = tree.search(queries.row(i), k), want = flat.search(queries.row(i), k);
      if (got != want) FAIL_CHECK("the tree and flat search differ");  // one assertion per failure only
    }
  }
}

TEST_CASE("kd_tree: the same tree on any thread count", "[kd_tree][threads]") {
  const auto base = annulus::testing::clustered(70000, 3, 16, 21);  // pieces of 4,375 rows on 2 threads
  const auto queries = annulus::testing::clustered(50, 3, 16, 22);
  const auto one = kd_tree_index<l2>::build(base.view(), {}, 1);
  const auto two = kd_tree_index<l2>::build(base.view(), {}, 2);
  REQUIRE(one.node_count() == two.node_count());
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    kd_tree_index<l2>::search_stats a, b;
    REQUIRE(one.search(queries.row(i), 10, {.stats = &a}) == two.search(queries.row(i), 10, {.stats = &b}));
    CHECK(a.points == b.points);
    CHECK(a.leaves == b.leaves);
  }
}

TEST_CASE("kd_tree: small indexes, d = 1, k = n, filters that keep nothing", "[kd_tree]") {
  kd_tree_index<l2> grown(1);  // fewer than 256 adds: no tree yet, the tail is scanned
  matrix<float> line(100, 1);
  for (std::size_t i = 0; i < 100; ++i) line(i, 0) = float(i);
  grown.add(line.view());
  CHECK(grown.node_count() == 0);
  const std::vector<float> q{41.2f};
  const auto hits = grown.search(q, 3);
  REQUIRE(hits.size() == 3);
  CHECK((hits[0].label == 41 && hits[1].label == 42 && hits[2].label == 40));
  const auto built = kd_tree_index<l2>::build(line.view(), {.leaf_size = 4});
  CHECK(built.node_count() > 1);
  CHECK(built.search(q, 100) == annulus::flat_index<l2>::build(line.view()).search(q, 100));
  const auto none = [](label_t) { return false; };
  CHECK(built.search(q, 5, {}, none).empty());
  CHECK(built.search(q, 5, {.max_leaves = 2}, none).empty());
}

TEST_CASE("kd_tree: all points equal, and skewed data that defeats midpoint cuts", "[kd_tree]") {
  matrix<float> same(500, 3);
  for (std::size_t i = 0; i < 500; ++i)
    for (std::size_t j = 0; j < 3; ++j) same(i, j) = 1.5f;
  const auto tree = kd_tree_index<l2>::build(same.view(), {.leaf_size = 4});
  CHECK(tree.node_count() == 1);  // nothing to cut
  const auto got = tree.search(same.row(0), 5);
  REQUIRE(got.size() == 5);
  for (std::size_t r = 0; r < 5; ++r) CHECK(got[r].label == r);  // ties broken by label

  // x = 2^-i: every midpoint cut peels one point off; the depth guard keeps
  // the tree (and the recursion) shallow.
  matrix<float> skewed(2000, 2);
  for (std::size_t i = 0; i < 2000; ++i) {
    skewed(i, 0) = std::ldexp(1.f, -int(i % 120));
    skewed(i, 1) = float(i % 7);
  }
  require_same_as_flat<l2>(skewed, skewed, 5, 2);
}

TEST_CASE("kd_tree: adds after the build are found, before and after the rebuild", "[kd_tree]") {
  const auto base = annulus::testing::clustered(3000, 4, 6, 3);
  const auto queries = annulus::testing::clustered(40, 4, 6, 4);
  kd_tree_index<l2> tree(4, {.leaf_size = 8});
  flat_index<l2> flat(4);
  // 2000 then small batches: the tail is searched by scan, then folded in.
  for (std::size_t first = 0; first < base.rows();) {
    const std::size_t count = first == 0 ? 2000 : 100;
    tree.add(base.view().rows_slice(first, count));
    flat.add(base.view().rows_slice(first, count));
    first += count;
    for (std::size_t i = 0; i < queries.rows(); ++i) {
      const auto want = flat.search(queries.row(i), 10);
      const auto got = tree.search(queries.row(i), 10);
      for (std::size_t r = 0; r < 10; ++r) REQUIRE(got[r].label == want[r].label);
    }
  }
}

TEST_CASE("kd_tree: max_leaves and eps trade recall monotonically", "[kd_tree]") {
  const auto base = annulus::testing::clustered(20000, 8, 16, 5);
  const auto queries = annulus::testing::clustered(100, 8, 16, 6);
  const auto tree = kd_tree_index<l2>::build(base.view(), {.leaf_size = 16});
  const auto all = annulus::testing::everything;
  double previous = 0;
  for (std::size_t leaves : {1u, 2u, 4u, 8u, 32u, 128u}) {
    const double r = annulus::testing::filtered_recall(tree, base, queries, {.max_leaves = leaves}, all);
    INFO("max_leaves " << leaves << ": recall " << r);
    CHECK(r >= previous - 0.01);
    previous = r;
  }
  CHECK(previous >= 0.99);
  CHECK(annulus::testing::filtered_recall(tree, base, queries, {.max_leaves = 1}, all) < 0.9);
  // eps: every result within (1 + eps) of the true distance (squared: (1 + eps)^2).
  const auto flat = flat_index<l2>::build(base.view());
  for (float eps : {0.5f, 2.f}) {
    double recall = 0;
    for (std::size_t i = 0; i < queries.rows(); ++i) {
      const auto want = flat.search(queries.row(i), 10);
      const auto got = tree.search(queries.row(i), 10, {.eps = eps});
      for (std::size_t r = 0; r < 10; ++r)
        REQUIRE(got[r].distance <= want[r].distance * (1 + eps) * (1 + eps) + 1e-3f);
      recall += annulus::testing::overlap(want, got);
    }
    INFO("eps " << eps);
    CHECK(recall / double(queries.rows()) >= 0.5);
  }
  // eps prunes: fewer points scored than exact search.
  kd_tree_index<l2>::search_stats exact, loose;
  std::size_t exact_points = 0, loose_points = 0;
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    tree.search(queries.row(i), 10, {.stats = &exact});
    tree.search(queries.row(i), 10, {.eps = 1.f, .stats = &loose});
    exact_points += exact.points;
    loose_points += loose.points;
  }
  CHECK(loose_points * 2 < exact_points);
}

TEST_CASE("kd_tree: filtered search equals a scan of the kept points", "[kd_tree]") {
  const auto base = annulus::testing::clustered(5000, 3, 6, 7);
  const auto queries = annulus::testing::clustered(40, 3, 6, 8);
  const auto tree = kd_tree_index<l2>::build(base.view());
  const auto odd = [](label_t l) { return l % 2 == 1; };
  const auto rare = [](label_t l) { return l % 97 == 0; };
  CHECK(annulus::testing::filtered_recall(tree, base, queries, {}, odd) == 1.0);
  CHECK(annulus::testing::filtered_recall(tree, base, queries, {}, rare) == 1.0);
  CHECK(annulus::testing::filtered_recall(tree, base, queries, {.max_leaves = 4}, odd) < 1.0);
}

TEST_CASE("kd_tree: refuses inner product and bad parameters", "[kd_tree]") {
  using annulus::testing::message_has;
  CHECK_THROWS_MATCHES(kd_tree_index<inner_product>(3), invalid_argument,
                       message_has("inner_product") && message_has("mips"));
  CHECK_THROWS_MATCHES(kd_tree_index<l2>(3, {.leaf_size = 0}), invalid_argument, message_has("leaf_size"));
  CHECK_THROWS_MATCHES(kd_tree_index<l2>(0), invalid_argument, message_has("got 0"));
  const auto base = annulus::testing::clustered(100, 3, 2, 9);
  const auto tree = kd_tree_index<l2>::build(base.view());
  for (float bad : {-1.f, std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(), 3e19f})
    CHECK_THROWS_MATCHES(tree.search(base.row(0), 3, {.eps = bad}), invalid_argument, message_has("eps"));
}
