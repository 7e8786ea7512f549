#include <catch2/catch.hpp>

#include <vector>

#include "annulus/core/labels.hpp"

using namespace annulus;

TEST_CASE("label_map: row numbers cost nothing until another label arrives", "[labels]") {
  label_map m;
  m.check_new(3, {});
  m.append(3, {});
  CHECK(m.size() == 3);
  CHECK(m.label(2) == 2);
  CHECK(*m.find(1) == 1);
  CHECK_FALSE(m.find(3));
  CHECK(m.memory_bytes() < 64);  // an empty hash table, no per-vector bytes

  const std::vector<label_t> custom{100, 7};
  m.check_new(2, custom);
  m.append(2, custom);
  CHECK(m.size() == 5);
  CHECK(m.label(0) == 0);
  CHECK(m.label(3) == 100);
  CHECK(*m.find(7) == 4);
  CHECK(*m.find(2) == 2);
  CHECK_FALSE(m.find(5));
  CHECK(m.memory_bytes() >= 5 * sizeof(label_t));

  // Default labels continue at size(): 5 is free, but 7 (= size() + 2) is taken.
  CHECK_NOTHROW(m.check_new(2, {}));
  CHECK_THROWS_WITH(m.check_new(3, {}), Catch::Contains("label 7 is already in the index"));
  const std::vector<label_t> dup{9, 9};
  CHECK_THROWS_WITH(m.check_new(2, dup), Catch::Contains("label 9 appears twice"));
  CHECK_THROWS_WITH(m.check_new(1, custom), Catch::Contains("2 labels given for 1 vectors"));
}

TEST_CASE("label_map: erase and assign reuse slots; default labels never repeat", "[labels]") {
  label_map m;
  m.append(4, {});
  m.erase(1);
  CHECK_FALSE(m.find(1));
  CHECK(*m.find(2) == 2);
  CHECK(m.size() == 4);  // slots handed out, the erased one included
  // The next default label is 4 (vectors ever added), not a reused number.
  CHECK(m.default_label(0) == 4);
  m.assign(1, m.default_label(0));
  CHECK(m.label(1) == 4);
  CHECK(*m.find(4) == 1);
  CHECK(m.default_label(0) == 5);
  CHECK_NOTHROW(m.check_new(1, {}));
  const std::vector<label_t> again{4};
  CHECK_THROWS_WITH(m.check_new(1, again), Catch::Contains("label 4 is already in the index"));
  const std::vector<label_t> old{1};
  CHECK_NOTHROW(m.check_new(1, old));  // erased labels may come back
}
