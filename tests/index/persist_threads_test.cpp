// Saving beside other calls (index/base.hpp, README "Saved files"): a save
// runs beside searches on any index, and on hnsw beside adds too (the save
// waits for a running add: it holds the index's writer lock). Run under
// ThreadSanitizer by CI's tsan-threads step.
#include <catch2/catch.hpp>

#include <atomic>
#include <sstream>
#include <thread>
#include <vector>

#include "annulus/index/flat.hpp"
#include "annulus/index/hnsw.hpp"
#include "support/data.hpp"

using namespace annulus;

TEST_CASE("persist: saves beside searches, and on hnsw beside adds, give whole indexes", "[persist][threads]") {
  const auto base = annulus::testing::clustered(1600, 16, 8, 51);
  const auto queries = annulus::testing::clustered(20, 16, 8, 52);
  auto idx = hnsw_index<l2>::build(base.view().rows_slice(0, 800), {.m = 8, .ef_construction = 40}, 1);
  const auto flat = flat_index<l2>::build(base.view().rows_slice(0, 800));
  std::atomic<bool> stop{false};
  std::thread searcher([&] {
    std::vector<neighbor> out(5);
    for (std::size_t i = 0; !stop.load(); ++i) {
      idx.search(queries.row(i % queries.rows()), 5, {.ef = 32}, out);
      flat.search(queries.row(i % queries.rows()), 5, {}, out);
    }
  });
  std::thread adder([&] {
    for (std::size_t r = 800; r < 1600; r += 40) idx.add(base.view().rows_slice(r, 40), {}, 1);
  });
  std::vector<std::string> saved;
  for (int i = 0; i < 6; ++i) {
    std::ostringstream out;
    idx.save(out);
    saved.push_back(out.str());
    std::ostringstream f;
    flat.save(f);
    std::istringstream in(f.str());
    CHECK(flat_index<l2>::load(in).size() == 800);
  }
  adder.join();
  stop = true;
  searcher.join();
  // Each save holds the index as it stood between two adds: whole batches of 40.
  for (const std::string& bytes : saved) {
    std::istringstream in(bytes);
    const auto loaded = hnsw_index<l2>::load(in);
    CHECK(loaded.size() >= 800);
    CHECK(loaded.size() <= 1600);
    CHECK(loaded.size() % 40 == 0);
    CHECK(loaded.search(queries.row(0), 5, {.ef = 32}).size() == 5);
  }
}
