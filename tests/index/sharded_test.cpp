// sharded_index (index/sharded.hpp): results against one index over all the
// data (exact: equal, labels, distances and tie order; approximate: recall
// at least one index's with the same parameters), routing of labels to
// shards, and the directory of shard files and manifest. The calls every
// index has run in sharded_interface_test.cpp.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdio>
#include <string>
#include <filesystem>
#include <vector>

#include "annulus/index/flat.hpp"
#include "annulus/index/hnsw.hpp"
#include "annulus/index/ivf_flat.hpp"
#include "annulus/index/kd_tree.hpp"
#include "annulus/index/sharded.hpp"
#include "support/alloc_failure.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"
#include "support/temp_dir.hpp"

using namespace annulus;
using annulus::testing::message_has;

namespace Catch {
template <>
struct StringMaker<neighbor> {
  static std::string convert(const neighbor& n) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "{%llu, %.9g}", static_cast<unsigned long long>(n.label), double(n.distance));
    return buf;
  }
};
}  // namespace Catch

namespace {

constexpr std::size_t dim = 16;
constexpr std::size_t k = 10;

// Keeps a third of the labels.
struct every_third {
  bool operator()(label_t l) const { return l % 3 == 0; }
};

template <class Single, class Sharded>
void require_equal_answers(const Single& one, const Sharded& shards, const matrix<float>& queries,
                           const typename Single::search_params& params = {}) {
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    INFO("query " << i);
    REQUIRE(shards.search(queries.row(i), k, params) == one.search(queries.row(i), k, params));
    REQUIRE(shards.search(queries.row(i), k, params, every_third{}) ==
            one.search(queries.row(i), k, params, every_third{}));
    const float radius = one.search(queries.row(i), 25, params).back().distance;
    REQUIRE(shards.range_search(queries.row(i), radius, params) == one.range_search(queries.row(i), radius, params));
  }
  const result_matrix a = one.search_batch(queries.view(), k, params, 2);
  const result_matrix b = shards.search_batch(queries.view(), k, params, 2);
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    INFO("batch query " << i);
    REQUIRE(std::vector<neighbor>(b[i].begin(), b[i].end()) == std::vector<neighbor>(a[i].begin(), a[i].end()));
  }
}

// Data with duplicates (ties) and labels that are not row numbers.
matrix<float> tied_data() { return annulus::testing::with_duplicates(annulus::testing::clustered(1200, dim, 8, 41), 0.02); }
std::vector<label_t> spread_labels(std::size_t n) {
  std::vector<label_t> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = 1'000'003 * (n - i) + 17;  // descending: tie order is not add order
  return out;
}

template <class Index>
double recall_of(const Index& idx, const matrix<float>& base, const matrix<float>& queries,
                 const typename Index::search_params& params) {
  using M = typename Index::metric_type;
  double r = 0;
  for (std::size_t i = 0; i < queries.rows(); ++i)
    r += annulus::testing::overlap(annulus::testing::brute_force<M>(base.view(), queries.row_ptr(i), k),
                                   idx.search(queries.row(i), k, params));
  return r / double(queries.rows());
}

}  // namespace

TEMPLATE_TEST_CASE("sharded_index over an exact index answers as one index over all the data", "[sharded]",
                   flat_index<l2>, flat_index<inner_product>, flat_index<cosine>, kd_tree_index<l2>) {
  using M = typename TestType::metric_type;
  const matrix<float> base = tied_data();
  const matrix<float> queries = annulus::testing::clustered(40, dim, 8, 42);
  const std::vector<label_t> labels = spread_labels(base.rows());
  const TestType one = TestType::build_with_labels(base.view(), labels);
  for (const shard_partition partition : {shard_partition::round_robin, shard_partition::label_hash})
    for (const std::size_t shards : {1u, 2u, 5u}) {
      INFO(shards << " shards, partition " << int(partition));
      const auto idx = sharded_index<TestType>::build_with_labels(base.view(), labels,
                                                                  {.shards = shards, .partition = partition});
      REQUIRE(idx.size() == base.rows());
      REQUIRE(idx.shard_count() == shards);
      require_equal_answers(one, idx, queries);
      auto parallel = sharded_index<TestType>::build_with_labels(base.view(), labels,
                                                                 {.shards = shards, .partition = partition});
      parallel.set_search_threads(2);
      require_equal_answers(one, parallel, queries);
      (void)sizeof(M);
    }
}

// A graph: each shard's beam of ef covers a smaller graph, so recall rises
// (strictly at least). IVF: each shard probes nprobe of its own nlist cells,
// the same share of its data as one index probes of all, so recall stays
// about the same (measured 0.976-0.980 here): within 0.01.
TEMPLATE_TEST_CASE("sharded_index over an approximate index: recall at least one index's with the same parameters",
                   "[sharded]", hnsw_index<l2>, hnsw_index<inner_product>, ivf_flat_index<l2>) {
  const matrix<float> base = annulus::testing::clustered(6000, 24, 16, 43);
  const matrix<float> queries = annulus::testing::clustered(200, 24, 16, 44);
  typename TestType::build_params bp{};
  typename TestType::search_params sp{};
  if constexpr (requires { bp.ef_construction; }) {
    bp = {.m = 8, .ef_construction = 40, .seed = 5};
    sp = {.ef = 12};  // a narrow beam, so the single index misses some
  } else {
    bp = {.nlist = 32};
    sp = {.nprobe = 2};
  }
  const TestType one = TestType::build(base.view(), bp);
  const double single = recall_of(one, base, queries, sp);
  INFO("one index: recall " << single);
  CHECK(single < 0.99);  // else the comparison shows nothing
  for (const std::size_t shards : {2u, 4u}) {
    const auto idx = sharded_index<TestType>::build(base.view(), {.shards = shards, .shard = bp});
    const double sharded = recall_of(idx, base, queries, sp);
    INFO(shards << " shards: recall " << sharded);
    if constexpr (requires { bp.ef_construction; })
      CHECK(sharded >= single);
    else
      CHECK(sharded >= single - 0.01);
  }
}

TEST_CASE("sharded_index routes labels to their shards", "[sharded]") {
  const matrix<float> base = annulus::testing::clustered(1000, dim, 8, 45);
  const matrix<float> more = annulus::testing::clustered(100, dim, 8, 46);
  using index = sharded_index<flat_index<l2>>;

  SECTION("round robin: sizes differ by at most one, default labels continue after the build") {
    index idx = index::build(base.view(), {.shards = 3});
    for (std::size_t s = 0; s < 3; ++s) CHECK(idx.shard(s).size() == (s == 0 ? 334u : 333u));
    CHECK(idx.shard(1).contains(1));
    CHECK(idx.shard(2).contains(998));
    idx.add(more.view());
    CHECK(idx.size() == 1100);
    CHECK(idx.contains(1099));
    CHECK(idx.shard(1099 % 3).contains(1099));  // the round continues over adds
    CHECK_THROWS_MATCHES(idx.shard(3), invalid_argument, message_has("shard 3 does not exist; the index has 3 shards"));
  }
  SECTION("label hash: each label in the shard its hash names") {
    index idx = index::build_with_labels(base.view(), spread_labels(base.rows()),
                                         {.shards = 4, .partition = shard_partition::label_hash});
    const std::vector<label_t> more_labels = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    idx.add(more.view().rows_slice(0, 10), more_labels);
    for (const label_t l : idx.labels()) REQUIRE(idx.shard(label_hash_shard(l, 4)).contains(l));
    idx.remove(7);
    CHECK_FALSE(idx.contains(7));
    CHECK(idx.size() == 1009);
    idx.update(8, more.row(50));
    CHECK(idx.get(8) == std::vector<float>(more.row(50).begin(), more.row(50).end()));
    CHECK(idx.search(more.row(50), 1)[0].label == 8);
  }
  SECTION("a label anywhere in the index is refused, and nothing changes") {
    index idx = index::build(base.view(), {.shards = 3});
    const std::vector<label_t> clash = {5000, 5001, 2};  // 2 lives in shard 2
    CHECK_THROWS_MATCHES(idx.add(more.view().rows_slice(0, 3), clash), invalid_argument,
                         message_has("label 2 is already in the index"));
    CHECK(idx.size() == 1000);
    CHECK_FALSE(idx.contains(5000));
    const std::vector<label_t> twice = {6000, 6001, 6000};  // would reach two shards
    CHECK_THROWS_MATCHES(idx.add(more.view().rows_slice(0, 3), twice), invalid_argument,
                         message_has("label 6000 appears twice"));
    CHECK_THROWS_MATCHES(idx.remove(424242), invalid_argument, message_has("label 424242 is not in the index"));
    CHECK_THROWS_MATCHES(idx.get(424242), invalid_argument, message_has("sharded_index::get: label 424242"));
  }
  SECTION("bad shard counts and builds that leave a shard empty are refused") {
    CHECK_THROWS_MATCHES(index::build(base.view(), {.shards = 0}), invalid_argument,
                         message_has("shards must be in 1..1024, got 0"));
    CHECK_THROWS_MATCHES(index::build(base.view(), {.shards = 5000}), invalid_argument,
                         message_has("got 5000"));
    CHECK_THROWS_MATCHES(index::build(base.view().rows_slice(0, 3), {.shards = 4}), invalid_argument,
                         message_has("shard 3 of 4 would hold no vectors (3 rows)"));
    const std::vector<label_t> repeated(base.rows(), 9);
    CHECK_THROWS_MATCHES(index::build_with_labels(base.view(), repeated, {.shards = 2}), invalid_argument,
                         message_has("label 9 appears twice"));
    CHECK_THROWS_MATCHES(index::build_with_labels(base.view(), std::vector<label_t>(3), {.shards = 2}),
                         invalid_argument, message_has("3 labels for 1000 rows"));
  }
}

TEST_CASE("sharded_index saves to a directory of shard files and a manifest", "[sharded][persist]") {
  const matrix<float> base = annulus::testing::clustered(2000, dim, 8, 47);
  const matrix<float> queries = annulus::testing::clustered(30, dim, 8, 48);
  using index = sharded_index<hnsw_index<l2>>;
  annulus::testing::temp_dir tmp("annulus_sharded");
  index idx = index::build_with_labels(base.view(), spread_labels(base.rows()),
                                       {.shards = 3, .partition = shard_partition::label_hash, .shard = {.m = 8}});
  idx.remove(spread_labels(base.rows())[5]);
  idx.set_k_policy(k_policy::at_most);
  const auto dir = tmp.path / "index";
  idx.save(dir);
  CHECK(std::filesystem::exists(dir / "manifest.annulus"));
  CHECK(std::filesystem::exists(dir / "shard-00002.annulus"));

  auto same = [&](const index& other) {
    REQUIRE(other.size() == idx.size());
    REQUIRE(other.shard_count() == 3);
    REQUIRE(other.partition() == shard_partition::label_hash);
    REQUIRE(other.get_k_policy() == k_policy::at_most);
    for (std::size_t i = 0; i < queries.rows(); ++i)
      REQUIRE(other.search(queries.row(i), k, {.ef = 32}) == idx.search(queries.row(i), k, {.ef = 32}));
  };
  SECTION("load and view answer as the saved index") {
    index loaded = index::load(dir);
    same(loaded);
    loaded.add(queries.row(0), 7);  // loaded: mutable, routed by the saved partition
    CHECK(loaded.shard(label_hash_shard(7, 3)).contains(7));
    const index viewed = index::view(dir);
    same(viewed);
    CHECK(viewed.read_only());
    viewed.verify();
    index v2 = index::view(dir);
    CHECK_THROWS_AS(v2.add(queries.row(0), 7), read_only_error);
  }
  SECTION("a missing or foreign shard file is named") {
    annulus::testing::temp_dir other_tmp("annulus_sharded_other");
    const auto other = other_tmp.path / "index";
    index::build(base.view(), {.shards = 3, .shard = {.m = 8}}).save(other);
    std::filesystem::copy_file(other / "shard-00001.annulus", dir / "shard-00001.annulus",
                               std::filesystem::copy_options::overwrite_existing);
    CHECK_THROWS_MATCHES(index::load(dir), format_error,
                         message_has("shard-00001.annulus is not the shard file saved with this manifest"));
    std::filesystem::remove(dir / "shard-00001.annulus");
    CHECK_THROWS_MATCHES(index::load(dir), io_error, message_has("shard-00001.annulus"));
  }
  SECTION("a manifest of another metric or kind is refused") {
    CHECK_THROWS_AS(sharded_index<hnsw_index<cosine>>::load(dir), format_error);
    CHECK_THROWS_AS(sharded_index<flat_index<l2>>::load(dir), format_error);
    flat_index<l2>::build(base.view()).save(dir / "manifest.annulus");
    CHECK_THROWS_MATCHES(index::load(dir), format_error, message_has("flat"));
  }
}

// An add reaching several shards is undone shard by shard when a later
// shard runs out of memory. The undo removes, which may itself allocate: the
// promise holds for a failure that passes (here: the n-th allocation fails,
// the ones after it succeed), not for memory that stays exhausted.
TEST_CASE("sharded_index: an add that fails in a later shard leaves the index as it was", "[sharded][oom]") {
  using index = sharded_index<hnsw_index<l2>>;
  const matrix<float> base = annulus::testing::clustered(600, dim, 8, 49);
  const matrix<float> more = annulus::testing::clustered(30, dim, 8, 50);
  const matrix<float> queries = annulus::testing::clustered(10, dim, 8, 51);
  index idx = index::build(base.view(), {.shards = 3, .shard = {.m = 8, .seed = 2}}, 1);
  auto answers = [&] {
    std::vector<std::vector<neighbor>> out;
    for (std::size_t i = 0; i < queries.rows(); ++i) out.push_back(idx.search(queries.row(i), k, {.ef = 600}));
    return out;
  };
  const auto before = answers();
  std::size_t failures = 0;
  for (std::size_t n = 0;; ++n) {
    bool threw = false, hit = false;
    {
      annulus::testing::fail_allocation_at fail(n, false);
      try {
        idx.add(more.view(), {}, 1);
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      hit = fail.failed();
    }
    if (!threw) {
      REQUIRE(idx.size() == 630);
      if (!hit) break;
      for (std::size_t l = 600; l < 630; ++l) idx.remove(l);  // a fallback absorbed it: take the rows out again
      REQUIRE(idx.size() == 600);
      continue;
    }
    ++failures;
    INFO("allocation " << n << " failed");
    REQUIRE(idx.size() == 600);
    for (std::size_t l = 600; l < 630; ++l) REQUIRE_FALSE(idx.contains(l));
    REQUIRE(answers() == before);
  }
  CHECK(failures > 20);  // the add allocates in every shard: failures reached the later ones
}
