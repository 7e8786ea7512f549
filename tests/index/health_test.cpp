// health() (index/base.hpp, index/health.hpp): the common fields for every
// index; hnsw's reachability, degrees and tombstones checked against a walk
// over the public neighbors() calls; IVF's list balance against list_size()
// and its drift since training on data from another distribution; the
// drift surviving save/load, and a file from before it loading with the
// training statistics unknown; sharded and mips forwarding their inner
// indexes' readings.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <deque>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "annulus/index/flat.hpp"
#include "annulus/index/hnsw.hpp"
#include "annulus/index/ivf_flat.hpp"
#include "annulus/index/ivf_pq.hpp"
#include "annulus/index/kd_tree.hpp"
#include "annulus/index/lsh.hpp"
#include "annulus/index/mips.hpp"
#include "annulus/index/rp_forest.hpp"
#include "annulus/index/sharded.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"

using namespace annulus;
using annulus::testing::clustered;
using annulus::testing::message_has;

namespace {

// The live labels reached from `from` over layer-0 links (neighbors(), which
// names removed nodes too; they route, so the walk goes through them, but
// neighbors() of a removed label cannot be asked: none are removed where
// this runs).
template <class M>
std::set<label_t> reached_from(const hnsw_index<M>& idx, label_t from) {
  std::set<label_t> seen{from};
  std::deque<label_t> queue{from};
  while (!queue.empty()) {
    const label_t l = queue.front();
    queue.pop_front();
    for (const label_t n : idx.neighbors(l, 0))
      if (seen.insert(n).second) queue.push_back(n);
  }
  return seen;
}

// The entry point of a graph built on one thread (rows linked in label
// order): the first node to reach the top layer, that is the smallest label there.
template <class M>
label_t entry_of(const hnsw_index<M>& idx, std::size_t top) {
  std::vector<label_t> at_top;
  for (const label_t l : idx.labels())
    if (idx.level(l) == top) at_top.push_back(l);
  REQUIRE_FALSE(at_top.empty());
  return *std::min_element(at_top.begin(), at_top.end());
}

}  // namespace

TEST_CASE("health: a fresh hnsw build is healthy, its figures agree with the graph", "[health][hnsw]") {
  const auto base = clustered(4000, 32, 20, 1);
  const auto idx = hnsw_index<l2>::build(base.view(), {.m = 16, .ef_construction = 200}, 1);
  const health_report h = idx.health();
  INFO(h);
  CHECK(h.index == "hnsw_index");
  CHECK(h.live == 4000);
  CHECK(h.removed_unreclaimed == 0);
  CHECK(h.memory_held == idx.memory_bytes());
  // A build reserves exactly its rows: the estimate is what it holds, within rounding of the upper links.
  CHECK(double(h.memory_needed) == Approx(double(h.memory_held)).epsilon(0.05));
  CHECK(h.figure("unreachable") == 0);
  CHECK(h.figure("unreachable_live") == 0);
  CHECK(h.figure("tombstones") == 0);
  CHECK(h.figure("tombstone_link_share") == 0);

  // Degrees against the public lists.
  std::vector<std::size_t> degrees;
  std::size_t top = 0;
  for (const label_t l : idx.labels()) {
    degrees.push_back(idx.neighbors(l, 0).size());
    top = std::max(top, idx.level(l));
  }
  std::sort(degrees.begin(), degrees.end());
  double sum = 0;
  for (const std::size_t d : degrees) sum += double(d);
  CHECK(h.figure("degree_min") == double(degrees.front()));
  CHECK(h.figure("degree_max") == double(degrees.back()));
  CHECK(h.figure("degree_max") <= 32);
  CHECK(h.figure("degree_mean") == Approx(sum / double(degrees.size())));
  CHECK(h.figure("degree_median") == 0.5 * double(degrees[1999] + degrees[2000]));
  CHECK(h.figure("entry_level") == double(top));
  // Every live node is reached from the entry point: the walk agrees.
  CHECK(reached_from(idx, entry_of(idx, top)).size() == 4000);
  CHECK(h.verdict == "healthy");

  // The printed report: a line a figure, the verdict last; figure() refuses unknown names.
  const std::string s = h.summary();
  CHECK_THAT(s, Catch::StartsWith("health: hnsw_index\n"));
  CHECK_THAT(s, Catch::EndsWith("  verdict: healthy\n"));
  CHECK_THAT(s, Catch::Contains("unreachable_live: 0 "));
  std::ostringstream os;
  os << h;
  CHECK(os.str() == s);
  CHECK_THROWS_MATCHES(h.figure("recall"), invalid_argument, message_has("no figure 'recall'"));
  CHECK(h.has_figure("degree_mean"));
  CHECK_FALSE(h.has_figure("recall"));
}

TEST_CASE("health: hnsw after removing 30% shows the tombstones, on routes too, until adds reuse them",
          "[health][hnsw]") {
  const std::size_t n = 5000;
  const auto base = clustered(n, 32, 20, 3);
  auto idx = hnsw_index<l2>::build(base.view(), {.m = 12, .ef_construction = 100}, 1);
  // The links of live nodes, as neighbors() names them, before and after: a
  // removal changes no list, so the share of links naming a removed node is
  // known from the labels alone.
  const double unreachable_before = idx.health().figure("unreachable");  // a few, or none
  CHECK(unreachable_before <= 0.001 * n);
  const auto removed = [](label_t l) { return l % 10 < 3; };
  std::size_t links = 0, to_removed = 0;
  for (label_t l = 0; l < n; ++l)
    for (const label_t t : idx.neighbors(l, 0)) {
      ++links;
      to_removed += removed(t);
    }
  std::size_t removed_count = 0;
  for (label_t l = 0; l < n; ++l)
    if (removed(l)) {
      idx.remove(l);
      ++removed_count;
    }
  REQUIRE(removed_count == 1500);
  const health_report h = idx.health();
  INFO(h);
  CHECK(h.live == 3500);
  CHECK(h.removed_unreclaimed == 1500);
  CHECK(h.figure("tombstones") == 1500);
  // Every node's links (the removed nodes' too, which still route) are counted.
  CHECK(h.figure("tombstone_link_share") == Approx(double(to_removed) / double(links)));
  CHECK(h.figure("tombstone_link_share") > 0.2);
  CHECK(h.figure("unreachable") == unreachable_before);  // tombstones route: removal cuts no path
  CHECK_THAT(h.verdict, Catch::StartsWith("30.0% of stored vectors are removed but still held: rebuild"));

  // Adds reuse the removed slots: the tombstones are gone.
  const auto more = clustered(1500, 32, 20, 4);
  std::vector<label_t> labels(1500);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = 100'000 + i;
  idx.add(more.view(), labels, 1);
  const health_report after = idx.health();
  INFO(after);
  CHECK(after.live == 5000);
  CHECK(after.removed_unreclaimed == 0);
  CHECK(after.figure("tombstone_link_share") == 0);
  // Reused slots are relinked, and a few nodes lose their last way in (the
  // repair keeps lists short): the walk over neighbors() from the entry point
  // (one of the top-layer nodes, whichever reached it first) agrees, and it
  // stays below the finding's limit.
  const auto top = std::size_t(after.figure("entry_level"));
  std::set<double> possible;
  for (const label_t l : idx.labels())
    if (idx.level(l) == top) possible.insert(double(5000 - reached_from(idx, l).size()));
  CHECK(possible.count(after.figure("unreachable_live")) == 1);
  CHECK(after.figure("unreachable_live_share") < health_limits::unreachable_share);
  CHECK(after.verdict == "healthy");
}

TEST_CASE("health: an hnsw graph too sparse to stay connected is found out", "[health][hnsw]") {
  // m = 2 and a beam of 2: at most four layer-0 links a node, chosen from
  // almost no candidates; layer 0 falls apart into pieces.
  const auto base = clustered(3000, 16, 8, 5);
  const auto idx = hnsw_index<l2>::build(base.view(), {.m = 2, .ef_construction = 2}, 1);
  const health_report h = idx.health();
  INFO(h);
  const auto top = std::size_t(h.figure("entry_level"));
  const std::size_t reached = reached_from(idx, entry_of(idx, top)).size();
  CHECK(h.figure("unreachable_live") == double(3000 - reached));
  CHECK(h.figure("unreachable") == double(3000 - reached));
  CHECK(h.figure("unreachable_live_share") == Approx(double(3000 - reached) / 3000));
  CHECK(h.figure("unreachable_live_share") > health_limits::unreachable_share);
  CHECK(h.figure("degree_max") <= 4);
  CHECK_THAT(h.verdict, Catch::Contains("of live nodes (" + std::to_string(3000 - reached) +
                                        ") unreachable from the entry point: compact() (relinks them) or rebuild"));
}

TEST_CASE("health: a fresh IVF build is healthy; its balance is the list sizes'", "[health][ivf]") {
  const auto base = clustered(12000, 16, 8, 11);
  const auto idx = ivf_flat_index<l2>::build(base.view(), {.nlist = 32}, 1);
  const health_report h = idx.health();
  INFO(h);
  double sum = 0, squares = 0, largest = 0;
  for (std::size_t l = 0; l < 32; ++l) {
    const double s = double(idx.list_size(l));
    sum += s;
    squares += s * s;
    largest = std::max(largest, s);
  }
  CHECK(h.live == 12000);
  CHECK(h.figure("lists") == 32);
  CHECK(h.figure("largest_list") == largest);
  CHECK(h.figure("mean_list") == Approx(12000.0 / 32));
  CHECK(h.figure("scan_cost_ratio") == Approx(32 * squares / (sum * sum)));
  CHECK(h.figure("scan_cost_ratio") < health_limits::scan_cost);
  CHECK(h.figure("added_since_training") == 12000);
  // The build's adds are the training distribution (the sample is 8192 of its rows).
  CHECK(h.figure("error_ratio") == Approx(1.0).epsilon(0.1));
  CHECK(h.figure("crowding_ratio") == Approx(1.0).epsilon(0.15));
  CHECK(h.figure("largest_lists") == 3);  // max(1, 32 / 10)
  CHECK(h.figure("largest_lists_train_share") > 3.0 / 32);  // the largest lists hold more than their share
  CHECK_FALSE(h.has_figure("pq_error_ratio"));
  CHECK(h.verdict == "healthy");

  // Untrained: said so, nothing else.
  const ivf_flat_index<l2> empty(16, {.nlist = 8});
  const health_report u = empty.health();
  CHECK(u.live == 0);
  CHECK(u.verdict == "not trained: train(sample) or build(data)");
}

TEST_CASE("health: ivf_pq fed another distribution after training says to retrain", "[health][ivf]") {
  const auto base = clustered(20000, 16, 8, 1);
  auto idx = ivf_pq_index<l2>::build(base.view(), {.nlist = 32, .m = 8}, 1);
  const health_report before = idx.health();
  INFO(before);
  CHECK(before.verdict == "healthy");
  CHECK(before.figure("error_ratio") == Approx(1.0).epsilon(0.1));
  CHECK(before.figure("pq_error_ratio") < health_limits::error_ratio);
  CHECK(before.figure("pq_error_train") > 0);

  // Another mixture: two clusters elsewhere, piling into the lists nearest them.
  const auto shifted = gaussian_mixture(16, {.clusters = 2, .norm_ratio = 16, .seed = 99}).sample(20000, 1);
  idx.add(shifted.view(), {}, 1);
  const health_report after = idx.health();
  INFO(after);
  CHECK(after.figure("added_since_training") == 40000);
  CHECK(after.figure("error_train") == before.figure("error_train"));
  CHECK(after.figure("error_ratio") > health_limits::error_ratio);
  CHECK(after.figure("pq_error_ratio") > health_limits::error_ratio);
  CHECK(after.figure("scan_cost_ratio") > 1.3 * before.figure("scan_cost_ratio"));
  CHECK(after.figure("scan_cost_ratio") > health_limits::scan_cost);
  CHECK(after.figure("scan_cost_ratio_train") == before.figure("scan_cost_ratio_train"));
  CHECK_THAT(after.verdict, Catch::StartsWith("lists unbalanced: scan cost"));
  CHECK_THAT(after.verdict, Catch::Contains("adds since training quantise"));
  CHECK_THAT(after.verdict, Catch::EndsWith("(pq_error): retrain (rebuild)"));

  // The drift survives save and load; a further add keeps counting.
  std::stringstream file;
  idx.save(file);
  auto loaded = ivf_pq_index<l2>::load(file);
  const health_report again = loaded.health();
  for (const char* name : {"error_train", "error_added", "pq_error_train", "pq_error_added", "added_since_training",
                           "largest_lists_added_share", "scan_cost_ratio_train"})
    CHECK(again.figure(name) == after.figure(name));
  CHECK(again.verdict == after.verdict);
  loaded.add(base.view().rows_slice(0, 100), std::vector<label_t>(), 1);
  CHECK(loaded.health().figure("added_since_training") == 40100);
}

TEST_CASE("health: an IVF file from before health() loads with its training statistics unknown",
          "[health][ivf][compat]") {
  const auto dir = std::filesystem::path(ANNULUS_FIXTURE_DIR) / "format-v1";
  auto idx = ivf_pq_index<l2>::load(dir / "ivf_pq-l2.annulus");
  const health_report h = idx.health();
  INFO(h);
  CHECK(std::isnan(h.figure("error_train")));
  CHECK(std::isnan(h.figure("pq_error_train")));
  CHECK(std::isnan(h.figure("crowding_ratio")));
  CHECK(h.figure("added_since_training") == 0);
  CHECK(h.figure("scan_cost_ratio") >= 1);
  CHECK_THAT(h.summary(), Catch::Contains("error_train: unknown"));
  // Counting starts at the load; the training side stays unknown, so no drift finding.
  const auto rows = clustered(200, idx.dim(), 4, 3);
  idx.add(rows.view(), std::vector<label_t>(), 1);
  const health_report later = idx.health();
  CHECK(later.figure("added_since_training") == 200);
  CHECK(later.figure("error_added") > 0);
  CHECK(std::isnan(later.figure("error_ratio")));
  // Saved again, it still says nothing it does not know.
  std::stringstream file;
  idx.save(file);
  CHECK(std::isnan(ivf_pq_index<l2>::load(file).health().figure("error_train")));
}

TEST_CASE("health: the other indexes report live and removed vectors", "[health]") {
  const auto base = clustered(2000, 8, 4, 21);
  SECTION("flat") {
    auto idx = flat_index<l2>::build(base.view());
    for (label_t l = 0; l < 100; ++l) idx.remove(l);
    const health_report h = idx.health();
    CHECK(h.live == 1900);
    CHECK(h.removed_unreclaimed == 0);  // freed at once, reused by the next add
    CHECK(h.memory_needed == std::size_t(double(h.memory_held) * 1900 / 2000));
    CHECK(h.figures.empty());
    CHECK(h.verdict == "healthy");
  }
  SECTION("kd_tree: dead rows until the rebuild") {
    auto idx = kd_tree_index<l2>::build(base.view());
    for (label_t l = 0; l < 150; ++l) idx.remove(l);
    const health_report h = idx.health();
    CHECK(h.live == 1850);
    CHECK(h.removed_unreclaimed == 150);
  }
  SECTION("rp_forest and lsh: tombstones until a purge") {
    auto forest = rp_forest_index<l2>::build(base.view());
    auto lsh = lsh_index<l2>::build(base.view());
    for (label_t l = 0; l < 150; ++l) {
      forest.remove(l);
      lsh.remove(l);
    }
    CHECK(forest.health().removed_unreclaimed == 150);
    CHECK(lsh.health().removed_unreclaimed == 150);
    CHECK(forest.health().live == 1850);
  }
}

TEST_CASE("health: sharded sums its shards, mips forwards its inner index", "[health][sharded][mips]") {
  const auto base = clustered(3000, 16, 8, 31);
  using shards = sharded_index<hnsw_index<l2>>;
  auto idx = shards::build(base.view(), {.shards = 3, .partition = shard_partition::label_hash, .shard = {.m = 8}}, 1);
  for (label_t l = 0; l < 3000; l += 2) idx.remove(l);
  const health_report h = idx.health();
  INFO(h);
  CHECK(h.index == "sharded_index of 3 hnsw_index");
  CHECK(h.live == 1500);
  CHECK(h.removed_unreclaimed == 1500);
  std::size_t largest = 0, needed = 0;
  for (std::size_t s = 0; s < 3; ++s) {
    CHECK(h.figure("shard_" + std::to_string(s) + "_live") == double(idx.shard(s).size()));
    largest = std::max(largest, idx.shard(s).size());
    needed += idx.shard(s).health().memory_needed;
  }
  CHECK(h.figure("shard_live_largest") == double(largest));
  CHECK(h.figure("shard_balance") == Approx(double(largest) / 500));
  CHECK(h.memory_needed > needed);  // the shards' and the holder's own bytes
  CHECK(h.memory_held == idx.memory_bytes());
  // 50% removed: the common finding from the summed fields, once.
  CHECK(h.verdict == "50.0% of stored vectors are removed but still held: rebuild (or add: new vectors reuse removed slots)");

  auto mips = mips_index<hnsw_index<l2>>::build(base.view(), {.inner = {.m = 2, .ef_construction = 2}});
  const health_report m = mips.health();
  const health_report inner = mips.inner().health();
  INFO(m);
  CHECK(m.index == "mips_index over hnsw_index");
  CHECK(m.figure("unreachable_live") == inner.figure("unreachable_live"));
  CHECK(m.figure("max_norm") == mips.max_norm());
  CHECK(m.verdict == inner.verdict);
}

TEST_CASE("health: lists as unbalanced as at training are the data's, not drift", "[health][ivf]") {
  // Clusters of weight 1/(c + 1): a few hold most vectors, so some lists are
  // large from the start; retraining would find them again.
  const auto data = gaussian_mixture(16, {}).sample(2000, 1);
  const auto idx = ivf_pq_index<l2>::build(data.view(), {.nlist = 16, .m = 4}, 1);
  const health_report h = idx.health();
  INFO(h);
  REQUIRE(h.figure("scan_cost_ratio") > health_limits::scan_cost);
  CHECK(h.figure("scan_cost_ratio") == Approx(h.figure("scan_cost_ratio_train")).epsilon(0.25));
  CHECK_THAT(h.verdict, Catch::Contains("the data's own"));
  CHECK_THAT(h.verdict, !Catch::Contains("retrain (rebuild)"));
}
