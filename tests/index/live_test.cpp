// live_index: searches through the holder, changes forwarded, rebuilds that
// keep every change made while they build, replace, and failures that leave
// the serving index as it was.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <memory>
#include <set>
#include <thread>
#include <type_traits>
#include <vector>

#include "annulus/index/flat.hpp"
#include "annulus/index/hnsw.hpp"
#include "annulus/index/ivf_pq.hpp"
#include "annulus/index/live.hpp"
#include "support/data.hpp"

using namespace annulus;
using annulus::testing::brute_force;
using annulus::testing::clustered;
using annulus::testing::overlap;

namespace {
constexpr std::size_t dim = 16, n = 3000, k = 10;

// Cheap rebuilds for the threads test.
template <class Live>
typename Live::build_params rebuild_params(const Live&) {
  if constexpr (std::is_same_v<Live, live_index<hnsw_index<l2>>>)
    return {.m = 8, .ef_construction = 32};
  else
    return {};
}

// recall@k of `live` against an exact scan of what it holds (its labels and
// stored vectors, read back through it).
template <class Live>
double recall(const Live& live, const matrix<float>& queries, const typename Live::search_params& p) {
  const std::vector<label_t> labels = live.labels();
  matrix<float> held(labels.size(), queries.cols());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::vector<float> v = live.get(labels[i]);
    std::copy(v.begin(), v.end(), held.row_ptr(i));
  }
  double sum = 0;
  for (std::size_t q = 0; q < queries.rows(); ++q) {
    auto truth = brute_force<typename Live::metric_type>(held.view(), queries.row_ptr(q), k);
    for (auto& t : truth) t.label = labels[t.label];
    sum += overlap(truth, live.search(queries.row(q), k, p));
  }
  return sum / double(queries.rows());
}
}  // namespace

TEST_CASE("live_index: searches and changes pass through to the serving index", "[live]") {
  const auto base = clustered(n + 100, dim, 10, 1);
  const auto queries = clustered(30, dim, 10, 2);
  const hnsw_index<l2> plain = hnsw_index<l2>::build(base.view().rows_slice(0, n), {.m = 8, .seed = 4}, 1);
  live_index<hnsw_index<l2>> live(hnsw_index<l2>::build(base.view().rows_slice(0, n), {.m = 8, .seed = 4}, 1));
  STATIC_REQUIRE(annulus::index<live_index<hnsw_index<l2>>>);
  for (std::size_t q = 0; q < queries.rows(); ++q)
    CHECK(live.search(queries.row(q), k, {.ef = 32}) == plain.search(queries.row(q), k, {.ef = 32}));
  const result_matrix batch = search_batch(live, queries.view(), k, {.ef = 32}, 2);
  for (std::size_t q = 0; q < queries.rows(); ++q)
    CHECK(std::vector<neighbor>(batch[q].begin(), batch[q].end()) == plain.search(queries.row(q), k, {.ef = 32}));
  live.add(base.row(n), label_t(n));
  live.remove(0);
  live.update(1, base.row(n + 1));
  CHECK(live.size() == n);
  CHECK(live.contains(label_t(n)));
  CHECK_FALSE(live.contains(0));
  CHECK(live.get(1) == std::vector<float>(base.row(n + 1).begin(), base.row(n + 1).end()));
  CHECK(live.search(base.row(n + 1), 1, {.ef = 32})[0].label == 1);
  CHECK(live.generation() == 0);
  CHECK_THROWS_AS(live.remove(0), invalid_argument);
  CHECK(live.size() == n);
}

TEST_CASE("live_index: a rebuild keeps the changes made while it builds", "[live]") {
  const auto base = clustered(n + 400, dim, 10, 3);
  const auto queries = clustered(50, dim, 10, 4);
  live_index<hnsw_index<l2>> live(hnsw_index<l2>::build(base.view().rows_slice(0, n), {.m = 8, .seed = 1}, 1));
  std::weak_ptr<const hnsw_index<l2>> before = live.snapshot();
  // A slow build (ef_construction 400 on one thread), so that the changes
  // below land while it runs and are replayed from the log; if the machine
  // is slow to start the thread, they land before and are copied instead:
  // both must give the same index contents.
  std::thread rebuilder([&] { live.rebuild({.m = 16, .ef_construction = 400, .seed = 2}, 1); });
  while (!live.rebuilding() && live.generation() == 0) std::this_thread::yield();
  std::set<label_t> held;
  for (label_t l = 0; l < n; ++l) held.insert(l);
  for (std::size_t i = 0; i < 400; ++i) {
    live.add(base.row(n + i), label_t(n + i));
    held.insert(label_t(n + i));
    live.remove(label_t(3 * i));
    held.erase(label_t(3 * i));
  }
  live.update(1, base.row(n + 399));  // label 1 now holds the vector of label n + 399
  const bool logged = live.rebuilding();
  rebuilder.join();
  INFO("the last change landed while the rebuild built: " << logged);
  CHECK(live.generation() == 1);
  CHECK_FALSE(live.rebuilding());
  CHECK(before.expired());  // freed by the rebuilding thread once no search held it
  CHECK(live.size() == held.size());
  const std::vector<label_t> got = live.labels();
  CHECK(std::set<label_t>(got.begin(), got.end()) == held);
  CHECK(live.get(1) == std::vector<float>(base.row(n + 399).begin(), base.row(n + 399).end()));
  const auto twins = live.search(base.row(n + 399), 2, {.ef = 64});
  CHECK(std::set<label_t>{twins[0].label, twins[1].label} == std::set<label_t>{1, label_t(n + 399)});
  // The rebuilt graph is the one asked for (m 16): at ef 64 it finds nearly
  // all of the exact top 10 of what it holds.
  CHECK(recall(live, queries, {.ef = 64}) >= 0.97);
  CHECK(live.snapshot()->neighbors(live.snapshot()->labels()[0], 0).size() <= 32);
}

TEST_CASE("live_index: a failed rebuild or replace leaves the serving index as it was", "[live]") {
  const auto base = clustered(n, dim, 10, 5);
  live_index<hnsw_index<l2>> live(hnsw_index<l2>::build(base.view(), {.m = 8}, 1));
  const auto* serving = live.snapshot().get();
  CHECK_THROWS_AS(live.rebuild({.m = 1}, 1), invalid_argument);  // m must be >= 2
  CHECK(live.snapshot().get() == serving);
  CHECK(live.generation() == 0);
  CHECK_FALSE(live.rebuilding());
  live.remove(5);  // changes after a failed rebuild go to the serving index, not to a log
  CHECK_FALSE(live.contains(5));
  const auto other = clustered(100, dim + 1, 3, 6);
  CHECK_THROWS_AS(live.replace(hnsw_index<l2>::build(other.view(), {.m = 8}, 1)), dimension_mismatch);
  CHECK(live.snapshot().get() == serving);
  CHECK_THROWS_AS(live.rebuild({.m = 8}, 1, "/nonexistent-directory/x.annulus"), io_error);
  CHECK(live.snapshot().get() == serving);
  CHECK(live.size() == n - 1);

  // IVF-PQ without kept vectors holds codes only: rebuild refuses, rebuild_from works.
  live_index<ivf_pq_index<l2>> pq(ivf_pq_index<l2>::build(base.view(), {.nlist = 16, .m = 4}, 1));
  CHECK_THROWS_WITH(pq.rebuild({.nlist = 32, .m = 4}, 1), Catch::Contains("rebuild_from"));
  std::vector<label_t> rows(n);
  for (std::size_t i = 0; i < n; ++i) rows[i] = label_t(i);
  pq.rebuild_from(base.view(), rows, {.nlist = 32, .m = 4}, 1);
  CHECK(pq.snapshot()->nlist() == 32);
  CHECK(pq.size() == n);
}

TEST_CASE("live_index: replace swaps in an index built elsewhere, and saves go through snapshot", "[live]") {
  const auto base = clustered(n, dim, 10, 7);
  live_index<flat_index<cosine>> live(flat_index<cosine>::build(base.view().rows_slice(0, 1000)));
  live.replace(flat_index<cosine>::build(base.view()));
  CHECK(live.size() == n);
  CHECK(live.generation() == 1);
  const auto q = base.row(2500);
  CHECK(live.search(q, 1)[0].label == 2500);
}

TEST_CASE("live_index: searches on two threads beside changes and rebuilds", "[live][threads]") {
  constexpr std::size_t small = 900, extra = 300;  // small: ThreadSanitizer runs this (multiples of 3)
  const auto base = clustered(small + extra, dim, 8, 9);
  for (int kind = 0; kind < 2; ++kind) {
    std::atomic<bool> done{false};
    std::atomic<std::size_t> searches{0}, bad{0};
    auto run = [&](auto& live) {
      auto searcher = [&](std::size_t seed) {
        for (std::size_t i = seed; !done.load(); i += 7) {
          const auto hits = live.search(base.row(i % (small + extra)), 10, {});
          for (std::size_t r = 0; r < hits.size(); ++r)
            if (hits[r].label >= small + extra || (r > 0 && closer(hits[r], hits[r - 1]))) ++bad;
          ++searches;
        }
      };
      std::thread a(searcher, 0), b(searcher, 3);
      std::thread rebuilder([&] {
        for (int round = 0; round < 2; ++round) {
          live.rebuild(rebuild_params(live), 1);
          if constexpr (requires { live.compact(1); }) live.compact(1);
        }
      });
      for (std::size_t i = small; i < small + extra; ++i) {
        live.add(base.row(i), label_t(i));
        if (i % 3 == 0) live.remove(label_t(i - small));
      }
      rebuilder.join();
      done = true;
      a.join();
      b.join();
      CHECK(bad == 0);
      CHECK(searches > 0);
      CHECK(live.generation() == 2);
      CHECK(live.size() == small + extra - extra / 3);
      for (std::size_t i = small; i < small + extra; i += 3) CHECK_FALSE(live.contains(label_t(i - small)));
    };
    if (kind == 0) {
      live_index<hnsw_index<l2>> live(hnsw_index<l2>::build(base.view().rows_slice(0, small), {.m = 8}, 1));
      run(live);
    } else {
      live_index<flat_index<l2>> live(flat_index<l2>::build(base.view().rows_slice(0, small)));
      run(live);
    }
  }
}
