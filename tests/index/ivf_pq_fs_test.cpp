// ivf_pq_fs_index (4-bit fast-scan IVF-PQ) beyond the shared interface
// tests: recall per metric against brute force on clustered data, the
// fast-scan estimates against exact 4-bit ADC from a float decode, the
// interleaved lists through removals and adds, filters, persistence, errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <type_traits>
#include <vector>

#include "annulus/index/concepts.hpp"
#include "annulus/index/flat.hpp"
#include "annulus/index/ivf_pq_fast_scan.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"
#include "support/recall.hpp"
#include "support/temp_dir.hpp"

using namespace annulus;
using annulus::testing::clustered;
using annulus::testing::everything;
using annulus::testing::filtered_recall;
using annulus::testing::message_has;

namespace {
constexpr std::size_t dim = 32, k = 10;

// label -> estimated distance of every live vector for q: rf = 0, every list.
template <class Index>
std::map<label_t, float> all_estimates(const Index& idx, std::span<const float> q) {
  std::map<label_t, float> out;
  for (const neighbor& n : idx.search(q, idx.size(), {.nprobe = idx.nlist(), .refine_factor = 0}))
    out[n.label] = n.distance;
  return out;
}
}  // namespace

TEMPLATE_TEST_CASE("ivf_pq_fs: recall@10 against brute force, refined and not", "[ivf][fast_scan]", l2,
                   inner_product, cosine) {
  STATIC_REQUIRE(mutable_index<ivf_pq_fs_index<TestType>>);
  STATIC_REQUIRE(filterable_index<ivf_pq_fs_index<TestType>, decltype(everything)>);
  const auto base = clustered(6000, dim, 20, 5);
  const auto queries = clustered(100, dim, 20, 6);
  // The default m (16: 2 dimensions a sub-space) and a finer m = 32.
  const auto idx = ivf_pq_fs_index<TestType>::build(base.view(), {.nlist = 64, .pq_iterations = 10});
  const auto fine = ivf_pq_fs_index<TestType>::build(base.view(), {.nlist = 64, .m = dim, .pq_iterations = 10});
  REQUIRE(idx.quantizer().m() == 16);
  REQUIRE(idx.quantizer().nbits() == 4);
  const double plain = filtered_recall(idx, base, queries, {.nprobe = 10, .refine_factor = 0}, everything, k);
  const double some = filtered_recall(idx, base, queries, {.nprobe = 10, .refine_factor = 2}, everything, k);
  const double deep = filtered_recall(idx, base, queries, {.nprobe = 10, .refine_factor = 40}, everything, k);
  const double fine_default = filtered_recall(fine, base, queries, {.nprobe = 10}, everything, k);
  INFO("plain " << plain << ", refine 2 " << some << ", refine 40 " << deep << ", m = 32 default " << fine_default);
  CHECK(plain >= 0.25);  // the estimates alone rank, coarsely
  CHECK(plain < some);
  CHECK(some <= deep);
  CHECK(deep >= 0.95);
  CHECK(fine_default >= 0.95);
  // Re-ranked distances are exact.
  for (const neighbor& n : idx.search(queries.row(0), k, {.nprobe = 10}))
    CHECK(n.distance == Approx(annulus::testing::exact_distance<TestType>(queries.row_ptr(0), base.row_ptr(n.label), dim))
                            .epsilon(1e-4).margin(1e-4));
  // Batch search answers as single searches.
  const result_matrix batch = idx.search_batch(queries.view(), k, {.nprobe = 10}, 2);
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    const auto one = idx.search(queries.row(i), k, {.nprobe = 10});
    REQUIRE(std::vector<neighbor>(batch[i].begin(), batch[i].end()) == one);
  }
}

// The encoding on its own: a list's fast-scan estimates against the float
// 4-bit ADC distance of each vector's decoded form (centroid + decoded
// residual), computed here from the codebooks (pq.decode) and the centroid,
// not from the encoding's tables. Each estimate is within the quantized
// table's error bound of it, so any two vectors whose ADC distances differ
// by more than twice the bound are ranked as ADC ranks them.
TEMPLATE_TEST_CASE("ivf_pq_fs: fast-scan estimates rank as exact 4-bit ADC", "[ivf][fast_scan]", l2,
                   inner_product, cosine) {
  using M = TestType;
  const std::size_t d = 24, m = 12, nlist = 4, n = 900;  // lists of ~225: several blocks and a partial one
  matrix<float> base = clustered(n, d, 6, 21);
  if constexpr (M::normalizes) store_rows<M>(base.view(), base.view().data());
  const auto queries = clustered(8, d, 6, 22);
  coarse_quantizer<M> coarse;
  kmeans_params kp;
  kp.seed = 3;
  coarse.train(base.view(), nlist, kp);
  auto enc = ivf::fast_scan_encoding<M>(d, m, 10, 5).trained_on(base.view(), coarse, 1);
  const product_quantizer& pq = enc.quantizer();
  const std::vector<std::uint32_t> to = coarse.assign(base.view(), 1);
  const auto batch = enc.encode(base.view(), to, coarse, 1);
  REQUIRE(enc.width() == m / 2);
  REQUIRE(batch.entries.size() == n * m / 2);
  // Row i as slot i: its per-slot data (the l2 term) where the scanner finds it.
  enc.reserve(n);
  std::vector<std::uint8_t> written(enc.width());
  for (std::size_t i = 0; i < n; ++i) enc.write(batch, i, slot_t(i), written.data());

  // Per list: its rows, their codes (unpacked from the entries) packed as fast_scan lays blocks out.
  std::vector<std::vector<std::size_t>> rows(nlist);
  for (std::size_t i = 0; i < n; ++i) rows[to[i]].push_back(i);
  // centroid c of sub-space j, from decoding the all-c code
  std::vector<float> books(16 * d);
  for (std::size_t c = 0; c < 16; ++c) {
    const std::vector<std::uint8_t> code(m, std::uint8_t(c));
    pq.decode(code.data(), books.data() + c * d);
  }
  double checked_pairs = 0;
  for (std::size_t qi = 0; qi < queries.rows(); ++qi) {
    std::vector<float> q(queries.row_ptr(qi), queries.row_ptr(qi) + d);
    if constexpr (M::normalizes) store_rows<M>({q.data(), 1, d, d}, q.data());
    typename coarse_quantizer<M>::probe_scratch sc;
    coarse.probe(q.data(), nlist, sc);
    auto scanner = enc.scanner(q.data(), coarse);
    for (std::size_t r = 0; r < nlist; ++r) {
      const std::uint32_t l = sc.lists[r];
      const std::vector<std::size_t>& in = rows[l];
      if (in.empty()) continue;
      std::vector<std::uint8_t> codes(in.size() * m);
      for (std::size_t i = 0; i < in.size(); ++i)
        for (std::size_t j = 0; j < m; ++j)
          codes[i * m + j] = (batch.entries[in[i] * (m / 2) + j / 2] >> (4 * (j % 2))) & 15;
      const std::vector<std::uint8_t> packed = fast_scan::pack(codes.data(), in.size(), m);
      const std::vector<slot_t> slots(in.begin(), in.end());
      scanner.enter(l, sc.list_keys[r]);
      const float* est = scanner.list(packed.data(), slots.data(), in.size());
      // The float table of the query (under l2 the -2<q_j, C_ji> of the
      // decomposition ||q - c||^2 - 2<q, r^> + ||r^||^2 + 2<c, r^>), and its
      // quantization's error bound; under l2 the float sums of that
      // decomposition err by a few ulps of ||q - c||^2 + ||q|| ||r^||.
      std::vector<float> centroid(d), table(m * 16);
      coarse.centroid(l, centroid.data());
      for (std::size_t j = 0; j < m; ++j)
        for (std::size_t c = 0; c < 16; ++c) {
          double t = 0;
          for (std::size_t x = j * 2; x < j * 2 + 2; ++x) t -= (std::is_same_v<M, l2> ? 2.0 : 1.0) * q[x] * books[c * d + x];
          table[j * 16 + c] = float(t);
        }
      double scale = 1;
      if constexpr (std::is_same_v<M, l2>)
        for (std::size_t x = 0; x < d; ++x) scale += double(q[x]) * q[x] + double(centroid[x]) * centroid[x];
      const double bound = fast_scan::quantize_lut(table.data(), m).error_bound() + 1e-5 * scale;
      std::vector<double> adc(in.size());
      for (std::size_t i = 0; i < in.size(); ++i) {
        std::vector<float> x(d);
        pq.decode(codes.data() + i * m, x.data());
        for (std::size_t j = 0; j < d; ++j) x[j] += centroid[j];
        double dot = 0, l2sq = 0;
        for (std::size_t j = 0; j < d; ++j) {
          dot += double(q[j]) * x[j];
          l2sq += (double(q[j]) - x[j]) * (double(q[j]) - x[j]);
        }
        adc[i] = std::is_same_v<M, l2> ? l2sq : std::is_same_v<M, inner_product> ? -dot : 1.0 - dot;
        INFO("query " << qi << ", list " << l << ", entry " << i << " of " << in.size());
        REQUIRE(std::abs(double(est[i]) - adc[i]) <= bound);
      }
      for (std::size_t a = 0; a < in.size(); ++a)
        for (std::size_t b = 0; b < in.size(); ++b)
          if (adc[a] + 2 * bound < adc[b]) {
            REQUIRE(est[a] < est[b]);
            ++checked_pairs;
          }
    }
  }
  CHECK(checked_pairs > 1000);  // the bound is tight enough to order most pairs
}

TEST_CASE("ivf_pq_fs: removals and one-at-a-time adds keep every code in its block", "[ivf][fast_scan]") {
  // Lists of ~70 (three blocks); removing every third vector moves entries
  // from each list's last block into the holes; adding them back one at a
  // time grows lists across block and arena boundaries. A vector's
  // estimate depends only on its code, its list and the query: any nibble
  // moved wrongly changes one.
  const auto base = clustered(600, dim, 8, 31);
  const auto queries = clustered(3, dim, 8, 32);
  auto idx = ivf_pq_fs_index<l2>::build(base.view(), {.nlist = 8, .m = 16, .pq_iterations = 8});
  std::vector<std::map<label_t, float>> before;
  for (std::size_t i = 0; i < queries.rows(); ++i) before.push_back(all_estimates(idx, queries.row(i)));
  REQUIRE(before[0].size() == 600);
  for (label_t l = 0; l < 600; l += 3) idx.remove(l);
  REQUIRE(idx.size() == 400);
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    const auto now = all_estimates(idx, queries.row(i));
    REQUIRE(now.size() == 400);
    for (const auto& [label, dist] : now) {
      REQUIRE(label % 3 != 0);
      REQUIRE(dist == before[i].at(label));
    }
  }
  for (label_t l = 597; l < 600; l -= 3) idx.add(base.row(l), l);  // backwards, one at a time
  REQUIRE(idx.size() == 600);
  for (std::size_t i = 0; i < queries.rows(); ++i) CHECK(all_estimates(idx, queries.row(i)) == before[i]);
  // Every vector is found as itself (exact after re-ranking).
  for (label_t l = 0; l < 600; l += 7) {
    const auto hit = idx.search(base.row(l), 1, {.nprobe = 8});
    REQUIRE(hit.size() == 1);
    CHECK(hit[0].distance == Approx(0).margin(1e-3));
    CHECK(idx.get(l) == std::vector<float>(base.row_ptr(l), base.row_ptr(l) + dim));
  }
}

TEST_CASE("ivf_pq_fs: removed labels are never returned, filters hold, slots are reused", "[ivf][fast_scan]") {
  const auto base = clustered(3000, dim, 12, 7);
  const auto queries = clustered(50, dim, 12, 8);
  auto idx = ivf_pq_fs_index<cosine>::build(base.view(), {.nlist = 32, .m = dim, .pq_iterations = 8});
  for (label_t l = 0; l < base.rows(); l += 2) idx.remove(l);
  CHECK(idx.size() == 1500);
  CHECK_FALSE(idx.contains(0));
  CHECK(idx.contains(1));
  const auto odd = [](label_t l) { return l % 2 == 1; };
  for (std::size_t i = 0; i < queries.rows(); ++i)
    for (const neighbor& n : idx.search(queries.row(i), k, {.nprobe = 32})) REQUIRE(odd(n.label));
  CHECK(filtered_recall(idx, base, queries, {.nprobe = 32}, odd, k) >= 0.95);
  CHECK_THROWS_MATCHES(idx.remove(0), invalid_argument, message_has("label 0 is not in the index"));

  const auto third = [](label_t l) { return l % 6 == 1; };
  for (std::size_t i = 0; i < queries.rows(); ++i)
    for (const neighbor& n : idx.search(queries.row(i), k, {.nprobe = 32}, third)) REQUIRE(third(n.label));
  CHECK(filtered_recall(idx, base, queries, {.nprobe = 32}, third, k) >= 0.95);

  const std::size_t before = idx.memory().vectors;
  matrix<float> evens(1500, dim);
  std::vector<label_t> labels(1500);
  for (std::size_t i = 0; i < 1500; ++i) {
    std::copy_n(base.row_ptr(2 * i), dim, evens.row_ptr(i));
    labels[i] = 2 * i;
  }
  idx.add(evens.view(), labels);
  CHECK(idx.memory().vectors == before);
  std::size_t stored = 0;
  for (std::size_t l = 0; l < idx.nlist(); ++l) stored += idx.list_size(l);
  CHECK(stored == 3000);
  CHECK(filtered_recall(idx, base, queries, {.nprobe = 32}, everything, k) >= 0.95);
}

TEST_CASE("ivf_pq_fs: update moves the vector; get returns the kept vector", "[ivf][fast_scan]") {
  const auto base = clustered(2000, dim, 10, 15);
  auto idx = ivf_pq_fs_index<l2>::build(base.view(), {.nlist = 16, .pq_iterations = 8});
  idx.update(3, base.row(1999));
  CHECK(idx.size() == 2000);
  CHECK(idx.get(3) == idx.get(1999));
  const auto hits = idx.search(base.row(1999), 2, {.nprobe = 1});
  REQUIRE(hits.size() == 2);
  CHECK(hits[0].label == 3);
  CHECK(hits[1].label == 1999);
  CHECK(hits[1].distance == Approx(0).margin(1e-4));
  const std::vector<float> old = idx.get(3);
  std::vector<float> bad(base.row_ptr(0), base.row_ptr(0) + dim);
  bad[5] = std::nanf("");
  CHECK_THROWS_AS(idx.update(3, bad), invalid_argument);
  CHECK_THROWS_MATCHES(idx.update(4000, base.row(0)), invalid_argument, message_has("update: label 4000"));
  CHECK(idx.get(3) == old);
}

TEMPLATE_TEST_CASE("ivf_pq_fs: a saved index loads and views with the same answers", "[ivf][fast_scan]", l2,
                   inner_product, cosine) {
  const auto base = clustered(1500, dim, 10, 41);
  const auto queries = clustered(20, dim, 10, 42);
  auto idx = ivf_pq_fs_index<TestType>::build(base.view(), {.nlist = 16, .pq_iterations = 8});
  for (label_t l = 0; l < 1500; l += 5) idx.remove(l);  // partial blocks, moved entries
  std::stringstream file;
  idx.save(file);
  const std::string bytes = file.str();
  std::istringstream in(bytes);
  auto loaded = ivf_pq_fs_index<TestType>::load(in);
  CHECK(loaded.size() == idx.size());
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    REQUIRE(loaded.search(queries.row(i), k, {.nprobe = 4}) == idx.search(queries.row(i), k, {.nprobe = 4}));
    REQUIRE(loaded.search(queries.row(i), k, {.nprobe = 16, .refine_factor = 0}) ==
            idx.search(queries.row(i), k, {.nprobe = 16, .refine_factor = 0}));
  }
  // Still mutable after load, and a saved-again copy is the same bytes.
  std::stringstream again;
  loaded.save(again);
  CHECK(again.str() == bytes);
  loaded.add(base.row(0), 0);
  if constexpr (!TestType::normalizes)  // cosine keeps unit vectors
    CHECK(loaded.get(0) == std::vector<float>(base.row_ptr(0), base.row_ptr(0) + dim));
  CHECK(loaded.search(base.row(0), 1, {.nprobe = 16}, [](label_t l) { return l == 0; })[0].label == 0);
  // A view reads codes and vectors in place: the same answers, no changes.
  const annulus::testing::temp_dir dir;
  idx.save(dir / "fs.ann");
  const auto view = ivf_pq_fs_index<TestType>::view(dir / "fs.ann");
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    REQUIRE(view.search(queries.row(i), k, {.nprobe = 4}) == idx.search(queries.row(i), k, {.nprobe = 4}));
    REQUIRE(view.search(queries.row(i), k, {.nprobe = 16, .refine_factor = 0}) ==
            idx.search(queries.row(i), k, {.nprobe = 16, .refine_factor = 0}));
  }
  CHECK(view.get(1) == idx.get(1));
  auto mutable_view = ivf_pq_fs_index<TestType>::view(dir / "fs.ann");
  CHECK_THROWS_AS(mutable_view.remove(1), read_only_error);
  CHECK_THROWS_AS(mutable_view.add(base.row(0), 0), read_only_error);
  // An ivf_pq file is another kind.
  const auto pq = ivf_pq_index<TestType>::build(base.view(), {.nlist = 4, .m = 8, .nbits = 4, .keep_vectors = true});
  std::stringstream pq_file;
  pq.save(pq_file);
  CHECK_THROWS_AS(ivf_pq_fs_index<TestType>::load(pq_file), format_error);
}

TEST_CASE("ivf_pq_fs: bad parameters and untrained use are clear errors", "[ivf][fast_scan]") {
  const auto data = clustered(300, 16, 4, 9);
  CHECK_THROWS_MATCHES(ivf_pq_fs_index<l2>::build(data.view(), {.nlist = 4, .m = 5}), invalid_argument,
                       message_has("must divide the dimension 16"));
  CHECK_THROWS_MATCHES(ivf_pq_fs_index<l2>::build(data.view(), {.nlist = 301}), invalid_argument,
                       message_has("300 training vectors for nlist = 301"));
  ivf_pq_fs_index<l2> few(16, {.nlist = 2});
  CHECK_THROWS_MATCHES(few.train(data.view().rows_slice(0, 10)), invalid_argument,
                       message_has("ivf_pq_fs_index::train: 10 training vectors for the 16 PQ centroids"));
  CHECK_FALSE(few.trained());
  CHECK_THROWS_MATCHES(few.search(data.row(0), 1), invalid_argument, message_has("not trained"));
  CHECK_THROWS_MATCHES(few.add(data.view()), invalid_argument, message_has("not trained"));
  few.train(data.view());
  few.add(data.view());
  CHECK_THROWS_MATCHES(few.search(data.row(0), 3, {.nprobe = 0}), invalid_argument, message_has("nprobe"));
  CHECK_THROWS_MATCHES(few.train(data.view()), invalid_argument, message_has("holds (or held) vectors"));
  matrix<float> wrong(1, 15);
  CHECK_THROWS_AS(few.add(wrong.view()), dimension_mismatch);
  CHECK(few.size() == 300);
  CHECK(ivf_pq_fs_index<l2>(16).quantizer().m() == 8);
  CHECK(default_fast_scan_m(128) == 64);
  CHECK(default_fast_scan_m(7) == 7);
}
