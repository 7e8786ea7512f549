// compact() on the indexes that keep removed vectors until a later add
// (rp_forest and lsh: tombstones; kd_tree: dead rows): afterwards nothing is
// left unreclaimed, no removed label comes back, the answers for the live
// vectors are those of before, and adds go on.
#include <catch2/catch.hpp>

#include <cstddef>
#include <type_traits>
#include <vector>

#include "annulus/index/kd_tree.hpp"
#include "annulus/index/lsh.hpp"
#include "annulus/index/rp_forest.hpp"
#include "index/index_types.hpp"
#include "support/data.hpp"

using namespace annulus;
using annulus::testing::test_setup;

TEMPLATE_TEST_CASE("compact: tombstones and dead rows reclaimed, answers kept", "[compact]", rp_forest_index<l2>,
                   lsh_index<cosine>, kd_tree_index<l2>) {
  constexpr std::size_t n = 3000, dim = 16;
  const auto base = annulus::testing::clustered(n + 100, dim, 10, 41);
  const auto queries = annulus::testing::clustered(40, dim, 10, 42);
  TestType idx = TestType::build(base.view().rows_slice(0, n), test_setup<TestType>::build(), 1);
  for (label_t l = 0; l < n; l += 3) idx.remove(l);  // a third; without an add nothing reclaims them
  REQUIRE(idx.health().removed_unreclaimed > 0);
  std::vector<std::vector<neighbor>> before;
  for (std::size_t q = 0; q < queries.rows(); ++q)
    before.push_back(idx.search(queries.row(q), 10, test_setup<TestType>::search()));
  idx.compact(1);
  CHECK(idx.health().removed_unreclaimed == 0);
  CHECK(idx.size() == n - n / 3);
  for (std::size_t q = 0; q < queries.rows(); ++q) {
    const auto after = idx.search(queries.row(q), 10, test_setup<TestType>::search());
    for (const neighbor& h : after) CHECK(h.label % 3 != 0);
    // kd_tree: exact, so the rebuilt tree answers the same; rp_forest and
    // lsh: the same entries minus removed ones, searched the same way.
    CHECK(after == before[q]);
  }
  idx.add(base.view().rows_slice(n, 100), {}, 1);
  CHECK(idx.size() == n - n / 3 + 100);
  CHECK(idx.search(base.row(n + 5), 1, test_setup<TestType>::search())[0].distance == Approx(0).margin(1e-5));
  idx.compact(1);  // nothing removed since: changes nothing
  CHECK(idx.size() == n - n / 3 + 100);
}
