#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "annulus/index/concepts.hpp"
#include "annulus/index/flat.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"

using namespace annulus;

TEMPLATE_TEST_CASE("flat_index equals a double-precision scan, distances included", "[flat]",
                   l2, inner_product, cosine) {
  const auto base = annulus::testing::clustered(2000, 33, 8, 21);
  const auto queries = annulus::testing::clustered(40, 33, 8, 22);
  const auto idx = flat_index<TestType>::build(base.view());
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    const auto truth = annulus::testing::brute_force<TestType>(base.view(), queries.row_ptr(i), 10);
    const auto got = idx.search(queries.row(i), 10);
    REQUIRE(annulus::testing::overlap(truth, got) == 1.0);
    for (std::size_t r = 0; r < 10; ++r)
      REQUIRE(got[r].distance == Approx(truth[r].distance).epsilon(1e-4).margin(1e-4));
  }
}

TEMPLATE_TEST_CASE("flat_index batch: small and large batches, 1 and 2 threads agree", "[flat]",
                   l2, inner_product, cosine) {
  const auto base = annulus::testing::clustered(5000, 40, 10, 31);
  const auto idx = flat_index<TestType>::build(base.view());
  // 300 queries cross several GEMM query blocks; 5 take the one-by-one path.
  for (std::size_t nq : {5u, 300u}) {
    const auto queries = annulus::testing::clustered(nq, 40, 10, 32 + nq);
    const auto one = search_batch(idx, queries.view(), 7, {}, 1);
    const auto two = search_batch(idx, queries.view(), 7, {}, 2);
    for (std::size_t i = 0; i < nq; ++i) {
      const auto single = idx.search(queries.row(i), 7);
      REQUIRE(std::vector<neighbor>(one[i].begin(), one[i].end()) == single);
      REQUIRE(std::vector<neighbor>(two[i].begin(), two[i].end()) == single);
    }
  }
}

TEST_CASE("flat_index<cosine> refuses zero vectors and normalises once", "[flat]") {
  matrix<float> data(3, 4);
  for (std::size_t j = 0; j < 4; ++j) {
    data(0, j) = 1.f;
    data(1, j) = float(j);
  }
  CHECK_THROWS_MATCHES(flat_index<cosine>::build(data.view()), invalid_argument,
                       annulus::testing::message_has("row 2 is a zero vector"));
  data(2, 0) = 5.f;
  const auto idx = flat_index<cosine>::build(data.view());
  CHECK(kernels::norm(idx.stored().row_ptr(2), 4) == Approx(1.f));
  CHECK_THROWS_MATCHES(idx.search(std::vector<float>(4, 0.f), 1), invalid_argument,
                       annulus::testing::message_has("zero vector"));
  const std::vector<float> q{2, 2, 2, 2};  // same direction as row 0
  const auto got = idx.search(q, 1);
  CHECK(got[0].label == 0);
  CHECK(similarity<cosine>(got[0].distance) == Approx(1.f));
}

TEST_CASE("flat_index: construction and label errors", "[flat]") {
  CHECK_THROWS_AS(flat_index<l2>(0), invalid_argument);
  flat_index<l2> idx(2);
  CHECK(idx.size() == 0);
  CHECK_THROWS_MATCHES(idx.search(std::vector<float>{1, 2}, 1), invalid_argument,
                       annulus::testing::message_has("exceeds the 0 vectors"));
  matrix<float> rows(2, 2);
  rows(0, 0) = 1;
  rows(1, 1) = 1;
  const std::vector<label_t> dup{5, 5}, one{5};
  CHECK_THROWS_MATCHES(idx.add(rows.view(), dup), invalid_argument,
                       annulus::testing::message_has("label 5 appears twice"));
  CHECK_THROWS_MATCHES(idx.add(rows.view(), one), invalid_argument,
                       annulus::testing::message_has("1 labels given for 2 vectors"));
  CHECK(idx.size() == 0);
  const std::vector<label_t> labels{1, 0};
  idx.add(rows.view(), labels);
  // Default labels continue at size(): 2 and 3 are free.
  idx.add(rows.view());
  CHECK(idx.size() == 4);
  CHECK_THROWS_AS(idx.add(rows.view(), labels), invalid_argument);
  const auto got = idx.search(std::vector<float>{1, 0}, 2);
  CHECK(got[0].label == 1);
  CHECK(got[1].label == 2);
  idx.add(matrix<float>(0, 7).view());  // nothing to add: no error, no change
  CHECK(idx.size() == 4);
}
