#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "annulus/core/random.hpp"
#include "annulus/core/topk.hpp"

using namespace annulus;

TEST_CASE("topk_heap keeps the k closest, sorted, ties by label", "[topk]") {
  random_generator rng(3);
  for (std::size_t k : {1u, 2u, 5u, 64u}) {
    std::vector<neighbor> all;
    std::vector<neighbor> storage(k);
    topk_heap heap(storage, k);
    for (label_t i = 0; i < 500; ++i) {
      const float d = float(rng.below(50));  // many ties
      all.push_back({i, d});
      heap.push(i, d);
    }
    std::sort(all.begin(), all.end(), closer);
    REQUIRE(heap.size() == k);
    REQUIRE(heap.threshold() == all[k - 1].distance);
    const std::size_t n = heap.sort();
    REQUIRE(n == k);
    for (std::size_t i = 0; i < k; ++i) REQUIRE(storage[i] == all[i]);
  }
}

TEST_CASE("topk_heap reports fewer than k when fewer were pushed", "[topk]") {
  std::vector<neighbor> storage(10);
  topk_heap heap(storage, 10);
  CHECK(heap.threshold() == std::numeric_limits<float>::infinity());
  heap.push(4, 2.f);
  heap.push(9, 1.f);
  REQUIRE(heap.sort() == 2);
  CHECK(storage[0] == neighbor{9, 1.f});
  CHECK(storage[1] == neighbor{4, 2.f});
  CHECK_THROWS_AS(topk_heap(std::span(storage).first(3), 4), invalid_argument);
}

TEST_CASE("merge_topk merges sorted lists", "[topk]") {
  const std::vector<neighbor> a{{1, 0.5f}, {2, 2.f}, {3, 4.f}}, b{{7, 1.f}, {8, 2.f}}, c{};
  const std::vector<std::span<const neighbor>> lists{a, b, c};
  std::vector<neighbor> out(4);
  REQUIRE(merge_topk(lists, 4, out) == 4);
  CHECK(out == std::vector<neighbor>{{1, 0.5f}, {7, 1.f}, {2, 2.f}, {8, 2.f}});
  std::vector<neighbor> all(10);
  CHECK(merge_topk(lists, 10, all) == 5);
  CHECK_THROWS_AS(merge_topk(lists, 5, out), invalid_argument);
}

TEST_CASE("result_matrix rows hold what was set", "[topk]") {
  result_matrix r(3, 2);
  r.row_storage(1)[0] = {5, 1.f};
  r.set_count(1, 1);
  CHECK(r.size() == 3);
  CHECK(r[0].empty());
  REQUIRE(r[1].size() == 1);
  CHECK(r[1][0].label == 5);
}
