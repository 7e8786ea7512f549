// visited_set: a reset forgets every slot the last search marked, however
// many, growing keeps the new slots unvisited, and the 16-bit epoch's wrap
// (every 65,535 searches) clears the old marks.
#include <catch2/catch.hpp>

#include <annulus/core/visited.hpp>

#include <cstddef>
#include <vector>

using annulus::visited_set;

namespace {

// Marks `slots` and checks each reads visited once marked, and only then.
void mark_all(visited_set& v, const std::vector<std::size_t>& slots) {
  for (const std::size_t s : slots) {
    CHECK_FALSE(v.contains(s));
    CHECK_FALSE(v.test_and_set(s));
    CHECK(v.contains(s));
    CHECK(v.test_and_set(s));  // a second visit is seen
  }
}

std::size_t count_visited(const visited_set& v, std::size_t n) {
  std::size_t c = 0;
  for (std::size_t s = 0; s < n; ++s) c += v.contains(s);
  return c;
}

}  // namespace

TEST_CASE("visited_set: a reset forgets every slot the last search marked, few or many", "[visited]") {
  const std::size_t n = 10'000;
  visited_set v;
  v.reset(n);
  CHECK(v.size() >= n);
  CHECK(count_visited(v, n) == 0);

  SECTION("a few slots, first and last included") {
    const std::vector<std::size_t> slots{0, 1, 63, 64, 65, 127, 128, 5'000, n - 1};
    mark_all(v, slots);
    CHECK(count_visited(v, n) == slots.size());
    v.reset(n);
    CHECK(count_visited(v, n) == 0);
    mark_all(v, {7, 9'999});  // the set works again after the reset
    CHECK(count_visited(v, n) == 2);
  }
  SECTION("a third of the slots") {
    std::vector<std::size_t> slots;
    for (std::size_t s = 0; s < n; s += 3) slots.push_back(s);
    mark_all(v, slots);
    CHECK(count_visited(v, n) == slots.size());
    v.reset(n);
    CHECK(count_visited(v, n) == 0);
  }
  SECTION("a run of 64 slots") {
    for (std::size_t s = 64; s < 128; ++s) CHECK_FALSE(v.test_and_set(s));
    CHECK(count_visited(v, n) == 64);
    v.reset(n);
    CHECK(count_visited(v, n) == 0);
  }
}

TEST_CASE("visited_set: growing keeps the new slots unvisited and clears the old ones", "[visited]") {
  visited_set v;
  v.reset(100);
  mark_all(v, {3, 99});
  v.reset(100'000);  // grows: the new slots start unvisited, the old marks are cleared
  CHECK(v.size() >= 100'000);
  CHECK(count_visited(v, 100'000) == 0);
  mark_all(v, {3, 99, 64'000, 99'999});
  v.reset(50);  // a smaller search keeps the room and still starts empty
  CHECK(count_visited(v, 100'000) == 0);
}

TEST_CASE("visited_set: a slot marked once reads unvisited through the epoch's wrap", "[visited]") {
  visited_set v;
  v.reset(4);
  CHECK_FALSE(v.test_and_set(2));
  // 65,536 more searches take the epoch round to every value once more,
  // through the wrap that zeroes the tags: the old mark must never come back.
  for (std::size_t i = 0; i < 65'536; ++i) {
    v.reset(4);
    REQUIRE_FALSE(v.contains(2));
  }
  CHECK_FALSE(v.test_and_set(2));
  CHECK(v.contains(2));
}
