// advise(): the measured recommendation. Each case changes one target and
// checks the pick moves as the measurements say it must: open targets pick
// exact search, a latency target at a large planned count rules it out, a
// RAM budget between the smallest index and the rest picks the smallest, and
// impossible targets say what to relax. Small data, so the whole file runs in
// seconds (every candidate is built and swept for real).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "annulus/eval/advisor.hpp"
#include "annulus/eval/synthetic.hpp"
#include "support/matchers.hpp"

using namespace annulus;
using annulus::testing::message_has;

namespace {

struct data_set {
  matrix<float> base, queries;
};

const data_set& data() {
  static const data_set d = [] {
    const gaussian_mixture mixture(16, {.clusters = 8, .norm_ratio = 4.0, .seed = 7});
    return data_set{mixture.sample(2000, 1), mixture.sample(40, 2)};
  }();
  return d;
}

const advisor_candidate& by_name(const advisor_report& a, const std::string& index, const std::string& build_has = "") {
  for (const advisor_candidate& c : a.ranked)
    if (c.index == index && c.build.find(build_has) != std::string::npos) return c;
  FAIL("no candidate " << index << " " << build_has);
  return a.ranked.front();
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("advise: open targets pick exact search, and every candidate is measured honestly", "[advisor]") {
  std::size_t calls = 0, last_done = 0, last_total = 0;
  const advisor_report a = advise<l2>(data().base.view(), data().queries.view(), {.target_recall = 0.9},
                              [&](std::size_t done, std::size_t total, const std::string&) {
                                CHECK(done >= last_done);
                                CHECK(done <= total);
                                last_done = done, last_total = total, ++calls;
                              });
  CHECK(calls > 10);
  CHECK(last_done == last_total);
  REQUIRE(a.found);
  CHECK(a.exact_suffices);
  CHECK(a.ranked.front().index == "flat");
  CHECK(a.ranked.front().point().recall == 1.0);
  CHECK(has(a.argument, "Exact search is enough"));
  CHECK(a.plan_n == 2000);
  for (const advisor_candidate& c : a.ranked) {
    INFO(c.index << " " << c.build);
    REQUIRE(!c.sweep.empty());
    CHECK(c.bytes_per_vector > 0);
    CHECK(c.build_s >= 0);
    // The judged point is the first to reach the target, and the sweep stops there.
    if (c.meets_recall) {
      CHECK(c.chosen == c.sweep.size() - 1);
      CHECK(c.point().recall >= 0.9);
      for (std::size_t i = 0; i < c.chosen; ++i) CHECK(c.sweep[i].recall < 0.9);
    }
    CHECK(c.point().p99_us >= c.point().p50_us);
    CHECK(c.planned_bytes == Approx(c.bytes_per_vector * 2000));
  }
  // Every family the issue names is among the candidates.
  for (const char* family : {"flat", "hnsw", "hnsw_sq8", "ivf_flat", "ivf_pq", "ivf_pq_fs"}) CHECK_NOTHROW(by_name(a, family));
  CHECK(has(a.table(), "| 1 | flat |"));
}

TEST_CASE("advise: a latency target at 10^9 items rules out exact search; a RAM budget picks the smallest index",
          "[advisor]") {
  const double plan = 1e9;
  const advisor_report open = advise<l2>(data().base.view(), data().queries.view(), {.target_recall = 0.8, .plan_n = plan});
  const advisor_candidate& flat = by_name(open, "flat");
  CHECK(flat.planned_p99_us == Approx(flat.point().p99_us * plan / 2000));
  CHECK(has(flat.model, "grows with n"));
  const advisor_candidate& hnsw = by_name(open, "hnsw", "m=16");
  CHECK(hnsw.planned_p99_us == Approx(hnsw.point().p99_us * std::log(plan) / std::log(2000.0)));

  // p99 between the fastest ANN candidate's and exact search's, at 10^9.
  double fastest = std::numeric_limits<double>::infinity();
  for (const advisor_candidate& c : open.ranked)
    if (c.meets_recall && c.index != "flat") fastest = std::min(fastest, c.planned_p99_us);
  REQUIRE(fastest < flat.planned_p99_us);
  const double p99 = std::sqrt(fastest * flat.planned_p99_us);
  const advisor_report latency = advise<l2>(data().base.view(), data().queries.view(),
                                    {.target_recall = 0.8, .p99_us = p99, .plan_n = plan});
  REQUIRE(latency.found);
  CHECK_FALSE(latency.exact_suffices);
  CHECK(latency.ranked.front().index != "flat");
  CHECK(latency.ranked.front().planned_p99_us <= p99);
  CHECK(has(latency.argument, "Use "));
  CHECK(has(latency.argument, "10^9"));

  // A budget just above the smallest candidate that reaches the recall.
  const advisor_candidate* smallest = nullptr;
  for (const advisor_candidate& c : open.ranked)
    if (c.meets_recall && (!smallest || c.bytes_per_vector < smallest->bytes_per_vector)) smallest = &c;
  REQUIRE(smallest != nullptr);
  std::size_t as_small = 0;
  for (const advisor_candidate& c : open.ranked) as_small += c.meets_recall && c.bytes_per_vector <= smallest->bytes_per_vector * 1.05;
  const advisor_report ram = advise<l2>(data().base.view(), data().queries.view(),
                                {.target_recall = 0.8, .ram_budget_bytes = smallest->planned_bytes * 1.05, .plan_n = plan});
  REQUIRE(ram.found);
  CHECK(ram.ranked.front().planned_bytes <= smallest->planned_bytes * 1.05);
  if (as_small == 1) {
    CHECK(ram.ranked.front().index == smallest->index);
    CHECK(ram.ranked.front().build == smallest->build);
  }
  for (const advisor_candidate& c : ram.ranked)
    if (c.meets_all()) CHECK(c.planned_bytes <= ram.goals.ram_budget_bytes);
}

TEST_CASE("advise: impossible targets say what to relax", "[advisor]") {
  const advisor_report a = advise<cosine>(data().base.view(), data().queries.view(),
                                  {.target_recall = 0.9, .ram_budget_bytes = 1.0, .plan_n = 1e6});
  CHECK_FALSE(a.found);
  CHECK_FALSE(a.exact_suffices);
  CHECK(has(a.argument, "No candidate meets all three targets"));
  CHECK(has(a.relax, "raise the RAM budget to"));
  CHECK(has(a.argument, a.relax));
  for (const advisor_candidate& c : a.ranked) CHECK_FALSE(c.meets_ram);
}

TEST_CASE("advise: bad goals and data are refused before any work", "[advisor]") {
  const auto base = data().base.view();
  const auto q = data().queries.view();
  CHECK_THROWS_MATCHES(advise<l2>(base, q, {.k = 0}), invalid_argument, message_has("k must be at least 1"));
  CHECK_THROWS_MATCHES(advise<l2>(base, q, {.target_recall = 0}), invalid_argument, message_has("target_recall"));
  CHECK_THROWS_MATCHES(advise<l2>(base, q, {.target_recall = 1.5}), invalid_argument, message_has("target_recall"));
  CHECK_THROWS_MATCHES(advise<l2>(base, q, {.ram_budget_bytes = std::nan("")}), invalid_argument,
                       message_has("ram_budget_bytes"));
  CHECK_THROWS_MATCHES(advise<l2>(base, q, {.k = 5000}), invalid_argument, message_has("k <= rows"));
  CHECK_THROWS_MATCHES(advise<l2>(base, matrix_view<const float>(q.data(), 0, q.cols())), invalid_argument,
                       message_has("no queries"));
  const matrix<float> wide(3, 17);
  CHECK_THROWS_MATCHES(advise<l2>(base, wide.view()), dimension_mismatch, message_has("17 columns"));
}

TEST_CASE("rank_candidates: judges measurements taken elsewhere by the same rules", "[advisor]") {
  auto candidate = [](std::string index, advisor_growth g, double bytes, std::vector<advisor_point> sweep) {
    advisor_candidate c;
    c.index = std::move(index);
    c.growth = g;
    c.bytes_per_vector = bytes;
    c.sweep = std::move(sweep);
    return c;
  };
  // hnsw's points out of effort order: the judged one is the least p99 reaching the target.
  const std::vector<advisor_candidate> measured{
      candidate("flat", advisor_growth::linear, 512, {{"", 1.0, 100, 900, 1000}}),
      candidate("hnsw", advisor_growth::logarithmic, 600,
                {{"ef=10", 0.80, 9000, 40, 50}, {"ef=64", 0.97, 5000, 80, 100}, {"ef=32", 0.96, 4000, 90, 120}}),
      candidate("ivf_pq", advisor_growth::square_root, 20, {{"nprobe=8", 0.90, 3000, 150, 200}})};
  const std::size_t rows = 10000;

  const advisor_report open = rank_candidates(measured, {.target_recall = 0.95}, rows, 128, 100);
  CHECK(open.exact_suffices);
  CHECK(open.ranked.front().index == "flat");

  const advisor_report fast = rank_candidates(measured, {.target_recall = 0.95, .p99_us = 500}, rows, 128, 100);
  REQUIRE(fast.found);
  CHECK(fast.ranked.front().index == "hnsw");
  CHECK(fast.ranked.front().point().search == "ef=64");
  CHECK(has(fast.argument, "Use hnsw: 600 B/vector"));

  // At 100x the rows hnsw's p99 grows by log (100 us -> 150 us), ivf_pq's by sqrt (200 -> 2000 us),
  // flat's linearly; the RAM budget admits only ivf_pq, which reaches 0.90 but not 0.95.
  const advisor_report tight =
      rank_candidates(measured, {.target_recall = 0.9, .ram_budget_bytes = 1e8, .plan_n = 1e6}, rows, 128, 100);
  REQUIRE(tight.found);
  CHECK(tight.ranked.front().index == "ivf_pq");
  CHECK(tight.ranked.front().planned_p99_us == Approx(2000));
  CHECK(by_name(tight, "hnsw").planned_p99_us == Approx(150));
  CHECK_FALSE(by_name(tight, "hnsw").meets_ram);
  const advisor_report none =
      rank_candidates(measured, {.target_recall = 0.95, .ram_budget_bytes = 1e8, .plan_n = 1e6}, rows, 128, 100);
  CHECK_FALSE(none.found);
  CHECK(has(none.relax, "lower the target recall to 0.900"));

  CHECK_THROWS_MATCHES(rank_candidates({}, {}, rows, 128, 100), invalid_argument, message_has("at least one candidate"));
  CHECK_THROWS_MATCHES(rank_candidates({candidate("flat", advisor_growth::linear, 512, {})}, {}, rows, 128, 100),
                       invalid_argument, message_has("no measured point"));
}
