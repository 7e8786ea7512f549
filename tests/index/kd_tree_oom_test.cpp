// kd_tree's out-of-memory case, in its own file: it needs the allocation
// injector (support/alloc_failure.cpp), which only the annulus_tests binary
// links, so the ThreadSanitizer build (the files with threaded cases) and the
// instruction-set matrix must not pick it up with the other kd_tree cases.

#include <catch2/catch.hpp>

#include <functional>
#include <new>
#include <vector>

#include "annulus/index/kd_tree.hpp"
#include "support/alloc_failure.hpp"
#include "support/data.hpp"

using namespace annulus;

// The lifecycle test's [oom] case reaches no rebuild through update; here an
// update and an add each rebuild (dead rows past an eighth), with the n-th
// allocation failing for every n: a failed call leaves the answers as they
// were, the call that gets through answers as on a twin that never failed.
TEST_CASE("kd_tree: an update or add whose rebuild runs out of memory changes nothing", "[kd_tree][oom]") {
  const auto base = annulus::testing::clustered(400, 3, 4, 17);
  const auto queries = annulus::testing::clustered(10, 3, 4, 18);
  const auto answers = [&](const kd_tree_index<l2>& t) {
    std::vector<std::vector<neighbor>> out;
    for (std::size_t i = 0; i < queries.rows(); ++i) {
      out.push_back(t.search(queries.row(i), 5));
      out.push_back(t.search(queries.row(i), 5, {.max_leaves = 1}));  // depends on the tree's shape
    }
    return out;
  };
  const auto fresh = [&] {
    auto t = kd_tree_index<l2>::build(base.view(), {.leaf_size = 4}, 1);
    for (label_t l = 0; l < 51; ++l) t.remove(l);  // 51 dead rows of 400: past an eighth, rebuilt at the next change
    return t;
  };
  const std::vector<float> v{0.5f, 0.25f, -1.f};
  const auto update = [&](kd_tree_index<l2>& t) { t.update(100, v); };
  const auto add = [&](kd_tree_index<l2>& t) { t.add(queries.view().rows_slice(0, 1), std::vector<label_t>{7000}, 1); };
  for (const auto& call : {std::function<void(kd_tree_index<l2>&)>(update), std::function<void(kd_tree_index<l2>&)>(add)}) {
    auto twin = fresh();
    const std::size_t nodes = twin.node_count();
    call(twin);
    CHECK(twin.node_count() != nodes);  // rebuilt
    const auto after = answers(twin);
    std::size_t injected = 0;
    for (std::size_t n = 0;; ++n) {
      auto t = fresh();
      const auto before = answers(t);
      bool threw = false, failed = false;
      {
        annulus::testing::fail_allocation_at fail(n);
        try {
          call(t);
        } catch (const std::bad_alloc&) {
          threw = true;
        }
        failed = fail.failed();
      }
      INFO("allocation " << n);
      if (threw) {
        ++injected;
        REQUIRE(answers(t) == before);
        REQUIRE(t.size() == 349);
        continue;
      }
      REQUIRE(answers(t) == after);
      if (!failed) break;
    }
    CHECK(injected >= 4);  // the rebuild's allocations were reached
  }
}
