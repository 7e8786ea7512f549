#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <unordered_map>
#include <utility>
#include <vector>

#include "annulus/core/label_table.hpp"

using namespace annulus;

namespace {

// Every label of `reference` is found with its slot, and the other probes are not.
void check_same(const label_table& t, const std::vector<label_t>& labels,
                const std::unordered_map<label_t, std::uint32_t>& reference, const std::vector<label_t>& probes) {
  REQUIRE(t.size() == reference.size());
  for (const auto& [label, slot] : reference) {
    const auto found = t.find(label, labels);
    REQUIRE(found);
    REQUIRE(*found == slot);
  }
  for (const label_t l : probes)
    if (!reference.count(l)) REQUIRE_FALSE(t.find(l, labels));
}

}  // namespace

TEST_CASE("label_table: finds what was put, forgets what was erased", "[labels]") {
  const std::vector<label_t> labels{0, ~label_t{0}, 0};  // slot 2 repeats slot 0's label
  label_table t;
  CHECK_FALSE(t.find(0, labels));
  t.erase(5, labels);  // erasing from an empty table is a no-op
  CHECK(t.emplace(0, labels));
  CHECK(t.emplace(1, labels));         // every 64-bit label is a label
  CHECK_FALSE(t.emplace(2, labels));  // its label is present: unchanged
  CHECK(*t.find(0, labels) == 0);
  CHECK(*t.find(~label_t{0}, labels) == 1);
  CHECK(t.size() == 2);
  t.erase(0, labels);
  CHECK_FALSE(t.find(0, labels));
  CHECK(*t.find(~label_t{0}, labels) == 1);
  t.erase(0, labels);  // absent: no-op
  CHECK(t.size() == 1);
}

TEST_CASE("label_table: random adds, erases and relabels agree with std::unordered_map", "[labels]") {
  // Small label ranges force long probe runs, wrap-around at the table's
  // end and many backward shifts on erase; the large one the growth path.
  // Slots are reused as label_map reuses them: an erased slot keeps its
  // stale label until it is given a new one.
  for (const label_t range : {label_t{40}, label_t{3000}, label_t{1} << 40}) {
    label_table t;
    std::vector<label_t> labels;
    std::vector<std::uint32_t> free_slots;
    std::unordered_map<label_t, std::uint32_t> reference;
    std::mt19937_64 rng(range);
    std::vector<label_t> probes;
    for (std::uint32_t step = 0; step < 20000; ++step) {
      const label_t l = rng() % range;
      probes.push_back(l);
      if (rng() % 3 == 0) {
        if (const auto it = reference.find(l); it != reference.end()) free_slots.push_back(it->second);
        t.erase(l, labels);
        reference.erase(l);
      } else if (!reference.count(l)) {
        std::uint32_t s = std::uint32_t(labels.size());
        if (!free_slots.empty() && rng() % 2) {
          s = free_slots.back();
          free_slots.pop_back();
          labels[s] = l;
        } else {
          labels.push_back(l);
        }
        REQUIRE(t.emplace(s, labels));
        reference.emplace(l, s);
      } else {
        const std::uint32_t s = std::uint32_t(labels.size());
        labels.push_back(l);  // a second slot with a present label is refused
        REQUIRE_FALSE(t.emplace(s, labels));
        free_slots.push_back(s);
      }
      if (step % 997 == 0) check_same(t, labels, reference, probes);
    }
    check_same(t, labels, reference, probes);
    for (const auto& [label, slot] : std::unordered_map(reference)) {
      t.erase(label, labels);
      reference.erase(label);
    }
    CHECK(t.size() == 0);
    check_same(t, labels, reference, probes);
  }
}

TEST_CASE("label_table: 4 bytes a bucket, at most 3/4 full; a moved-from table is empty", "[labels]") {
  std::vector<label_t> labels;
  for (label_t i = 0; i < 1000; ++i) labels.push_back(i * 7919);
  label_table t;
  t.reserve(1000, labels);
  const std::size_t reserved = t.memory_bytes();
  for (std::uint32_t i = 0; i < 1000; ++i) t.emplace(i, labels);
  CHECK(t.memory_bytes() == reserved);  // reserve made room for all of them
  // 1,024 buckets hold 768 entries at 3/4: 1,000 take 2,048.
  CHECK(reserved == 2048 * sizeof(std::uint32_t));
  label_table other;
  other.swap(t);
  CHECK(t.size() == 0);
  CHECK(*other.find(label_t{999} * 7919, labels) == 999);
  label_table moved(std::move(other));
  CHECK(other.size() == 0);  // NOLINT(bugprone-use-after-move): the state promised
  CHECK_FALSE(other.find(0, labels));
  CHECK(moved.size() == 1000);
  other = std::move(moved);
  CHECK(moved.size() == 0);
  CHECK(*other.find(0, labels) == 0);
}
