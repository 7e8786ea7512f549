// The lifecycle under load (issue 19, item 5): two threads search a
// live_index<hnsw_index<l2>> while a writer adds, removes and compacts and a
// third thread rebuilds and swaps in fresh indexes, for 60 seconds (10 under
// a sanitizer; ANNULUS_STRESS_SECONDS overrides). Checked throughout: no
// result names a label whose removal returned before the search started,
// and every returned distance is the true distance to that label's vector.
// At the end, after a compaction, memory is within 10% of a fresh build's.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "annulus/core/random.hpp"
#include "annulus/index/hnsw.hpp"
#include "annulus/index/live.hpp"
#include "support/sanitizer.hpp"

using namespace annulus;

namespace {
constexpr std::size_t dim = 16, initial = 2000, batch = 40, max_labels = 1 << 20, k = 10;

// Label L's vector, computable by any thread: one of 8 clusters plus noise.
void vector_of(label_t label, float* out) {
  random_generator rng(7, label);
  for (std::size_t j = 0; j < dim; ++j) out[j] = float(4.0 * double((label % 8) == j % 8) + rng.normal());
}

double stress_seconds() {
  if (const char* s = std::getenv("ANNULUS_STRESS_SECONDS")) return std::atof(s);
  return ANNULUS_TEST_SANITIZED ? 10 : 60;
}
}  // namespace

TEST_CASE("live_index under load: searches beside adds, removes, compactions and rebuilds", "[live][threads][stress]") {
  using index_type = hnsw_index<l2>;
  const hnsw_index<l2>::build_params params{.m = 8, .ef_construction = 64};
  matrix<float> first(initial, dim);
  for (std::size_t i = 0; i < initial; ++i) vector_of(label_t(i), first.row_ptr(i));
  live_index<index_type> live(index_type::build(first.view(), params, 1));

  // removed_at[L]: the value of `removals` once L's removal returned (0: not removed).
  std::vector<std::atomic<std::uint64_t>> removed_at(max_labels);
  std::atomic<std::uint64_t> removals{0};
  std::atomic<bool> done{false};
  std::atomic<std::size_t> searches{0}, named_removed{0}, wrong_distance{0}, rebuilds{0}, compactions{0};
  std::mutex first_error_mutex;
  std::string first_error;
  auto note = [&](const std::string& what) {
    std::lock_guard lock(first_error_mutex);
    if (first_error.empty()) first_error = what;
  };

  auto searcher = [&](std::uint64_t seed) {
    random_generator rng(seed, 0);
    std::vector<float> q(dim), v(dim);
    while (!done.load()) {
      for (auto& x : q) x = float(4.0 * rng.uniform() + rng.normal());
      const std::uint64_t before = removals.load();
      const std::vector<neighbor> hits = live.search(q, k, {.ef = 32});
      for (const neighbor& h : hits) {
        const std::uint64_t at = removed_at[h.label].load();
        if (at != 0 && at <= before) {
          ++named_removed;
          note("label " + std::to_string(h.label) + " returned after its removal");
        }
        vector_of(h.label, v.data());
        double d = 0;
        for (std::size_t j = 0; j < dim; ++j) d += (double(q[j]) - v[j]) * (double(q[j]) - v[j]);
        if (std::abs(d - double(h.distance)) > 1e-4 * std::max(1.0, d)) {
          ++wrong_distance;
          note("label " + std::to_string(h.label) + " at distance " + std::to_string(h.distance) + ", truly " +
               std::to_string(d));
        }
      }
      ++searches;
    }
  };

  auto rebuilder = [&] {
    while (!done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      if (done.load()) break;
      live.rebuild(params, 1);
      ++rebuilds;
    }
  };

  std::vector<label_t> held(initial);
  for (std::size_t i = 0; i < initial; ++i) held[i] = label_t(i);
  label_t next = initial;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(stress_seconds());
  std::thread s1(searcher, 1), s2(searcher, 2), r(rebuilder);
  random_generator rng(3, 0);
  matrix<float> rows(batch, dim);
  std::vector<label_t> labels(batch);
  for (std::size_t round = 0; std::chrono::steady_clock::now() < deadline && next + batch < max_labels; ++round) {
    for (std::size_t i = 0; i < batch; ++i) {
      labels[i] = next++;
      vector_of(labels[i], rows.row_ptr(i));
    }
    live.add(rows.view(), labels, 1);
    held.insert(held.end(), labels.begin(), labels.end());
    for (std::size_t i = 0; i < batch; ++i) {
      const std::size_t at = rng.below(held.size());
      const label_t gone = held[at];
      held[at] = held.back();
      held.pop_back();
      live.remove(gone);
      removed_at[gone].store(removals.fetch_add(1) + 1);
    }
    if (round % 25 == 24) {
      live.compact(1, initial + batch);
      ++compactions;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  done = true;
  s1.join();
  s2.join();
  r.join();

  INFO("searches " << searches << ", rebuilds " << rebuilds << ", compactions " << compactions << ": "
                   << first_error);
  CHECK(named_removed == 0);
  CHECK(wrong_distance == 0);
  CHECK(searches > 100);
  CHECK(rebuilds > 0);
  CHECK(compactions > 0);
  CHECK(live.size() == held.size());

  // Memory after a compaction: within 10% of a fresh build of what is held.
  live.compact(1);
  matrix<float> now(held.size(), dim);
  for (std::size_t i = 0; i < held.size(); ++i) vector_of(held[i], now.row_ptr(i));
  const index_type fresh = index_type::build_with_labels(now.view(), held, params, 1);
  INFO("memory: compacted " << live.memory_bytes() << ", fresh " << fresh.memory_bytes());
  CHECK(double(live.memory_bytes()) <= 1.1 * double(fresh.memory_bytes()));
}
