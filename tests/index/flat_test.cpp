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

TEMPLATE_TEST_CASE("flat_index batch with one_query_kernel is search() row by row, even where GEMM is not",
                   "[flat]", l2, inner_product, cosine) {
  // Far from the origin with tiny spreads: |q|^2 + |v|^2 - 2<q, v> loses
  // most digits, so only the one-query kernel ranks these exactly. 70
  // queries make three groups on two threads.
  auto base = annulus::testing::clustered(3000, 24, 6, 41);
  auto queries = annulus::testing::clustered(70, 24, 6, 42);
  for (auto* m : {&base, &queries})
    for (std::size_t i = 0; i < m->rows(); ++i)
      for (std::size_t j = 0; j < m->cols(); ++j) m->row_ptr(i)[j] = 1000.0f + 0.01f * m->row_ptr(i)[j];
  const auto idx = flat_index<TestType>::build(base.view());
  for (std::size_t threads : {1u, 2u}) {
    const auto got = idx.search_batch(queries.view(), 10, {.one_query_kernel = true}, threads);
    for (std::size_t i = 0; i < queries.rows(); ++i)
      REQUIRE(std::vector<neighbor>(got[i].begin(), got[i].end()) == idx.search(queries.row(i), 10));
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

// Issue 16: flat_index removes (freeing the slot for the next add) and
// filters; its GEMM batch path skips freed slots as the single search does.
TEMPLATE_TEST_CASE("flat_index: removed slots are skipped by both paths and reused by adds", "[flat]",
                   l2, inner_product, cosine) {
  const auto base = annulus::testing::clustered(3000, 20, 8, 51);
  auto idx = flat_index<TestType>::build(base.view());
  for (label_t l = 0; l < 3000; l += 2) idx.remove(l);
  REQUIRE(idx.size() == 1500);
  const auto queries = annulus::testing::clustered(40, 20, 8, 52);  // >= 16: the GEMM path
  const auto batch = search_batch(idx, queries.view(), 10, {}, 2);
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    const auto single = idx.search(queries.row(i), 10);
    REQUIRE(std::vector<neighbor>(batch[i].begin(), batch[i].end()) == single);
    // Exact: the same as a flat index that never held the even labels.
    const auto odd = idx.search(queries.row(i), 10, {}, [](label_t l) { return l % 2 == 1; });
    REQUIRE(odd == single);
    for (const neighbor& n : single) REQUIRE(n.label % 2 == 1);
  }
  std::vector<label_t> fresh(1000);
  for (std::size_t i = 0; i < fresh.size(); ++i) fresh[i] = 10000 + i;
  idx.add(base.view().rows_slice(0, 1000), fresh);
  CHECK(idx.size() == 2500);
  CHECK(idx.stored().rows() == 3000);  // the freed slots took the new vectors
  if constexpr (!std::is_same_v<TestType, inner_product>) CHECK(idx.search(base.row(0), 1)[0].label == 10000);
}
