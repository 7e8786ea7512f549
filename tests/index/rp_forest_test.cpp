// rp_forest_index beyond the shared interface tests: recall per metric on
// clustered data with uneven norms, recall rising with search_k, a forest
// that does not depend on the thread count, filters, adds (splitting leaves),
// removals and updates after build, and bad parameters.
#include <catch2/catch.hpp>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "annulus/index/concepts.hpp"
#include "annulus/index/rp_forest.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"
#include "support/recall.hpp"

using namespace annulus;
using annulus::testing::clustered;
using annulus::testing::everything;
using annulus::testing::filtered_recall;
using annulus::testing::message_has;

namespace {
constexpr std::size_t dim = 32, k = 10;
}  // namespace

// Measured (6000 x 32, 20 clusters, 100 queries): l2 0.999, cosine ~0.99,
// inner_product ~0.99 at search_k = 1600 (the angular splits see directions,
// while the best inner products favour long vectors).
TEMPLATE_TEST_CASE("rp_forest: recall@10 >= 0.95 at search_k = 1600 of 6000 on clustered data", "[rp_forest]",
                   l2, inner_product, cosine) {
  STATIC_REQUIRE(mutable_index<rp_forest_index<TestType>>);
  STATIC_REQUIRE(filterable_index<rp_forest_index<TestType>, decltype(everything)>);
  const auto base = clustered(6000, dim, 20, 3);
  const auto queries = clustered(100, dim, 20, 4);
  const auto idx = rp_forest_index<TestType>::build(base.view(), {.n_trees = 16, .leaf_size = 32});
  REQUIRE(idx.size() == base.rows());
  CHECK(idx.memory_bytes() >= base.rows() * dim * sizeof(float) + 16 * base.rows() * sizeof(slot_t));
  const double recall = filtered_recall(idx, base, queries, {.search_k = 1600}, everything, k);
  INFO("recall " << recall);
  CHECK(recall >= 0.95);
  // Exact distances for what is returned.
  const auto got = idx.search(queries.row(0), k, {.search_k = 1600});
  for (const neighbor& n : got)
    CHECK(n.distance == Approx(annulus::testing::exact_distance<TestType>(queries.row_ptr(0), base.row_ptr(n.label), dim))
                            .epsilon(1e-4).margin(1e-4));
}

TEMPLATE_TEST_CASE("rp_forest: recall rises with search_k", "[rp_forest]", l2, inner_product, cosine) {
  const auto base = clustered(4000, dim, 16, 5);
  const auto queries = clustered(60, dim, 16, 6);
  const auto idx = rp_forest_index<TestType>::build(base.view(), {.n_trees = 8, .leaf_size = 24, .seed = 9});
  std::vector<double> recalls;
  for (std::size_t search_k : {20, 80, 320, 1280, 4000})
    recalls.push_back(filtered_recall(idx, base, queries, {.search_k = search_k}, everything, k));
  for (std::size_t i = 1; i < recalls.size(); ++i) {
    INFO("search_k step " << i << ": " << recalls[i - 1] << " -> " << recalls[i]);
    CHECK(recalls[i] >= recalls[i - 1] - 0.01);
  }
  CHECK(recalls.front() < 0.8);
  CHECK(recalls.back() == 1.0);  // search_k = size: every vector is ranked
}

TEST_CASE("rp_forest: the forest does not depend on the thread count", "[rp_forest][threads]") {
  const auto base = clustered(3000, dim, 12, 7);
  const auto more = clustered(1500, dim, 12, 8);
  const auto queries = clustered(40, dim, 12, 9);
  auto one = rp_forest_index<cosine>::build(base.view(), {.n_trees = 6, .leaf_size = 16}, 1);
  auto two = rp_forest_index<cosine>::build(base.view(), {.n_trees = 6, .leaf_size = 16}, 2);
  for (std::size_t i = 0; i < queries.rows(); ++i)
    REQUIRE(one.search(queries.row(i), k, {.search_k = 200}) == two.search(queries.row(i), k, {.search_k = 200}));
  one.add(more.view(), {}, 1);
  two.add(more.view(), {}, 2);
  CHECK(one.memory_bytes() == two.memory_bytes());
  for (std::size_t i = 0; i < queries.rows(); ++i)
    REQUIRE(one.search(queries.row(i), k, {.search_k = 200}) == two.search(queries.row(i), k, {.search_k = 200}));
}

TEST_CASE("rp_forest: filtered search returns only kept labels, with good recall", "[rp_forest]") {
  const auto base = clustered(4000, dim, 16, 10);
  const auto queries = clustered(50, dim, 16, 11);
  const auto idx = rp_forest_index<l2>::build(base.view(), {.n_trees = 12, .leaf_size = 32});
  const auto third = [](label_t l) { return l % 3 == 0; };
  const auto rare = [](label_t l) { return l % 50 == 7; };  // 80 vectors: the walk goes deep
  const double r3 = filtered_recall(idx, base, queries, {.search_k = 800}, third, k);
  const double r50 = filtered_recall(idx, base, queries, {.search_k = 800}, rare, k);
  INFO("recall with 1/3 kept " << r3 << ", 1/50 kept " << r50);
  CHECK(r3 >= 0.95);
  CHECK(r50 >= 0.95);
}

TEST_CASE("rp_forest: adds after build (leaves split) and removals", "[rp_forest]") {
  const auto base = clustered(5000, dim, 16, 12);
  const auto queries = clustered(50, dim, 16, 13);
  auto idx = rp_forest_index<l2>::build(base.view().rows_slice(0, 2000), {.n_trees = 10, .leaf_size = 16});
  idx.add(base.view().rows_slice(2000, 2000));                                       // a batch
  for (std::size_t i = 4000; i < 5000; ++i) idx.add(base.view().rows_slice(i, 1));  // one at a time
  REQUIRE(idx.size() == 5000);
  // Every added vector is its own nearest neighbour.
  for (std::size_t i = 2000; i < 5000; i += 37) {
    const auto got = idx.search(base.row(i), 1, {.search_k = 50});
    REQUIRE(got.size() == 1);
    CHECK(got[0].label == i);
  }
  const double grown = filtered_recall(idx, base, queries, {.search_k = 1000}, everything, k);
  INFO("recall after adds " << grown);
  CHECK(grown >= 0.95);

  // An empty forest grown by adds only splits like build does.
  rp_forest_index<l2> empty(dim, {.n_trees = 10, .leaf_size = 16});
  for (std::size_t i = 0; i < 5000; i += 500) empty.add(base.view().rows_slice(i, 500));
  CHECK(filtered_recall(empty, base, queries, {.search_k = 1000}, everything, k) >= 0.95);

  for (label_t l = 0; l < 5000; l += 2) idx.remove(l);
  CHECK(idx.size() == 2500);
  CHECK_FALSE(idx.contains(0));
  CHECK(idx.contains(1));
  const auto odd = [](label_t l) { return l % 2 == 1; };
  for (std::size_t i = 0; i < queries.rows(); ++i)
    for (const neighbor& n : idx.search(queries.row(i), k, {.search_k = 500})) REQUIRE(odd(n.label));
  CHECK(filtered_recall(idx, base, queries, {.search_k = 1000}, odd, k) >= 0.95);
  CHECK_THROWS_MATCHES(idx.remove(0), invalid_argument, message_has("label 0 is not in the index"));
  CHECK_THROWS_MATCHES(idx.search(queries.row(0), 2501, {}), invalid_argument, message_has("2500"));
}

TEST_CASE("rp_forest: bad parameters and duplicates", "[rp_forest]") {
  const auto data = clustered(300, 8, 3, 14);
  CHECK_THROWS_MATCHES(rp_forest_index<l2>::build(data.view(), {.n_trees = 0}), invalid_argument,
                       message_has("n_trees must be at least 1, got 0"));
  CHECK_THROWS_MATCHES(rp_forest_index<l2>::build(data.view(), {.leaf_size = 0}), invalid_argument,
                       message_has("leaf_size must be at least 1, got 0"));
  CHECK_THROWS_MATCHES(rp_forest_index<cosine>(0), invalid_argument, message_has("dimension"));
  // Identical vectors cannot be split by any plane: leaves end up halved instead.
  matrix<float> same(200, 8);
  for (std::size_t i = 0; i < same.size(); ++i) same.data()[i] = 1.f;
  const auto idx = rp_forest_index<l2>::build(same.view(), {.n_trees = 2, .leaf_size = 4});
  CHECK(idx.search(same.row(0), 200, {.search_k = 1}).size() == 200);
  CHECK(idx.search(same.row(0), 5, {.search_k = 1}).size() == 5);
  // Added one at a time, they alternate sides of the unsplittable nodes.
  rp_forest_index<l2> grown(8, {.n_trees = 2, .leaf_size = 4});
  for (std::size_t i = 0; i < same.rows(); ++i) grown.add(same.view().rows_slice(i, 1));
  const auto all = grown.search(same.row(0), 200, {.search_k = 1});
  REQUIRE(all.size() == 200);
  for (const neighbor& n : all) CHECK(n.distance == 0.f);
  CHECK_THROWS_MATCHES(rp_forest_index<l2>(8, {.n_trees = 65537}), invalid_argument, message_has("65536"));
  CHECK_THROWS_MATCHES(rp_forest_index<l2>(8, {.leaf_size = (1u << 20) + 1}), invalid_argument,
                       message_has("at most"));
}

// update keeps the label's slot and moves its entries: an updated vector is
// found at its new place with a small search_k (it sits in the leaves its new
// vector reaches); get returns it; an exhaustive search still finds every
// label once.
TEMPLATE_TEST_CASE("rp_forest: update moves a vector to the leaves it now falls in", "[rp_forest]", l2,
                   inner_product, cosine) {
  const auto base = clustered(3000, dim, 12, 15);
  const auto moved = clustered(300, dim, 12, 16);
  auto idx = rp_forest_index<TestType>::build(base.view(), {.n_trees = 8, .leaf_size = 16});
  for (std::size_t i = 0; i < moved.rows(); ++i) idx.update(label_t(i * 7), moved.row(i));
  REQUIRE(idx.size() == 3000);
  std::size_t found = 0;
  for (std::size_t i = 0; i < moved.rows(); ++i) {
    const std::vector<float> got = idx.get(label_t(i * 7));
    const auto want = idx.search(moved.row(i), 1, {.search_k = 3000});  // exhaustive: the truth
    const auto hit = idx.search(moved.row(i), 1, {.search_k = 40});
    found += hit.size() == 1 && hit[0].label == want[0].label;
    if constexpr (std::is_same_v<TestType, l2>) {
      CHECK(got == std::vector<float>(moved.row(i).begin(), moved.row(i).end()));
      CHECK(want[0].label == label_t(i * 7));
    }
  }
  INFO("updated vectors found as the nearest with search_k = 40: " << found << " of 300");
  // Under inner_product the answer is the longest vector in the query's
  // direction, not the updated one, and 40 candidates often miss it.
  if constexpr (!std::is_same_v<TestType, inner_product>) CHECK(found >= 285);
  const auto all = idx.search(base.row(1), 3000, {.search_k = 3000});
  std::vector<label_t> labels;
  for (const neighbor& n : all) labels.push_back(n.label);
  std::sort(labels.begin(), labels.end());
  CHECK(std::adjacent_find(labels.begin(), labels.end()) == labels.end());
  CHECK(labels.size() == 3000);
  CHECK_THROWS_MATCHES(idx.update(3000, moved.row(0)), invalid_argument, message_has("label 3000"));
}

TEST_CASE("rp_forest: update among identical vectors, where no plane splits", "[rp_forest]") {
  matrix<float> same(200, 8);
  for (std::size_t i = 0; i < same.size(); ++i) same.data()[i] = 1.f;
  auto idx = rp_forest_index<l2>::build(same.view(), {.n_trees = 2, .leaf_size = 4});
  const std::vector<float> other(8, 3.f);
  for (label_t l = 0; l < 200; l += 9) idx.update(l, other);
  const auto near_other = idx.search(other, 23, {.search_k = 200});
  REQUIRE(near_other.size() == 23);
  for (const neighbor& n : near_other) CHECK((n.label % 9 == 0 && n.distance == 0.f));
  for (label_t l = 0; l < 200; l += 9) idx.update(l, same.row(0));  // and back
  const auto all = idx.search(same.row(0), 200, {.search_k = 200});
  REQUIRE(all.size() == 200);
  for (const neighbor& n : all) CHECK(n.distance == 0.f);
}
