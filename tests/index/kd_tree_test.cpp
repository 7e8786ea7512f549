// kd_tree_index: exact search equals flat search (duplicates, points on the
// cutting planes, adds after the build, removes and updates), the approximate
// knobs trade recall monotonically, filters, explain's counts, and the
// refusal of inner_product (at compile time).
#include <catch2/catch.hpp>

#include <cmath>
#include <span>
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
    const auto a = one.explain(queries.row(i), 10), b = two.explain(queries.row(i), 10);
    REQUIRE(a.results == b.results);
    REQUIRE(a.results == one.search(queries.row(i), 10));
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
  std::size_t exact_points = 0, loose_points = 0;
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    exact_points += tree.explain(queries.row(i), 10).points;
    loose_points += tree.explain(queries.row(i), 10, {.eps = 1.f}).points;
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

namespace {
template <class M>
concept kd_tree_serves = requires { typename kd_tree_index<M>; };
}  // namespace

TEST_CASE("kd_tree: refuses inner product (at compile time) and bad parameters", "[kd_tree]") {
  using annulus::testing::message_has;
  STATIC_REQUIRE(kd_tree_serves<l2>);
  STATIC_REQUIRE(kd_tree_serves<cosine>);
  STATIC_REQUIRE_FALSE(kd_tree_serves<inner_product>);  // no cell can be ruled out by an inner product
  CHECK_THROWS_MATCHES(kd_tree_index<l2>(3, {.leaf_size = 0}), invalid_argument, message_has("leaf_size"));
  CHECK_THROWS_MATCHES(kd_tree_index<l2>(0), invalid_argument, message_has("got 0"));
  const auto base = annulus::testing::clustered(100, 3, 2, 9);
  const auto tree = kd_tree_index<l2>::build(base.view());
  for (float bad : {-1.f, std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(), 3e19f})
    CHECK_THROWS_MATCHES(tree.search(base.row(0), 3, {.eps = bad}), invalid_argument, message_has("eps"));
}

// Removes (rows in the tree and in the tail), updates (a tree row moves to
// the tail, a tail row is overwritten) and adds that reuse freed slots, in
// rounds, against flat search with the same calls: exact search stays exact,
// get returns what was stored, and dead rows past an eighth of the rows are
// dropped by the next add's rebuild.
TEMPLATE_TEST_CASE("kd_tree: remove, update and add in rounds equal flat search", "[kd_tree]", l2, cosine) {
  const std::size_t d = 4;
  const auto base = annulus::testing::clustered(2000, d, 8, 13);
  const auto extra = annulus::testing::clustered(2000, d, 8, 14);
  const auto queries = annulus::testing::clustered(30, d, 8, 15);
  auto tree = kd_tree_index<TestType>::build(base.view(), {.leaf_size = 8});
  auto flat = flat_index<TestType>::build(base.view());
  random_generator rng(16, 0);
  std::size_t next_extra = 0;
  label_t next_label = 10000;
  for (std::size_t round = 0; round < 12; ++round) {
    INFO("round " << round);
    const std::vector<label_t> present = tree.labels();
    for (std::size_t i = 0; i < 40; ++i) {  // a label may come up twice: remove once
      const label_t l = present[rng.below(present.size())];
      if (!tree.contains(l)) continue;
      tree.remove(l);
      flat.remove(l);
      CHECK_FALSE(tree.contains(l));
    }
    for (std::size_t i = 0; i < 10; ++i) {
      const label_t l = present[rng.below(present.size())];
      if (!tree.contains(l)) continue;
      const auto v = extra.row(next_extra++ % extra.rows());
      tree.update(l, v);
      flat.update(l, v);
      CHECK(tree.get(l) == flat.get(l));
    }
    std::vector<label_t> labels(30);
    for (label_t& l : labels) l = next_label++;
    const auto rows = extra.view().rows_slice(next_extra % (extra.rows() - 30), 30);
    next_extra += 30;
    tree.add(rows, labels);
    flat.add(rows, labels);
    REQUIRE(tree.size() == flat.size());
    for (std::size_t i = 0; i < queries.rows(); ++i) {
      const auto want = flat.search(queries.row(i), 10), got = tree.search(queries.row(i), 10);
      REQUIRE(got.size() == want.size());
      for (std::size_t r = 0; r < got.size(); ++r) {
        CHECK(got[r].label == want[r].label);
        CHECK(got[r].distance == Approx(want[r].distance).margin(1e-5));
      }
      const auto odd = [](label_t l) { return l % 2 == 1; };
      for (const neighbor& n : tree.search(queries.row(i), 10, {}, odd)) CHECK(n.label % 2 == 1);
    }
  }
  // 480 removes and 120 updates of 2360 rows: the rebuilds kept the dead rows below an eighth.
  CHECK(tree.memory_bytes() < 2 * flat.memory_bytes() + 64 * 1024);
  CHECK_THROWS_AS(tree.remove(123456789), invalid_argument);
  CHECK_THROWS_AS(tree.update(123456789, queries.row(0)), invalid_argument);
  CHECK_THROWS_AS(tree.get(123456789), invalid_argument);
}

TEST_CASE("kd_tree: remove then add reuses the room; update moves a label, in the tree or the tail", "[kd_tree]") {
  matrix<float> line(300, 1);
  for (std::size_t i = 0; i < 300; ++i) line(i, 0) = float(i);
  auto tree = kd_tree_index<l2>::build(line.view(), {.leaf_size = 4});
  std::size_t bytes = 0;
  for (std::size_t round = 0; round < 100; ++round) {  // remove one, add one: memory stays put
    tree.remove(label_t(round));
    const float x = float(round);
    tree.add(std::span(&x, 1), 1000 + round);
    if (round == 9) bytes = tree.memory_bytes();  // with the label table the first remove built
  }
  CHECK(tree.size() == 300);
  INFO("memory after 10 rounds " << bytes << ", after 100 " << tree.memory_bytes());
  CHECK(tree.memory_bytes() <= bytes + 2048);
  const std::vector<float> q{7.2f};
  const auto hit = tree.search(q, 1);
  REQUIRE(hit.size() == 1);
  CHECK(hit[0].label == 1007);
  const float far = 1000.f, farther = 2000.f, near = 7.1f;
  tree.update(1007, std::span(&far, 1));  // rebuilt into the tree by the removes: moves to the tail
  CHECK(tree.get(1007) == std::vector<float>{1000.f});
  CHECK(tree.search(q, 1)[0].label == 1008);
  CHECK(tree.search(std::vector<float>{990.f}, 1)[0].label == 1007);
  tree.update(1007, std::span(&farther, 1));  // now in the tail: overwritten there
  CHECK(tree.search(std::vector<float>{1990.f}, 1)[0].label == 1007);
  tree.add(std::span(&near, 1), 5000);  // the tail's last row
  tree.remove(1007);                     // a tail row: the last row takes its place
  CHECK(tree.search(q, 1)[0].label == 5000);
  CHECK(tree.search(std::vector<float>{1990.f}, 1)[0].label == 299);
  CHECK(tree.get(5000) == std::vector<float>{7.1f});
}
