#include "annulus/eval/recall.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <vector>

using namespace annulus;
using Catch::Contains;

namespace {

// A result_matrix of width k whose row q holds labels[q] (distances irrelevant).
result_matrix results_of(const std::vector<std::vector<label_t>>& labels, std::size_t k) {
  result_matrix r(labels.size(), k);
  for (std::size_t q = 0; q < labels.size(); ++q) {
    auto row = r.row_storage(q);
    for (std::size_t i = 0; i < labels[q].size(); ++i) row[i] = {labels[q][i], float(i)};
    r.set_count(q, labels[q].size());
  }
  return r;
}

}  // namespace

TEST_CASE("recall_at_k: perfect and zero", "[eval][recall]") {
  const std::vector<std::int32_t> truth = {0, 1, 2, 3,  //
                                           4, 5, 6, 7};
  const auto t = view_of(truth, 4);
  // Order within the top k does not matter.
  CHECK(recall_at_k(results_of({{2, 0, 1}, {4, 6, 5}}, 3), t, 3) == 1.0);
  CHECK(recall_at_k(results_of({{8, 9, 10}, {0, 1, 2}}, 3), t, 3) == 0.0);
  // Truth id at rank k+1 is not in the plain top k.
  CHECK(recall_at_k(results_of({{3, 3, 3}, {7, 7, 7}}, 3), t, 3) == 0.0);
}

TEST_CASE("recall_at_k: partial", "[eval][recall]") {
  const std::vector<std::int32_t> truth = {0, 1, 2, 3, 4,  //
                                           10, 11, 12, 13, 14};
  // 4 of 5 and 3 of 5: (4 + 3) / 10.
  const auto r = results_of({{0, 1, 2, 3, 99}, {10, 11, 12, 98, 97}}, 5);
  CHECK(recall_at_k(r, view_of(truth, 5), 5) == Approx(0.7));
  // Only the first k returned count: recall@2 on the same rows.
  const auto late = results_of({{99, 98, 0, 1}, {10, 97, 11, 12}}, 4);
  CHECK(recall_at_k(late, view_of(truth, 5), 2) == Approx(0.25));
}

TEST_CASE("recall_at_k: rows with fewer than k results count misses", "[eval][recall]") {
  const std::vector<std::int32_t> truth = {0, 1, 2, 3,  //
                                           4, 5, 6, 7};
  // Row 0 holds 2 correct of k = 4, row 1 is empty: 2 / 8.
  CHECK(recall_at_k(results_of({{1, 0}, {}}, 4), view_of(truth, 4), 4) == Approx(0.25));
  // A result matrix narrower than k: the same.
  CHECK(recall_at_k(results_of({{0, 1}, {4, 5}}, 2), view_of(truth, 4), 4) == Approx(0.5));
}

TEST_CASE("recall_at_k: duplicates count once", "[eval][recall]") {
  const std::vector<std::int32_t> truth = {0, 1, 2, 3};
  const std::vector<float> dist = {1.f, 2.f, 3.f, 4.f};
  const auto r = results_of({{0, 0, 0}}, 3);
  CHECK(recall_at_k(r, view_of(truth, 4), 3) == Approx(1.0 / 3));
  CHECK(recall_at_k(r, view_of(truth, 4), view_of(dist, 4), 3) == Approx(1.0 / 3));
  CHECK(recall_at_k(results_of({{1, 0, 1}}, 3), view_of(truth, 4), 3) == Approx(2.0 / 3));
}

TEST_CASE("recall_at_k: tie-aware counts a tie at rank k+1", "[eval][recall]") {
  // Ranks 3 and 4 (ids 2 and 3) are equally far; id 4 is farther.
  const std::vector<std::int32_t> truth = {0, 1, 2, 3, 4};
  const std::vector<float> dist = {1.f, 2.f, 3.f, 3.f, 4.f};
  const auto t = view_of(truth, 5);
  const auto d = view_of(dist, 5);

  const auto tie = results_of({{0, 1, 3}}, 3);
  CHECK(recall_at_k(tie, t, 3) == Approx(2.0 / 3));
  CHECK(recall_at_k(tie, t, d, 3) == 1.0);

  // Farther than the k-th true distance: a miss in both.
  const auto far = results_of({{0, 1, 4}}, 3);
  CHECK(recall_at_k(far, t, 3) == Approx(2.0 / 3));
  CHECK(recall_at_k(far, t, d, 3) == Approx(2.0 / 3));

  // Not in the truth row at all: a miss (true distance unknown).
  CHECK(recall_at_k(results_of({{0, 1, 99}}, 3), t, d, 3) == Approx(2.0 / 3));

  // Both tied ids returned with k = 3: still at most k hits.
  CHECK(recall_at_k(results_of({{2, 3, 0}}, 3), t, d, 3) == 1.0);
}

TEST_CASE("hits_at_k: per query, plain and tie-aware", "[eval][recall]") {
  const std::vector<neighbor> returned = {{7, 0.f}, {5, 1.f}, {6, 2.f}};
  const std::vector<std::int32_t> truth = {5, 7, 8, 6};
  const std::vector<float> dist = {1.f, 1.f, 2.f, 2.f};
  CHECK(hits_at_k(returned, truth, {}, 3) == 2);
  CHECK(hits_at_k(returned, truth, dist, 3) == 3);
  CHECK(hits_at_k(returned, truth, {}, 1) == 0);  // only 7 counts; truth top-1 is 5
  CHECK(hits_at_k({}, truth, dist, 2) == 0);

  // A negative (padding) truth id never matches, not even the largest label.
  const std::vector<neighbor> big = {{std::numeric_limits<label_t>::max(), 0.f}};
  const std::vector<std::int32_t> padded = {-1, -1};
  CHECK(hits_at_k(big, padded, {}, 1) == 0);
}

TEST_CASE("recall_at_k: validation", "[eval][recall]") {
  const std::vector<std::int32_t> truth = {0, 1, 2, 3, 4, 5};  // 2 x 3
  const std::vector<float> dist = {0, 1, 2, 3, 4, 5, 6, 7};    // 2 x 4
  const auto t = view_of(truth, 3);
  const auto r = results_of({{0}, {3}}, 3);

  CHECK_THROWS_AS(recall_at_k(r, t, 0), invalid_argument);
  CHECK_THROWS_WITH(recall_at_k(r, t, 0), Contains("got 0"));

  CHECK_THROWS_AS(recall_at_k(r, t, 5), invalid_argument);
  CHECK_THROWS_WITH(recall_at_k(r, t, 5), Contains("3 neighbours per query") && Contains("k = 5"));

  const auto r3 = results_of({{0}, {3}, {4}}, 3);
  CHECK_THROWS_AS(recall_at_k(r3, t, 2), dimension_mismatch);
  CHECK_THROWS_WITH(recall_at_k(r3, t, 2), Contains("2 rows") && Contains("3 queries"));

  CHECK_THROWS_AS(recall_at_k(r, t, view_of(dist, 4), 2), dimension_mismatch);
  CHECK_THROWS_WITH(recall_at_k(r, t, view_of(dist, 4), 2),
                    Contains("2 x 4") && Contains("2 x 3"));

  const std::vector<std::int32_t> none;
  CHECK_THROWS_AS(recall_at_k(result_matrix(0, 3), view_of(none, 3), 1), invalid_argument);
  CHECK_THROWS_WITH(recall_at_k(result_matrix(0, 3), view_of(none, 3), 1), Contains("no queries"));

  // The per-query function checks the same things.
  const std::vector<neighbor> one = {{0, 0.f}};
  const std::vector<std::int32_t> row = {0, 1, 2};
  const std::vector<float> short_dist = {0.f, 1.f};
  CHECK_THROWS_AS(hits_at_k(one, row, {}, 0), invalid_argument);
  CHECK_THROWS_WITH(hits_at_k(one, row, {}, 4), Contains("3 neighbours per query") &&
                                                    Contains("k = 4"));
  CHECK_THROWS_AS(hits_at_k(one, row, short_dist, 2), dimension_mismatch);
  CHECK_THROWS_WITH(hits_at_k(one, row, short_dist, 2), Contains("3 ids but 2 distances"));
}

TEST_CASE("recall_at_k against exact results", "[eval][recall]") {
  const auto exact = results_of({{1ull << 40, 5, 6}, {7, 8, 9}}, 3);
  // 64-bit labels compare as labels; duplicates count once; order does not matter.
  CHECK(recall_at_k(results_of({{6, 5, 1ull << 40}, {9, 9, 9}}, 3), exact, 3) == Approx(4.0 / 6));
  CHECK(recall_at_k(results_of({{5, 1ull << 40}, {7}}, 3), exact, 2) == Approx(3.0 / 4));
  // A filtered exact row with fewer than k asks only for what it has.
  const auto short_truth = results_of({{3}, {4, 5, 6}}, 3);
  CHECK(recall_at_k(results_of({{3, 8, 9}, {4, 5, 0}}, 3), short_truth, 3) == Approx(3.0 / 4));
  CHECK_THROWS_WITH(recall_at_k(exact, exact, 4), Contains("exact results hold 3 neighbours per query, k = 4"));
  CHECK_THROWS_AS(recall_at_k(results_of({{1}}, 3), exact, 3), dimension_mismatch);
  CHECK_THROWS_AS(recall_at_k(exact, exact, 0), invalid_argument);
}
