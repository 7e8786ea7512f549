// hnsw_sq8_index beyond the shared interface tests (which it takes, with the
// lifecycle, out-of-memory and persistence ones, and the hnsw tests of
// removal, reuse, update, filters, growth and threads): on data whose codes
// are exact it walks exactly as hnsw_index does; results carry exact
// distances; recall stays with hnsw_index's on clustered data; rerank
// narrows the exact re-rank; the codes'
// bytes are counted; vectors outside the trained range are still found;
// a plain hnsw file is not one.
#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>
#include <vector>

#include "annulus/index/flat.hpp"
#include "annulus/index/hnsw.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"
#include "support/recall.hpp"

using namespace annulus;
using annulus::testing::clustered;
using annulus::testing::everything;
using annulus::testing::message_has;

namespace {
constexpr std::size_t k = 10;

// Whole numbers 0..255 with both ends in every dimension: step 1, codes exact.
matrix<float> pixels(std::size_t n, std::size_t d, std::uint64_t seed) {
  random_generator rng(seed);
  matrix<float> x(n, d);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j) x(i, j) = i == 0 ? 0.f : i == 1 ? 255.f : std::floor(float(rng.uniform()) * 256.f);
  return x;
}
}  // namespace

TEST_CASE("hnsw_sq8: where codes are exact, it walks and answers as hnsw_index", "[hnsw_sq8]") {
  const auto base = pixels(3000, 24, 1);
  const auto queries = pixels(50, 24, 2);
  const hnsw_index<l2>::build_params p{.m = 12, .ef_construction = 80, .seed = 5};
  const auto plain = hnsw_index<l2>::build(base.view(), p, 1);
  const auto coded = hnsw_sq8_index<l2>::build(base.view(), p, 1);
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    const auto a = plain.search(queries.row(i), k, {.ef = 40});
    const auto b = coded.search(queries.row(i), k, {.ef = 40});
    REQUIRE(a.size() == b.size());
    for (std::size_t j = 0; j < a.size(); ++j) {
      CHECK(a[j].label == b[j].label);
      CHECK(a[j].distance == b[j].distance);
    }
  }
}

TEMPLATE_TEST_CASE("hnsw_sq8: results carry exact distances, and recall is hnsw_index's", "[hnsw_sq8]", l2,
                   inner_product, cosine) {
  const std::size_t dim = 32;
  const auto base = clustered(4000, dim, 16, 3);
  const auto queries = clustered(100, dim, 16, 4);
  const typename hnsw_index<TestType>::build_params p{.m = 16, .ef_construction = 150, .seed = 3};
  const auto plain = hnsw_index<TestType>::build(base.view(), p);
  const auto coded = hnsw_sq8_index<TestType>::build(base.view(), p);
  const double plain_recall = annulus::testing::filtered_recall(plain, base, queries, {.ef = 64}, everything, k);
  const double coded_recall = annulus::testing::filtered_recall(coded, base, queries, {.ef = 64}, everything, k);
  INFO("recall: hnsw " << plain_recall << ", hnsw_sq8 " << coded_recall);
  CHECK(coded_recall >= 0.95);
  CHECK(coded_recall >= plain_recall - 0.02);
  std::vector<float> q(dim);
  for (std::size_t i = 0; i < queries.rows(); i += 9) {
    store_rows<TestType>(queries.view().rows_slice(i, 1), q.data());
    for (const neighbor& n : coded.search(queries.row(i), k, {.ef = 64})) {
      const std::vector<float> v = coded.get(n.label);
      CHECK(n.distance == TestType::distance(q.data(), v.data(), dim));
    }
  }
}

TEST_CASE("hnsw_sq8: rerank re-ranks only the closest by code, with exact distances", "[hnsw_sq8]") {
  const std::size_t dim = 32;
  const auto base = clustered(4000, dim, 16, 7);
  const auto queries = clustered(100, dim, 16, 8);
  const auto coded = hnsw_sq8_index<l2>::build(base.view(), {.m = 16, .ef_construction = 150, .seed = 3}, 1);
  const double all = annulus::testing::filtered_recall(coded, base, queries, {.ef = 128}, everything, k);
  const double forty = annulus::testing::filtered_recall(coded, base, queries, {.ef = 128, .rerank = 40}, everything, k);
  // rerank below k is raised to k: the k closest by code, in exact order.
  const double at_k = annulus::testing::filtered_recall(coded, base, queries, {.ef = 128, .rerank = 1}, everything, k);
  INFO("recall: rerank all " << all << ", 40 " << forty << ", k " << at_k);
  CHECK(forty >= all - 0.01);
  CHECK(at_k >= 0.8);
  CHECK(at_k < all);  // it took effect: codes alone misorder some near ties
  for (std::size_t i = 0; i < queries.rows(); i += 9) {
    const auto hits = coded.search(queries.row(i), k, {.ef = 128, .rerank = 1});
    REQUIRE(hits.size() == k);
    for (std::size_t j = 0; j < hits.size(); ++j) {
      const std::vector<float> v = coded.get(hits[j].label);
      CHECK(hits[j].distance == l2::distance(queries.row_ptr(i), v.data(), dim));
      if (j > 0) CHECK(hits[j - 1].distance <= hits[j].distance);
    }
  }
}

TEST_CASE("hnsw_sq8: memory_bytes is hnsw_index's plus a code per slot and the ranges", "[hnsw_sq8]") {
  const auto base = clustered(2000, 20, 6, 14);
  const auto plain = hnsw_index<l2>::build(base.view(), {.m = 10});
  const auto coded = hnsw_sq8_index<l2>::build(base.view(), {.m = 10});
  // 20 code bytes rounded up to a cache line, for each of the 2000 slots; 20 lower ends and steps.
  CHECK(coded.memory_bytes() == plain.memory_bytes() + 2000 * 64 + 2 * 20 * 4);
}

TEST_CASE("hnsw_sq8: vectors outside the first add's ranges are stored exactly and found", "[hnsw_sq8]") {
  const std::size_t dim = 16;
  const auto base = clustered(1500, dim, 6, 21);
  auto idx = hnsw_sq8_index<l2>::build(base.view(), {.m = 12, .ef_construction = 100, .seed = 2});
  matrix<float> far(3, dim);
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < dim; ++j) far(i, j) = 1000.f * float(i + 1) * (j % 2 ? 1.f : -1.f);
  const std::vector<label_t> labels{5000, 5001, 5002};
  idx.add(far.view(), labels);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(idx.get(labels[i]) == std::vector<float>(far.row_ptr(i), far.row_ptr(i) + dim));
    const auto got = idx.search(far.row(i), 1, {.ef = 64});
    REQUIRE(got.size() == 1);
    CHECK(got[0].label == labels[i]);
    CHECK(got[0].distance == 0.f);
  }
}

TEST_CASE("hnsw_sq8: an index built empty takes its ranges from its first add", "[hnsw_sq8]") {
  const auto base = clustered(2000, 16, 8, 31);
  const auto queries = clustered(50, 16, 8, 32);
  hnsw_sq8_index<l2> idx(16, {.m = 12, .ef_construction = 100});
  CHECK(idx.size() == 0);
  idx.add(base.view().rows_slice(0, 1000));
  idx.add(base.view().rows_slice(1000, 1000), {}, 2);
  CHECK(annulus::testing::filtered_recall(idx, base, queries, {.ef = 64}, everything, k) >= 0.95);
}

TEST_CASE("hnsw_sq8: a plain hnsw file is refused, and the other way round", "[hnsw_sq8][persist]") {
  const auto base = clustered(300, 16, 4, 33);
  std::stringstream plain, coded;
  hnsw_index<l2>::build(base.view()).save(plain);
  hnsw_sq8_index<l2>::build(base.view()).save(coded);
  CHECK_THROWS_MATCHES(hnsw_sq8_index<l2>::load(plain), format_error, message_has("expected 'hnsw_sq8'"));
  CHECK_THROWS_MATCHES(hnsw_index<l2>::load(coded), format_error, message_has("expected 'hnsw'"));
}
