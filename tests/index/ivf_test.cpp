// ivf_flat_index and ivf_pq_index beyond the shared interface tests: exact
// search when every list is probed, recall per metric on clustered data with
// uneven norms, PQ distances against exact ones, removals, filters, slot
// reuse, and the errors of training and untrained use.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>
#include <type_traits>
#include <vector>

#include "annulus/index/concepts.hpp"
#include "annulus/index/flat.hpp"
#include "annulus/index/ivf_flat.hpp"
#include "annulus/index/ivf_pq.hpp"
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

TEMPLATE_TEST_CASE("ivf_flat: probing every list is exact search", "[ivf]", l2, inner_product, cosine) {
  STATIC_REQUIRE(mutable_index<ivf_flat_index<TestType>>);
  STATIC_REQUIRE(filterable_index<ivf_flat_index<TestType>, decltype(everything)>);
  const auto base = clustered(2000, dim, 10, 1);
  const auto queries = clustered(40, dim, 10, 2);
  const auto idx = ivf_flat_index<TestType>::build(base.view(), {.nlist = 20});
  const auto exact = flat_index<TestType>::build(base.view());
  for (std::size_t i = 0; i < queries.rows(); ++i)
    REQUIRE(idx.search(queries.row(i), k, {.nprobe = 20}) == exact.search(queries.row(i), k));
  CHECK(idx.search(queries.row(0), k, {.nprobe = 1000}) == exact.search(queries.row(0), k));  // clamped
}

TEMPLATE_TEST_CASE("ivf_flat: recall@10 >= 0.95 at nprobe = 10 of 64 on clustered data", "[ivf]", l2,
                   inner_product, cosine) {
  const auto base = clustered(6000, dim, 20, 3);
  const auto queries = clustered(100, dim, 20, 4);
  const auto idx = ivf_flat_index<TestType>::build(base.view(), {.nlist = 64});
  std::size_t stored = 0;
  for (std::size_t l = 0; l < idx.nlist(); ++l) stored += idx.list_size(l);
  REQUIRE(stored == base.rows());
  const double recall = filtered_recall(idx, base, queries, {.nprobe = 10}, everything, k);
  INFO("recall " << recall);
  CHECK(recall >= 0.95);
  CHECK(filtered_recall(idx, base, queries, {.nprobe = 2}, everything, k, false) < recall);
}

TEMPLATE_TEST_CASE("ivf_pq: recall@10 with re-ranking, and without it a lower but real recall", "[ivf]", l2,
                   inner_product, cosine) {
  const auto base = clustered(6000, dim, 20, 5);
  const auto queries = clustered(100, dim, 20, 6);
  const auto idx = ivf_pq_index<TestType>::build(
      base.view(), {.nlist = 64, .m = 16, .keep_vectors = true, .pq_iterations = 8});
  STATIC_REQUIRE(mutable_index<ivf_pq_index<TestType>>);
  const double refined = filtered_recall(idx, base, queries, {.nprobe = 8, .refine_factor = 4}, everything, k);
  const double plain = filtered_recall(idx, base, queries, {.nprobe = 8}, everything, k);
  INFO("refined " << refined << ", plain " << plain);
  CHECK(refined >= 0.95);
  CHECK(plain >= 0.5);
  CHECK(plain < refined);
  // Re-ranked distances are exact.
  const auto got = idx.search(queries.row(0), k, {.nprobe = 8, .refine_factor = 4});
  for (const neighbor& n : got)
    CHECK(n.distance == Approx(annulus::testing::exact_distance<TestType>(queries.row_ptr(0), base.row_ptr(n.label), dim))
                            .epsilon(1e-4).margin(1e-4));
}

TEMPLATE_TEST_CASE("ivf_pq: with lossless codes the PQ distances are the exact distances", "[ivf]", l2,
                   inner_product) {
  // 16 values per coordinate, one coordinate per sub-vector, one list: the
  // residuals take at most 16 values per sub-space, so 256 centroids hold them exactly.
  const std::size_t d = 8;
  random_generator rng(11);
  matrix<float> base(600, d);
  for (std::size_t i = 0; i < base.size(); ++i) base.data()[i] = float(rng.below(16)) - 5.f;
  const auto idx = ivf_pq_index<TestType>::build(base.view(), {.nlist = 1, .m = d, .pq_iterations = 30});
  for (std::size_t q = 0; q < 20; ++q) {
    const auto got = idx.search(base.row(q * 7), 5, {.nprobe = 1});
    for (const neighbor& n : got) {
      const double exact = annulus::testing::exact_distance<TestType>(base.row_ptr(q * 7), base.row_ptr(n.label), d);
      INFO("query " << q << ", label " << n.label);
      CHECK(n.distance == Approx(exact).margin(1e-3));
    }
    CHECK(got[0].distance <= float(annulus::testing::exact_distance<TestType>(base.row_ptr(q * 7), base.row_ptr(q * 7), d)) + 1e-3f);
  }
}

TEST_CASE("ivf: removed labels are never returned, their slots are reused, filters hold", "[ivf]") {
  const auto base = clustered(3000, dim, 12, 7);
  const auto queries = clustered(50, dim, 12, 8);
  auto flat = ivf_flat_index<l2>::build(base.view(), {.nlist = 32});
  auto pq = ivf_pq_index<l2>::build(base.view(), {.nlist = 32, .m = 8, .keep_vectors = true, .pq_iterations = 8});
  for (label_t l = 0; l < base.rows(); l += 2) {
    flat.remove(l);
    pq.remove(l);
  }
  CHECK(flat.size() == 1500);
  CHECK(pq.size() == 1500);
  CHECK_FALSE(flat.contains(0));
  CHECK(pq.contains(1));
  const auto odd = [](label_t l) { return l % 2 == 1; };
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    for (const neighbor& n : flat.search(queries.row(i), k, {.nprobe = 32})) REQUIRE(odd(n.label));
    for (const neighbor& n : pq.search(queries.row(i), k, {.nprobe = 32, .refine_factor = 2})) REQUIRE(odd(n.label));
  }
  CHECK(filtered_recall(flat, base, queries, {.nprobe = 32}, odd, k) == 1.0);
  CHECK_THROWS_MATCHES(flat.remove(0), invalid_argument, message_has("label 0 is not in the index"));
  CHECK_THROWS_AS(pq.remove(4), invalid_argument);

  // Filters, on top of the removals: every third odd label.
  const auto third = [](label_t l) { return l % 6 == 1; };
  CHECK(filtered_recall(flat, base, queries, {.nprobe = 32}, third, k) == 1.0);
  CHECK(filtered_recall(pq, base, queries, {.nprobe = 32, .refine_factor = 4}, third, k) >= 0.9);

  // Adding back reuses the freed slots: memory does not grow.
  const std::size_t before = pq.memory().vectors;
  matrix<float> evens(1500, dim);
  std::vector<label_t> labels(1500);
  for (std::size_t i = 0; i < 1500; ++i) {
    std::copy_n(base.row_ptr(2 * i), dim, evens.row_ptr(i));
    labels[i] = 2 * i;
  }
  flat.add(evens.view(), labels);
  pq.add(evens.view(), labels);
  CHECK(pq.memory().vectors == before);
  CHECK(filtered_recall(flat, base, queries, {.nprobe = 32}, everything, k) == 1.0);
  CHECK(filtered_recall(pq, base, queries, {.nprobe = 32, .refine_factor = 8}, everything, k) >= 0.95);
}

TEST_CASE("ivf: training and untrained use are clear errors", "[ivf]") {
  const auto data = clustered(300, 16, 4, 9);
  CHECK_THROWS_MATCHES(ivf_flat_index<l2>::build(data.view(), {.nlist = 301}), invalid_argument,
                       message_has("300 training vectors for nlist = 301"));
  CHECK_THROWS_MATCHES(ivf_pq_index<l2>::build(data.view(), {.nlist = 4, .m = 4, .nbits = 9}), invalid_argument,
                       message_has("nbits"));
  CHECK_THROWS_MATCHES(ivf_pq_index<l2>::build(data.view(), {.nlist = 4, .m = 5}), invalid_argument,
                       message_has("must divide the dimension 16"));
  CHECK_THROWS_MATCHES(ivf_pq_index<l2>::build(data.view().rows_slice(0, 200), {.nlist = 4, .m = 4}), invalid_argument,
                       message_has("200 training vectors for 256 PQ centroids"));
  CHECK_THROWS_AS(ivf_flat_index<l2>(16, {.nlist = 0}), invalid_argument);

  ivf_flat_index<l2> empty(16, {.nlist = 8});
  CHECK_FALSE(empty.trained());
  CHECK_THROWS_MATCHES(empty.search(data.row(0), 1), invalid_argument, message_has("not trained"));
  CHECK_THROWS_MATCHES(empty.add(data.view()), invalid_argument, message_has("not trained"));
  ivf_pq_index<cosine> empty_pq(16, {.nlist = 8, .m = 4, .nbits = 6});
  CHECK_THROWS_MATCHES(empty_pq.search(data.row(0), 1), invalid_argument, message_has("not trained"));

  empty.train(data.view());
  empty_pq.train(data.view());
  CHECK(empty.trained());
  CHECK(empty_pq.trained());
  CHECK(empty.size() == 0);
  empty.add(data.view());
  empty_pq.add(data.view());
  CHECK_THROWS_MATCHES(empty.train(data.view()), invalid_argument, message_has("holds (or held) vectors"));
  CHECK_THROWS_AS(empty_pq.train(data.view()), invalid_argument);
  CHECK_THROWS_MATCHES(empty.search(data.row(0), 3, {.nprobe = 0}), invalid_argument, message_has("nprobe"));
  CHECK_THROWS_MATCHES(empty_pq.search(data.row(0), 3, {.refine_factor = 2}), invalid_argument,
                       message_has("keep_vectors"));
  matrix<float> zero(1, 16);
  CHECK_THROWS_MATCHES(empty_pq.add(zero.view()), invalid_argument, message_has("zero vector"));
  CHECK(empty_pq.size() == 300);
}

TEST_CASE("ivf_pq: memory is the codes, the slots and the l2 term per vector", "[ivf]") {
  const auto base = clustered(5000, 32, 10, 10);
  const auto l2_idx = ivf_pq_index<l2>::build(base.view(), {.nlist = 16, .m = 16, .pq_iterations = 3});
  const auto ip_idx = ivf_pq_index<inner_product>::build(base.view(), {.nlist = 16, .m = 16, .pq_iterations = 3});
  // Lists built in one add are sized exactly: 16 code bytes + 4 slot bytes (+ 4 under l2).
  const double per_l2 = double(l2_idx.memory().lists) / 5000, per_ip = double(ip_idx.memory().lists) / 5000;
  CHECK(per_l2 == Approx(24).margin(0.5));
  CHECK(per_ip == Approx(20).margin(0.5));
  CHECK(l2_idx.memory().vectors == 0);
  CHECK(l2_idx.memory_bytes() == l2_idx.memory().lists + l2_idx.memory().quantizers + l2_idx.memory().labels);
}

TEST_CASE("ivf: lists that grow one add at a time, shrink and grow again keep every vector", "[ivf]") {
  // Single-vector adds move growing lists to fresh arena space and, once
  // enough is left behind, compact everything: results must not change.
  const auto base = clustered(1200, 16, 6, 12);
  const auto queries = clustered(30, 16, 6, 13);
  auto idx = ivf_flat_index<l2>::build(base.view().rows_slice(0, 200), {.nlist = 8});
  for (std::size_t i = 200; i < 1200; ++i) idx.add(base.view().rows_slice(i, 1));
  for (label_t l = 0; l < 1200; l += 3) idx.remove(l);
  for (label_t l = 0; l < 1200; l += 3) {
    const std::vector<label_t> label{l};
    idx.add(base.view().rows_slice(l, 1), label);
  }
  REQUIRE(idx.size() == 1200);
  const auto exact = flat_index<l2>::build(base.view());
  for (std::size_t i = 0; i < queries.rows(); ++i)
    REQUIRE(idx.search(queries.row(i), k, {.nprobe = 8}) == exact.search(queries.row(i), k));
  // Left-behind space is bounded: at most about twice what the vectors need.
  CHECK(idx.memory_bytes() < 3 * 1200 * 16 * sizeof(float) + 100000);
}

TEMPLATE_TEST_CASE("ivf: get returns the stored vector (ivf_pq: kept, or decoded)", "[ivf]", l2, inner_product,
                   cosine) {
  const auto base = clustered(1500, dim, 10, 14);
  const auto flat = ivf_flat_index<TestType>::build(base.view(), {.nlist = 16});
  const auto kept = ivf_pq_index<TestType>::build(base.view(), {.nlist = 16, .m = 8, .keep_vectors = true});
  const auto codes = ivf_pq_index<TestType>::build(base.view(), {.nlist = 16, .m = 8});
  double error = 0, norm = 0;
  for (label_t l = 0; l < base.rows(); l += 7) {
    std::vector<float> want(base.row_ptr(l), base.row_ptr(l) + dim);
    if constexpr (TestType::normalizes) {
      float n = 0;
      for (const float x : want) n += x * x;
      for (float& x : want) x /= std::sqrt(n);
    }
    const std::vector<float> a = flat.get(l), b = kept.get(l), c = codes.get(l);
    for (std::size_t j = 0; j < dim; ++j) {
      REQUIRE(a[j] == Approx(want[j]).margin(1e-6));
      REQUIRE(b[j] == Approx(want[j]).margin(1e-6));
      error += (c[j] - want[j]) * (c[j] - want[j]);
      norm += want[j] * want[j];
    }
  }
  // PQ decodes approximately: centroid + decoded residual, a few percent off.
  INFO("relative squared error " << error / norm);
  CHECK(error / norm < 0.05);
  CHECK_THROWS_MATCHES(flat.get(5000), invalid_argument, message_has("ivf_flat_index::get: label 5000"));
}

TEST_CASE("ivf_pq: with lossless codes get decodes the vector exactly", "[ivf]") {
  const std::size_t d = 8;
  random_generator rng(11);
  matrix<float> base(600, d);
  for (std::size_t i = 0; i < base.size(); ++i) base.data()[i] = float(rng.below(16)) - 5.f;
  const auto idx = ivf_pq_index<l2>::build(base.view(), {.nlist = 1, .m = d, .pq_iterations = 30});
  for (label_t l = 0; l < base.rows(); l += 13) {
    const std::vector<float> got = idx.get(l);
    for (std::size_t j = 0; j < d; ++j) REQUIRE(got[j] == Approx(base.row_ptr(l)[j]).margin(1e-3));
  }
}

TEMPLATE_TEST_CASE("ivf: update moves the vector to its new list; a failed update changes nothing", "[ivf]",
                   ivf_flat_index<l2>, ivf_flat_index<cosine>, ivf_pq_index<l2>, ivf_pq_index<inner_product>) {
  using M = typename TestType::metric_type;
  const auto base = clustered(2000, dim, 10, 15);
  typename TestType::build_params p{.nlist = 16};
  if constexpr (requires { p.keep_vectors; }) {
    p.m = 8;
    p.keep_vectors = true;
  }
  auto idx = TestType::build(base.view(), p);
  const auto sizes = [&] {
    std::vector<std::size_t> s(idx.nlist());
    for (std::size_t l = 0; l < idx.nlist(); ++l) s[l] = idx.list_size(l);
    return s;
  };
  // Label 3 takes row 1999's vector (another cluster, most likely another list).
  const std::vector<std::size_t> before = sizes();
  idx.update(3, base.row(1999));
  CHECK(idx.size() == 2000);
  CHECK(idx.contains(3));
  std::size_t moved = 0, total = 0;
  for (std::size_t l = 0; l < idx.nlist(); ++l) {
    moved += before[l] > sizes()[l] ? before[l] - sizes()[l] : sizes()[l] - before[l];
    total += sizes()[l];
  }
  CHECK(total == 2000);
  CHECK(moved <= 2);
  CHECK(idx.get(3) == idx.get(1999));
  // The nearest list of row 1999 holds both now: one probe finds both at distance ~0
  // (under inner_product a probe ranks lists by <q, c>, and q itself need not be the best).
  if constexpr (!std::is_same_v<M, inner_product>) {
    typename TestType::search_params s{.nprobe = 1};
    if constexpr (requires { s.refine_factor; }) s.refine_factor = 4;
    const auto hits = idx.search(base.row(1999), 2, s);
    REQUIRE(hits.size() == 2);
    CHECK(hits[0].label == 3);  // equal distances: by label
    CHECK(hits[1].label == 1999);
    CHECK(hits[1].distance == Approx(0).margin(1e-4));
  }
  const std::vector<std::size_t> after = sizes();

  // Unknown label, bad values: errors, nothing changed.
  const std::vector<float> old = idx.get(3);
  CHECK_THROWS_MATCHES(idx.update(4000, base.row(0)), invalid_argument, message_has("update: label 4000"));
  std::vector<float> bad(base.row_ptr(0), base.row_ptr(0) + dim);
  bad[5] = std::nanf("");
  CHECK_THROWS_AS(idx.update(3, bad), invalid_argument);
  CHECK(idx.get(3) == old);
  CHECK(sizes() == after);
}

TEST_CASE("ivf: search refuses untrained, nprobe = 0 and refine without vectors before looking at k", "[ivf]") {
  const auto data = clustered(300, 16, 4, 16);
  ivf_flat_index<l2> empty(16, {.nlist = 8});
  CHECK_THROWS_MATCHES(empty.search(data.row(0), 5), invalid_argument,
                       message_has("ivf_flat_index::search: the index is not trained"));
  CHECK_THROWS_MATCHES(empty.search_batch(data.view(), 5), invalid_argument, message_has("not trained"));
  CHECK_THROWS_MATCHES(empty.get(0), invalid_argument, message_has("label 0 is not in the index"));
  const auto flat = ivf_flat_index<l2>::build(data.view(), {.nlist = 8});
  CHECK_THROWS_MATCHES(flat.search(data.row(0), 301, {.nprobe = 0}), invalid_argument, message_has("nprobe"));
  const auto pq = ivf_pq_index<l2>::build(data.view(), {.nlist = 8, .m = 4, .nbits = 6});
  CHECK_THROWS_MATCHES(pq.search(data.row(0), 0, {.refine_factor = 2}), invalid_argument,
                       message_has("keep_vectors"));
  CHECK_THROWS_MATCHES(pq.search(data.row(0), 1000, {.nprobe = 0}), invalid_argument, message_has("nprobe"));
  CHECK(ivf_flat_index<l2>::build_params{}.seed == default_seed);
  CHECK(ivf_pq_index<l2>::build_params{}.seed == default_seed);
}

TEST_CASE("ivf_flat: memory is the vectors and the slots per vector", "[ivf]") {
  const auto base = clustered(5000, 32, 10, 17);
  const auto idx = ivf_flat_index<l2>::build(base.view(), {.nlist = 16});
  const auto u = idx.memory();
  CHECK(double(u.lists) / 5000 == Approx(32 * 4 + 4).margin(0.5));
  CHECK(u.vectors == 0);
  CHECK(u.quantizers > 0);
  CHECK(idx.memory_bytes() == u.lists + u.quantizers + u.labels);
}
