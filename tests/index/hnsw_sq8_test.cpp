// hnsw_sq8_index beyond the shared interface tests (which it takes, with the
// lifecycle, out-of-memory and persistence ones, and the hnsw tests of
// removal, reuse, update, filters, growth and threads): on data whose codes
// are exact it walks exactly as hnsw_index does; results carry exact
// distances; recall stays with hnsw_index's on clustered data; rerank
// narrows the exact re-rank, and by default to max(8 k, 64); the codes'
// bytes are counted; vectors outside the trained range are still found;
// a plain hnsw file is not one; l2 records' code terms are checked on load,
// and files written before them still load, view, grow and answer.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "annulus/index/flat.hpp"
#include "annulus/index/hnsw.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"
#include "support/recall.hpp"
#include "support/reseal.hpp"
#include "support/temp_dir.hpp"

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
  const double all =
      annulus::testing::filtered_recall(coded, base, queries, {.ef = 128, .rerank = hnsw_search_params::rerank_all}, everything, k);
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

TEST_CASE("hnsw_sq8: rerank 0 re-ranks the max(8 k, 64) closest by code", "[hnsw_sq8]") {
  // One far row stretches every range, so the other rows' codes all read 0:
  // codes rank the beam by chance, and what a search returns depends on how
  // many of it get exact distances.
  const std::size_t dim = 8, n = 3000;
  random_generator rng(21);
  matrix<float> base(n, dim);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < dim; ++j) base(i, j) = i == 0 ? 1000.f : float(rng.uniform());
  const auto coded = hnsw_sq8_index<l2>::build(base.view(), {.m = 8, .ef_construction = 64, .seed = 4}, 1);
  auto labels = [&](std::span<const float> q, std::size_t want, std::size_t rerank) {
    std::vector<label_t> out;
    for (const neighbor& h : coded.search(q, want, {.ef = 300, .rerank = rerank})) out.push_back(h.label);
    return out;
  };
  std::size_t narrower_than_all = 0, wider_than_64 = 0;
  for (std::size_t i = 1; i < n; i += 97) {
    const auto q = base.row(i);
    CHECK(labels(q, 1, 0) == labels(q, 1, 64));  // max(8, 64)
    CHECK(labels(q, 10, 0) == labels(q, 10, 80));  // max(80, 64)
    narrower_than_all += labels(q, 1, 0) != labels(q, 1, hnsw_search_params::rerank_all);
    wider_than_64 += labels(q, 10, 0) != labels(q, 10, 64);
  }
  // The data makes the count matter (else the checks above prove nothing).
  CHECK(narrower_than_all > 0);
  CHECK(wider_than_64 > 0);
}

TEST_CASE("hnsw_sq8: memory_bytes is hnsw_index's plus a code per slot and the ranges", "[hnsw_sq8]") {
  const auto base = clustered(2000, 20, 6, 14);
  const auto plain = hnsw_index<l2>::build(base.view(), {.m = 10});
  const auto coded = hnsw_sq8_index<l2>::build(base.view(), {.m = 10});
  // 20 code bytes and the l2 term rounded up to a cache line, for each of the 2000 slots; 20 lower ends and steps.
  CHECK(coded.memory_bytes() == plain.memory_bytes() + 2000 * 64 + 2 * 20 * 4);
  // At a multiple of 64 dimensions the term would take a line of its own: l2 records go without it.
  const auto base64 = clustered(500, 64, 6, 15);
  CHECK(hnsw_sq8_index<l2>::build(base64.view(), {.m = 10}).memory_bytes() ==
        hnsw_index<l2>::build(base64.view(), {.m = 10}).memory_bytes() + 500 * 64 + 2 * 64 * 4);
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

TEST_CASE("hnsw_sq8: l2 code terms are recomputed on load; a view reads one that is not a number as 0",
          "[hnsw_sq8][persist]") {
  const std::size_t dim = 16, m = 8;
  const auto base = clustered(400, dim, 4, 35);
  const auto queries = clustered(30, dim, 4, 38);
  const auto idx = hnsw_sq8_index<l2>::build(base.view(), {.m = m, .ef_construction = 60, .seed = 4});
  std::stringstream saved;
  idx.save(saved);
  std::string file = saved.str();
  // Every record's term (node_store.hpp): after the header and 2m links
  // (88 bytes, rounded up to 128) and the dim code bytes; a record is those
  // 128, the code and term rounded up to 64, and the 64-byte vector.
  const std::size_t stride = 128 + 64 + 64;
  const std::size_t first = annulus::testing::section_at(file, "hnsw.nodes") + 128 + dim;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (std::size_t s = 0; s < 400; ++s) {
    float term;
    std::memcpy(&term, file.data() + first + s * stride, 4);
    REQUIRE(term > 0);
    std::memcpy(file.data() + first + s * stride, &nan, 4);
  }
  annulus::testing::reseal(file);
  std::stringstream damaged(file);
  const auto loaded = hnsw_sq8_index<l2>::load(damaged);
  annulus::testing::temp_dir dir;
  {
    std::ofstream out(dir / "damaged.annulus", std::ios::binary);
    out << file;
  }
  const auto viewed = hnsw_sq8_index<l2>::view(dir / "damaged.annulus");
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    const auto want = idx.search(queries.row(i), k, {.ef = 32});
    CHECK(loaded.search(queries.row(i), k, {.ef = 32}) == want);
    // The view walks with every term at 0: a worse walk, but k results with exact distances.
    const auto got = viewed.search(queries.row(i), k, {.ef = 32});
    REQUIRE(got.size() == k);
    for (const neighbor& n : got) CHECK(n.distance == l2::distance(queries.row_ptr(i), base.row_ptr(n.label), dim));
  }
}

TEST_CASE("hnsw_sq8: the terms field must say what the metric's records hold", "[hnsw_sq8][persist]") {
  const auto base = clustered(200, 12, 4, 36);
  std::stringstream l2_file, ip_file;
  hnsw_sq8_index<l2>::build(base.view(), {.m = 8}).save(l2_file);
  hnsw_sq8_index<inner_product>::build(base.view(), {.m = 8}).save(ip_file);
  std::string a = l2_file.str(), b = ip_file.str();
  REQUIRE(annulus::testing::set_field(a, "hnsw.sq8", "terms", 2));
  REQUIRE(annulus::testing::set_field(b, "hnsw.sq8", "terms", 1));
  std::stringstream sa(a), sb(b);
  CHECK_THROWS_MATCHES(hnsw_sq8_index<l2>::load(sa), format_error, message_has("terms 2, expected 0 or 1"));
  CHECK_THROWS_MATCHES(hnsw_sq8_index<inner_product>::load(sb), format_error,
                       message_has("only l2 records carry code terms"));
}

TEST_CASE("hnsw_sq8: an l2 file from before code terms loads, grows and answers on its float walk", "[hnsw_sq8][persist]") {
  // The fixture from before code terms: it loads, takes adds and answers.
  const auto file = std::filesystem::path(ANNULUS_FIXTURE_DIR) / "format-v1" / "hnsw_sq8-l2.annulus";
  auto idx = hnsw_sq8_index<l2>::load(file);
  CHECK(idx.params().alpha == 1.0);  // no alpha in the file: built with the paper's rule
  const std::size_t dim = idx.dim();
  const auto more = clustered(50, dim, 3, 37);
  std::vector<label_t> labels(50);
  for (std::size_t i = 0; i < 50; ++i) labels[i] = 10000 + i;
  idx.add(more.view(), labels);
  for (std::size_t i = 0; i < 50; ++i) {
    const auto got = idx.search(more.row(i), 1, {.ef = 64});
    REQUIRE(got.size() == 1);
    CHECK(got[0].label == labels[i]);
    CHECK(got[0].distance == 0.f);
  }
  std::stringstream again;
  idx.save(again);
  CHECK(hnsw_sq8_index<l2>::load(again).search(more.row(7), 1, {.ef = 64})[0].label == labels[7]);

  // The walk such a file gets never reads the term bytes: a file saying
  // "terms 0" whose term bytes hold 1e30 walks as well as with its terms.
  const std::size_t d = 16;
  const auto base = clustered(2000, d, 8, 39);
  const auto queries = clustered(50, d, 8, 40);
  const auto built = hnsw_sq8_index<l2>::build(base.view(), {.m = 8, .ef_construction = 60, .seed = 5});
  std::stringstream saved;
  built.save(saved);
  std::string bytes = saved.str();
  const std::size_t stride = 128 + 64 + 64;  // as above
  const std::size_t first = annulus::testing::section_at(bytes, "hnsw.nodes") + 128 + d;
  const float huge = 1e30f;
  for (std::size_t s = 0; s < 2000; ++s) std::memcpy(bytes.data() + first + s * stride, &huge, 4);
  REQUIRE(annulus::testing::set_field(bytes, "hnsw.sq8", "terms", 0));
  std::stringstream old_style(bytes);
  const auto floats = hnsw_sq8_index<l2>::load(old_style);
  const hnsw_search_params narrow{.ef = 16, .rerank = k};
  const double with_terms = annulus::testing::filtered_recall(built, base, queries, narrow, everything, k);
  const double on_floats = annulus::testing::filtered_recall(floats, base, queries, narrow, everything, k);
  INFO("recall: integer walk " << with_terms << ", float walk " << on_floats);
  CHECK(on_floats >= with_terms - 0.03);
  CHECK(on_floats >= 0.8);
  // Saved again, it keeps that layout: "terms 0", the same size.
  std::stringstream resaved;
  floats.save(resaved);
  CHECK(resaved.str().size() == bytes.size());
}
