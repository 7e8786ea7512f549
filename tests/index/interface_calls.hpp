// The interface tests of the calls every index gets from index_base
// (index/base.hpp): range search, get, labels, contains, update, the k
// policy, and filtered search against flat_index's exact filtered search.
// Included at the end of interface_cases.hpp (whose build_test_index they
// use), so they run over every index type.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <type_traits>
#include <vector>

#include "annulus/index/concepts.hpp"
#include "annulus/index/flat.hpp"
#include "index/index_types.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"

namespace annulus::testing {

// What an index stores for `row`: normalised under cosine.
template <class M>
std::vector<float> stored_form(std::span<const float> row) {
  std::vector<float> out(row.size());
  store_rows<M>(matrix_view<const float>(row.data(), 1, row.size()), out.data());
  return out;
}

// Every stored row within `radius` of q (brute force), as labels.
template <class M>
std::set<label_t> within(matrix_view<const float> base, const float* q, float radius) {
  std::set<label_t> out;
  const auto all = brute_force<M>(base, q, base.rows());
  for (const neighbor& n : all)
    if (n.distance <= radius) out.insert(n.label);
  return out;
}

}  // namespace annulus::testing

TEMPLATE_TEST_CASE("index: range search against a brute-force radius scan", "[index][range]",
                   ANNULUS_INTERFACE_TYPES) {
  using M = typename TestType::metric_type;
  const auto base = annulus::testing::clustered(1500, 16, 8, 21);
  const auto queries = annulus::testing::clustered(20, 16, 8, 22);
  const TestType idx = build_test_index<TestType>(base);
  const auto params = test_setup<TestType>::search();
  double found = 0, expected = 0;
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    // A radius that holds 40 vectors (more than one round of the doubling),
    // halfway to the 41st, so that rounding (the oracle sums in double)
    // cannot move a vector across it.
    const auto truth = annulus::testing::brute_force<M>(base.view(), queries.row_ptr(i), 41);
    const float radius = 0.5f * (truth[39].distance + truth[40].distance);
    const std::set<label_t> inside = annulus::testing::within<M>(base.view(), queries.row_ptr(i), radius);
    const std::vector<neighbor> got = idx.range_search(queries.row(i), radius, params);
    for (std::size_t r = 0; r < got.size(); ++r) {
      INFO("query " << i << ", result " << r);
      CHECK(got[r].distance <= radius);
      if (r > 0) CHECK_FALSE(closer(got[r], got[r - 1]));
    }
    for (const neighbor& n : got) found += inside.count(n.label);
    expected += double(inside.size());
    if (test_setup<TestType>::min_recall == 1.0) CHECK(got.size() == inside.size());
  }
  // An approximate index finds what its top-k search finds at k up to twice
  // the vectors inside, a larger k than the recall test's, at the same params.
  const double floor = test_setup<TestType>::min_recall == 1.0 ? 1.0 : test_setup<TestType>::min_recall - 0.05;
  CHECK(found / expected >= floor);
  // Nothing within a radius below every distance; NaN refused.
  CHECK(idx.range_search(queries.row(0), -1e30f, params).empty());
  CHECK_THROWS_AS(idx.range_search(queries.row(0), std::nanf(""), params), invalid_argument);
}

TEMPLATE_TEST_CASE("index: get returns the stored vector, labels and contains follow removes",
                   "[index][get]", ANNULUS_INTERFACE_TYPES) {
  using M = typename TestType::metric_type;
  const auto base = annulus::testing::clustered(600, 16, 4, 23);
  TestType idx = build_test_index<TestType>(base);
  for (const label_t l : {label_t{0}, label_t{17}, label_t{599}}) {
    const std::vector<float> want = annulus::testing::stored_form<M>(base.row(l));
    const std::vector<float> got = idx.get(l);
    REQUIRE(got.size() == want.size());
    for (std::size_t j = 0; j < want.size(); ++j) CHECK(got[j] == Approx(want[j]).margin(1e-6));
  }
  CHECK_THROWS_MATCHES(idx.get(600), invalid_argument, annulus::testing::message_has("label 600"));

  std::vector<label_t> all = idx.labels();
  std::sort(all.begin(), all.end());
  REQUIRE(all.size() == 600);
  for (std::size_t i = 0; i < all.size(); ++i) REQUIRE(all[i] == i);

  for (label_t l = 0; l < 600; l += 3) idx.remove(l);
  CHECK(idx.size() == 400);
  CHECK_FALSE(idx.contains(0));
  CHECK(idx.contains(1));
  CHECK_THROWS_AS(idx.get(3), invalid_argument);
  CHECK_THROWS_MATCHES(idx.remove(3), invalid_argument, annulus::testing::message_has("label 3"));
  all = idx.labels();
  std::sort(all.begin(), all.end());
  REQUIRE(all.size() == 400);
  for (const label_t l : all) REQUIRE(l % 3 != 0);

  // Removed labels never come back from a search; re-added ones do.
  const auto params = test_setup<TestType>::search();
  for (std::size_t i = 0; i < 30; ++i)
    for (const neighbor& n : idx.search(base.row(i), 10, params)) REQUIRE(n.label % 3 != 0);
  idx.add(base.view().rows_slice(0, 1), std::vector<label_t>{0});
  CHECK(idx.contains(0));
  CHECK(idx.size() == 401);
  std::vector<float> zero = idx.get(0);
  CHECK(zero[0] == Approx(annulus::testing::stored_form<M>(base.row(0))[0]).margin(1e-6));
}

TEMPLATE_TEST_CASE("index: update replaces a vector under its label", "[index][update]", ANNULUS_INTERFACE_TYPES) {
  using M = typename TestType::metric_type;
  const auto base = annulus::testing::clustered(800, 16, 4, 25);
  TestType idx = build_test_index<TestType>(base);
  const auto params = test_setup<TestType>::search();
  // Label 5 takes the place of a far vector; label 6 moves onto row 400's.
  std::vector<float> far(16);  // norm 431: within mips_index's test M of 500
  for (std::size_t j = 0; j < 16; ++j) far[j] = 100.f + float(j);
  idx.update(5, far);
  idx.update(6, base.row(400));
  CHECK(idx.size() == 800);
  const std::vector<float> got = idx.get(5);
  const std::vector<float> want = annulus::testing::stored_form<M>(far);
  for (std::size_t j = 0; j < 16; ++j) CHECK(got[j] == Approx(want[j]).margin(1e-4));
  const auto hit = idx.search(far, 1, params);
  REQUIRE(hit.size() == 1);
  CHECK(hit[0].label == 5);
  // Under inner_product a vector is not its own best match (longer ones in
  // its direction score higher), so the pair test is for l2 and cosine.
  if constexpr (!std::is_same_v<M, inner_product>) {
    const auto pair = idx.search(base.row(400), 2, params);
    REQUIRE(pair.size() == 2);
    CHECK(std::set<label_t>{pair[0].label, pair[1].label} == std::set<label_t>{6, 400});
  }
  // Bad updates change nothing.
  CHECK_THROWS_AS(idx.update(12345, far), invalid_argument);
  CHECK_THROWS_AS(idx.update(7, std::vector<float>(15, 1.f)), dimension_mismatch);
  std::vector<float> nan = far;
  nan[3] = std::nanf("");
  CHECK_THROWS_MATCHES(idx.update(7, nan), invalid_argument, annulus::testing::message_has("column 3"));
  CHECK(idx.size() == 800);
  const std::vector<float> seven = idx.get(7);
  CHECK(seven[0] == Approx(annulus::testing::stored_form<M>(base.row(7))[0]).margin(1e-6));
}

TEMPLATE_TEST_CASE("index: k above the live count throws by default, or serves what there is",
                   "[index][k_policy]", ANNULUS_INTERFACE_TYPES) {
  const auto base = annulus::testing::clustered(300, 8, 3, 27);
  TestType idx = build_test_index<TestType>(base);
  const auto params = test_setup<TestType>::search();
  for (label_t l = 0; l < 280; ++l) idx.remove(l);
  REQUIRE(idx.size() == 20);
  CHECK(idx.get_k_policy() == k_policy::strict);
  CHECK_THROWS_MATCHES(idx.search(base.row(0), 25, params), invalid_argument,
                       annulus::testing::message_has("exceeds the 20 vectors"));
  CHECK_THROWS_AS(search_batch(idx, base.view().rows_slice(0, 3), 25, params), invalid_argument);

  idx.set_k_policy(k_policy::at_most);
  // IVF returns what its nprobe probed lists hold, which after the removes
  // may be fewer than the 20 left; every other index returns all 20.
  constexpr bool bounded_by_probes = requires { params.nprobe; };
  const auto served = [&](std::size_t got, std::size_t all) {
    return bounded_by_probes ? got >= 1 && got <= all : got == all;
  };
  const auto all = idx.search(base.row(0), 25, params);
  CHECK(served(all.size(), 20));
  for (const neighbor& n : all) CHECK(n.label >= 280);
  std::vector<neighbor> out(20);  // room for what is served is enough
  CHECK(served(idx.search(base.row(0), 1000, params, out), 20));
  const auto even = idx.search(base.row(0), 25, params, [](label_t l) { return l % 2 == 0; });
  CHECK(served(even.size(), 10));
  const result_matrix batch = search_batch(idx, base.view().rows_slice(0, 3), 25, params);
  for (std::size_t i = 0; i < 3; ++i) CHECK(served(batch[i].size(), 20));
  CHECK_THROWS_AS(idx.search(base.row(0), 0, params), invalid_argument);  // k = 0 is never right
  for (label_t l = 280; l < 300; ++l) idx.remove(l);
  CHECK(idx.size() == 0);
  CHECK(idx.search(base.row(0), 5, params).empty());
  CHECK(idx.range_search(base.row(0), 1e30f, params).empty());
}

// flat_index's filtered search is exact: the ground truth for every other
// index's filtered recall.
TEMPLATE_TEST_CASE("index: filtered search against flat's exact filtered search", "[index][filter]",
                   ANNULUS_INTERFACE_TYPES) {
  using M = typename TestType::metric_type;
  const auto base = annulus::testing::clustered(3000, 24, 12, 11);
  const auto queries = annulus::testing::clustered(40, 24, 12, 12);
  const TestType idx = build_test_index<TestType>(base);
  const flat_index<M> exact = flat_index<M>::build(base.view());
  const auto params = test_setup<TestType>::search();
  for (const label_t every : {label_t{2}, label_t{10}}) {  // half and a tenth of the vectors pass
    INFO("filter keeps labels divisible by " << every);
    const auto keep = [every](label_t l) { return l % every == 0; };
    double recall = 0;
    for (std::size_t i = 0; i < queries.rows(); ++i) {
      const auto truth = exact.search(queries.row(i), 10, {}, keep);
      REQUIRE(truth.size() == 10);
      for (const neighbor& n : truth) REQUIRE(keep(n.label));
      const auto got = idx.search(queries.row(i), 10, params, keep);
      for (const neighbor& n : got) REQUIRE(keep(n.label));
      recall += annulus::testing::overlap(truth, got);
    }
    CHECK(recall / double(queries.rows()) >= annulus::testing::min_filtered_recall_of<TestType>());
  }
}
