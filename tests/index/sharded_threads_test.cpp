// sharded_index under threads: searches (each fanned out to the shards on
// workers of its own) beside adds and removes routed to hnsw shards, whose
// adds run beside searches. Run under ThreadSanitizer by the tsan-threads preset.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

#include "annulus/index/hnsw.hpp"
#include "annulus/index/sharded.hpp"
#include "support/data.hpp"

using namespace annulus;

TEST_CASE("sharded_index: searches on two threads beside adds and removes", "[sharded][threads]") {
  constexpr std::size_t dim = 12, n = 1200, extra = 300;
  const matrix<float> base = annulus::testing::clustered(n + extra, dim, 6, 61);
  using index = sharded_index<hnsw_index<l2>>;
  index idx = index::build(base.view().rows_slice(0, n), {.shards = 3, .shard = {.m = 8}}, 2);
  idx.set_search_threads(2);
  std::atomic<bool> done{false};
  std::atomic<std::size_t> searches{0}, bad{0};
  auto searcher = [&](std::size_t seed) {
    for (std::size_t i = seed; !done.load(); i += 7) {
      const auto hits = idx.search(base.row(i % (n + extra)), 10, {.ef = 32});
      for (std::size_t r = 0; r < hits.size(); ++r)
        if (hits[r].label >= n + extra || (r > 0 && closer(hits[r], hits[r - 1]))) ++bad;
      ++searches;
    }
  };
  std::thread a(searcher, 0), b(searcher, 3);
  for (std::size_t i = n; i < n + extra; ++i) {
    idx.add(base.row(i), label_t(i));
    if (i % 3 == 0) idx.remove(label_t(i - n));
  }
  done = true;
  a.join();
  b.join();
  CHECK(bad == 0);
  CHECK(searches > 0);
  CHECK(idx.size() == n + extra - extra / 3);
  for (std::size_t i = n; i < n + extra; i += 3) CHECK_FALSE(idx.contains(label_t(i - n)));
}
