// recall_monitor and monitored: the sampled estimate against recall measured
// directly, the alert, the mirror kept in step, the queue's drops and stale
// samples, the sampling rate, and searches on threads beside a writer (the
// [threads] cases, for ThreadSanitizer).
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <future>
#include <limits>
#include <thread>
#include <vector>

#include "annulus/eval/drift.hpp"
#include "annulus/eval/recall.hpp"
#include "annulus/index/flat.hpp"
#include "annulus/index/hnsw.hpp"
#include "support/data.hpp"
#include "support/matchers.hpp"

using namespace annulus;
using annulus::testing::message_has;

namespace {

constexpr std::size_t dim = 16;

// Waits (up to a minute, so a broken monitor fails instead of hanging) for `flag`.
void wait_for(const std::atomic<bool>& flag) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (!flag.load() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  REQUIRE(flag.load());
}

}  // namespace

TEST_CASE("recall_monitor: bad options and inputs are refused, naming the values", "[drift]") {
  using monitor = recall_monitor<l2>;
  CHECK_THROWS_MATCHES(monitor(dim, {.k = 0}), invalid_argument, message_has("k must be at least 1, got 0"));
  CHECK_THROWS_MATCHES(monitor(dim, {.sample_rate = 0}), invalid_argument,
                       message_has("sample_rate must be in (0, 1], got 0.0"));
  CHECK_THROWS_MATCHES(monitor(dim, {.sample_rate = 1.5}), invalid_argument, message_has("got 1.5"));
  CHECK_THROWS_AS(monitor(dim, {.sample_rate = std::nan("")}), invalid_argument);
  CHECK_THROWS_MATCHES(monitor(dim, {.window = 0}), invalid_argument, message_has("window must be at least 1"));
  CHECK_THROWS_MATCHES(monitor(dim, {.max_pending = 0}), invalid_argument, message_has("max_pending"));
  CHECK_THROWS_MATCHES(monitor(dim, {.gather = std::chrono::milliseconds(-1)}), invalid_argument,
                       message_has("gather must be at least 0 ms, got -1"));
  CHECK_THROWS_MATCHES(monitor(dim, {.alert_below = 1.5}), invalid_argument, message_has("alert_below"));
  CHECK_THROWS_MATCHES(monitor(dim, {.window = 50, .alert_below = 0.9, .min_samples = 100}), invalid_argument,
                       message_has("min_samples 100 exceeds window 50"));
  CHECK_NOTHROW(monitor(dim, {.window = 50, .min_samples = 100}));  // no alert: min_samples unused
  CHECK_THROWS_MATCHES(monitor(0), invalid_argument, message_has("dimension must be at least 1, got 0"));

  const matrix<float> base = annulus::testing::clustered(50, dim, 4, 1);
  monitor m(base.view(), {}, {.sample_rate = 1});
  CHECK(m.size() == 50);
  const std::vector<float> short_query(dim - 1, 0.5f);
  const std::vector<neighbor> none;
  CHECK_THROWS_MATCHES(m.observe(short_query, none), dimension_mismatch,
                       message_has("query has 15 dimensions, the monitor has 16"));
  CHECK_THROWS_MATCHES(m.observe(base.row(0), none, 0), invalid_argument, message_has("k must be at least 1"));
  const label_t one = 7;
  CHECK_THROWS_MATCHES(m.added(base.view().rows_slice(0, 2), std::span(&one, 1)), invalid_argument,
                       message_has("1 labels for 2 rows"));
  CHECK_THROWS_AS(m.added(base.row(0), label_t(3)), invalid_argument);  // present already
  CHECK_THROWS_AS(m.added(short_query, label_t(500)), dimension_mismatch);
  CHECK_THROWS_MATCHES(m.removed(999), invalid_argument, message_has("label 999 is not in the monitor"));
  CHECK_THROWS_MATCHES(m.updated(999, base.row(0)), invalid_argument, message_has("label 999"));
  CHECK(m.size() == 50);
  CHECK_THROWS_AS(monitor(base.view(), std::vector<label_t>(3, 0), {}), invalid_argument);

  flat_index<l2> served = flat_index<l2>::build(base.view());
  monitored wrapped(served, {.sample_rate = 1});
  CHECK_THROWS_MATCHES(wrapped.add(base.view().rows_slice(0, 1), {}), invalid_argument,
                       message_has("0 labels for 1 rows"));
  CHECK_THROWS_MATCHES(wrapped.remove(999), invalid_argument, message_has("label 999"));
  const matrix<float> wide(3, dim + 1);
  CHECK_THROWS_MATCHES(monitored(served, wide.view(), {}, {}), dimension_mismatch,
                       message_has("data has 17 dimensions, the index has 16"));
  CHECK(served.size() == 50);
}

TEST_CASE("recall_monitor: every query sampled over a flat index measures recall 1", "[drift]") {
  const matrix<float> base = annulus::testing::clustered(2000, dim, 8, 3);
  const matrix<float> queries = annulus::testing::clustered(300, dim, 8, 4);

  SECTION("l2, mirror read from the index") {
    flat_index<l2> served = flat_index<l2>::build(base.view());
    monitored wrapped(served, {.sample_rate = 1, .window = 1000, .max_pending = 512});
    for (std::size_t i = 0; i < queries.rows(); ++i) REQUIRE(wrapped.search(queries.row(i), 10).size() == 10);
    wrapped.flush();
    const recall_estimate e = wrapped.estimate();
    CHECK(e.recall == 1.0);
    CHECK(e.samples == 300);
    CHECK(e.checked == 300);
    CHECK(e.dropped == 0);
    CHECK(e.stale == 0);
    CHECK(e.high == 1.0);
    // Not a point: 300 perfect queries bound recall, they do not prove 1.
    CHECK(e.low < 1.0);
    CHECK(e.low > 0.99);
  }
  SECTION("cosine, mirror read from the index's normalised vectors") {
    flat_index<cosine> served = flat_index<cosine>::build(base.view());
    monitored wrapped(served, {.sample_rate = 1, .max_pending = 512});
    std::vector<neighbor> out(10);
    for (std::size_t i = 0; i < queries.rows(); ++i)
      REQUIRE(wrapped.search(queries.row(i), 10, {}, std::span(out)) == 10);
    wrapped.flush();
    CHECK(wrapped.estimate().recall == 1.0);
    CHECK(wrapped.estimate().checked == 300);
  }
  SECTION("batch searches are observed row by row") {
    flat_index<l2> served = flat_index<l2>::build(base.view());
    monitored wrapped(served, base.view(), {}, {.sample_rate = 1, .max_pending = 512});
    const result_matrix r = wrapped.search_batch(queries.view(), 10, {}, 1);
    REQUIRE(r.size() == 300);
    wrapped.flush();
    CHECK(wrapped.estimate().recall == 1.0);
    CHECK(wrapped.estimate().checked == 300);
  }
}

TEST_CASE("recall_monitor: the estimate over hnsw is the recall measured directly", "[drift]") {
  const matrix<float> base = annulus::testing::clustered(4000, dim, 8, 1);
  const matrix<float> queries = annulus::testing::clustered(2000, dim, 8, 2);
  hnsw_index<l2> served = hnsw_index<l2>::build(base.view(), {.m = 8, .ef_construction = 40}, 1);
  const hnsw_index<l2>::search_params params{.ef = 16};  // about 0.93: far from 1, so a wrong truth shows
  const result_matrix exact = flat_index<l2>::build(base.view()).search_batch(queries.view(), 10, {}, 1);
  const result_matrix direct = served.search_batch(queries.view(), 10, params, 1);
  const double truth = recall_at_k(direct, exact, 10);
  REQUIRE(truth > 0.85);
  REQUIRE(truth < 0.97);

  SECTION("every query: the same number") {
    monitored wrapped(served, {.sample_rate = 1, .window = 2000, .max_pending = 2048});
    for (std::size_t i = 0; i < queries.rows(); ++i) wrapped.search(queries.row(i), 10, params);
    wrapped.flush();
    const recall_estimate e = wrapped.estimate();
    CHECK(e.samples == 2000);
    CHECK(e.recall == Approx(truth).margin(1e-12));
    CHECK(e.low < truth);
    CHECK(e.high > truth);
    CHECK(e.high - e.low < 0.03);
  }
  SECTION("one query in five: the true recall within the interval") {
    monitored wrapped(served, {.k = 10, .sample_rate = 0.2, .window = 2000, .max_pending = 2048, .seed = 11});
    for (std::size_t i = 0; i < queries.rows(); ++i) wrapped.search(queries.row(i), 10, params);
    wrapped.flush();
    const recall_estimate e = wrapped.estimate();
    // 400 expected, binomial standard deviation 18.
    CHECK(e.samples > 300);
    CHECK(e.samples < 500);
    CHECK(e.checked == e.samples);
    CHECK(e.low <= truth);
    CHECK(e.high >= truth);
    CHECK(std::abs(e.recall - truth) < 0.03);
    CHECK(e.high - e.low < 0.06);
  }
  SECTION("a search asked for 5 is measured at 5") {
    monitored wrapped(served, {.sample_rate = 1, .window = 2000, .max_pending = 2048});
    const result_matrix five = served.search_batch(queries.view(), 5, params, 1);
    for (std::size_t i = 0; i < queries.rows(); ++i) wrapped.search(queries.row(i), 5, params);
    wrapped.flush();
    CHECK(wrapped.estimate().recall == Approx(recall_at_k(five, exact, 5)).margin(1e-12));
  }
}

TEST_CASE("recall_monitor: a fall below the target alerts once, and again after recovering", "[drift]") {
  const matrix<float> base = annulus::testing::clustered(4000, dim, 8, 1);
  const matrix<float> queries = annulus::testing::clustered(300, dim, 8, 2);
  hnsw_index<l2> served = hnsw_index<l2>::build(base.view(), {.m = 8, .ef_construction = 40}, 1);
  std::atomic<int> alerts{0};
  recall_estimate last;
  monitored wrapped(served, {.sample_rate = 1, .window = 100, .alert_below = 0.95, .min_samples = 50,
                             .max_pending = 512, .on_alert = [&](const recall_estimate& e) {
                               last = e;
                               ++alerts;
                             }});
  // ef 64 gives about 0.995, ef 10 about 0.86 (measured on this data).
  // Each search is checked before the next, so the alert is weighed after every sample.
  auto phase = [&](std::size_t ef) {
    for (std::size_t i = 0; i < queries.rows(); ++i) {
      wrapped.search(queries.row(i), 10, {.ef = ef});
      wrapped.flush();
    }
  };
  phase(64);
  CHECK(alerts == 0);
  CHECK(wrapped.estimate().recall > 0.97);

  phase(10);
  CHECK(alerts == 1);
  const recall_estimate bad = wrapped.estimate();
  CHECK(bad.recall < 0.92);
  CHECK(bad.high < 0.95);
  CHECK(last.high < 0.95);  // the estimate the callback saw
  CHECK(last.samples >= 50);
  CHECK(last.checked > 300);

  phase(64);
  CHECK(alerts == 1);  // recovering re-arms, it does not alert
  CHECK(wrapped.estimate().recall > 0.97);

  phase(10);
  CHECK(alerts == 2);
}

TEST_CASE("recall_monitor: removed and updated vectors leave the truth", "[drift]") {
  const matrix<float> base = annulus::testing::clustered(1000, dim, 4, 5);
  flat_index<l2> served = flat_index<l2>::build(base.view());
  monitored wrapped(served, {.sample_rate = 1, .max_pending = 512});
  // Told nothing: its truth still holds what was removed.
  recall_monitor<l2> uninformed(base.view(), {}, {.sample_rate = 1, .max_pending = 512});

  for (label_t l = 0; l < 100; ++l) wrapped.remove(l);
  CHECK(wrapped.monitor().size() == 900);
  CHECK_FALSE(wrapped.monitor().contains(5));
  // Each removed vector as a query: were it still in the truth, it would be
  // its own nearest neighbour and every search would miss it.
  for (std::size_t i = 0; i < 100; ++i) {
    const std::vector<neighbor> hits = wrapped.search(base.row(i), 10);
    uninformed.observe(base.row(i), hits);
  }
  // The samples above are checked before the update below: an update within
  // the queue's latency biases the truth (documented), which is not what this tests.
  wrapped.flush();
  // Label 500 moves next to removed row 0's vector, which as a query now finds it first.
  std::vector<float> moved(base.row(0).begin(), base.row(0).end());
  moved[0] += 0.01f;
  wrapped.update(500, moved);
  REQUIRE(wrapped.search(base.row(0), 10).front().label == 500);

  wrapped.flush();
  uninformed.flush();
  CHECK(wrapped.estimate().recall == 1.0);
  CHECK(wrapped.estimate().checked == 101);
  CHECK(wrapped.estimate().stale == 0);
  CHECK(uninformed.estimate().recall <= 0.9);

  // Added back under new labels: found again, and in the truth.
  wrapped.add(base.view().rows_slice(0, 10), std::vector<label_t>{2000, 2001, 2002, 2003, 2004, 2005, 2006, 2007,
                                                                  2008, 2009});
  CHECK(wrapped.monitor().size() == 910);
  REQUIRE(wrapped.search(base.row(3), 10).front().label == 2003);
  wrapped.flush();
  CHECK(wrapped.estimate().recall == 1.0);
}

TEST_CASE("recall_monitor: a full queue drops and counts; a label removed meanwhile sets its sample aside",
          "[drift]") {
  const matrix<float> base = annulus::testing::clustered(500, dim, 4, 6);
  flat_index<l2> served = flat_index<l2>::build(base.view());
  std::atomic<bool> entered{false};
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> alerts{0};
  // The first sample (no results: recall 0) alerts, and the callback holds
  // the worker until the test lets it go: meanwhile the queue fills.
  recall_monitor<l2> m(base.view(), {}, {.sample_rate = 1, .window = 100, .alert_below = 1, .min_samples = 1,
                                         .max_pending = 8, .on_alert = [&](const recall_estimate&) {
                                           ++alerts;
                                           entered = true;
                                           released.wait();
                                         }});
  m.observe(base.row(0), std::vector<neighbor>{});
  wait_for(entered);

  // Slot 1: results that name label 42, then 42 is removed before the worker sees them.
  const std::vector<neighbor> near_42 = served.search(base.row(42), 10);
  REQUIRE(near_42.front().label == 42);
  m.observe(base.row(42), near_42);
  served.remove(42);
  m.removed(42);
  // Seven more fill the queue's eight slots; five more are dropped.
  for (std::size_t i = 100; i < 112; ++i) m.observe(base.row(i), served.search(base.row(i), 10));
  CHECK(m.estimate().dropped == 5);
  CHECK(m.estimate().checked == 1);

  release.set_value();
  m.flush();
  const recall_estimate e = m.estimate();
  CHECK(e.checked == 8);  // the first, then seven of the eight queued
  CHECK(e.stale == 1);
  CHECK(e.dropped == 5);
  CHECK(e.samples == 8);
  CHECK(e.recall == Approx(7.0 / 8));  // 0 once, 1 seven times
  CHECK(alerts == 1);

  // Without a removal since, a label the mirror lacks is the index's error: a miss, not stale.
  std::vector<neighbor> wrong = served.search(base.row(200), 10);
  wrong.back().label = 424242;
  m.observe(base.row(200), wrong);
  m.flush();
  CHECK(m.estimate().stale == 1);
  CHECK(m.estimate().checked == 9);
  CHECK(m.estimate().recall == Approx((7 + 0.9) / 9));
}

TEST_CASE("recall_monitor: queries are sampled at the rate asked, the same with the same seed", "[drift]") {
  const matrix<float> base = annulus::testing::clustered(200, dim, 4, 7);
  flat_index<l2> served = flat_index<l2>::build(base.view());
  const std::vector<neighbor> hits = served.search(base.row(0), 10);
  auto sampled = [&](double rate, std::uint64_t seed) {
    recall_monitor<l2> m(served, {.sample_rate = rate, .window = 100000, .max_pending = 100000, .seed = seed});
    for (std::size_t i = 0; i < 100000; ++i) m.observe(base.row(0), hits);
    m.flush();
    const recall_estimate e = m.estimate();
    CHECK(e.dropped == 0);
    CHECK(e.recall == 1.0);
    return e.checked;
  };
  // 1000 expected, standard deviation 31.6.
  const std::size_t a = sampled(0.01, 1);
  CHECK(a > 850);
  CHECK(a < 1150);
  CHECK(sampled(0.01, 1) == a);
  const std::size_t b = sampled(0.001, 2);  // 100 expected, sd 10
  CHECK(b > 50);
  CHECK(b < 150);
  CHECK(sampled(1, 3) == 100000);
}

TEST_CASE("recall_monitor: observes on threads, a tiny queue: every sample checked or dropped, none torn",
          "[drift][threads]") {
  const matrix<float> base = annulus::testing::clustered(300, dim, 4, 8);
  const matrix<float> queries = annulus::testing::clustered(64, dim, 4, 9);
  flat_index<l2> served = flat_index<l2>::build(base.view());
  const result_matrix exact = served.search_batch(queries.view(), 10, {}, 1);
  recall_monitor<l2> m(served, {.sample_rate = 1, .window = 100000, .max_pending = 4});
  constexpr std::size_t per_thread = 3000;
  auto observer = [&](std::size_t first) {
    for (std::size_t i = 0; i < per_thread; ++i) {
      const std::size_t q = (first + i) % queries.rows();
      m.observe(queries.row(q), exact[q]);
    }
  };
  std::thread a(observer, 0), b(observer, 17);
  a.join();
  b.join();
  m.flush();
  const recall_estimate e = m.estimate();
  CHECK(e.checked + e.dropped == 2 * per_thread);
  CHECK(e.checked > 0);
  CHECK(e.stale == 0);
  CHECK(e.recall == 1.0);  // a query or labels torn by a racing producer would miss
}

TEST_CASE("monitored: searches on two threads beside adds and removes", "[drift][threads]") {
  constexpr std::size_t n = 1500, extra = 300;
  const matrix<float> all = annulus::testing::clustered(n + extra, dim, 6, 10);
  hnsw_index<l2> served = hnsw_index<l2>::build(all.view().rows_slice(0, n), {.m = 8}, 1);
  monitored wrapped(served, {.sample_rate = 0.2, .window = 500, .max_pending = 16});
  std::atomic<bool> done{false};
  std::atomic<std::size_t> searches{0}, errors{0};
  auto searcher = [&](std::size_t seed) {
    for (std::size_t i = seed; !done.load(); i += 7) {
      try {
        if (wrapped.search(all.row(i % (n + extra)), 10, {.ef = 64}).size() != 10) ++errors;
      } catch (...) {
        ++errors;
      }
      ++searches;
    }
  };
  std::thread a(searcher, 0), b(searcher, 3);
  for (std::size_t i = n; i < n + extra; ++i) {
    wrapped.add(all.row(i), label_t(i));
    if (i % 3 == 0) wrapped.remove(label_t(i - n));
    if (i % 50 == 0) (void)wrapped.estimate();
  }
  // Enough samples checked, however loaded the machine (the worker competes
  // with the searchers for cores, and a 16-slot queue drops while it waits).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (wrapped.estimate().checked < 200 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  done = true;
  a.join();
  b.join();
  wrapped.flush();
  CHECK(errors == 0);
  CHECK(wrapped.monitor().size() == served.size());
  for (std::size_t i = n; i < n + extra; i += 3) CHECK_FALSE(wrapped.monitor().contains(label_t(i - n)));
  const recall_estimate e = wrapped.estimate();
  CHECK(e.checked >= 200);
  CHECK(e.samples <= 500);
  CHECK(searches > 0);
  CHECK(e.recall > 0.9);  // ef 64 on this data is above 0.98; a wrong truth would be far below
}

TEST_CASE("recall_monitor gathers samples for one scan; flush and the destructor do not wait the gather out",
          "[drift][threads]") {
  const matrix<float> base = annulus::testing::clustered(500, dim, 4, 5);
  const flat_index<l2> served = flat_index<l2>::build(base.view());
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  {
    recall_monitor<l2> monitor(base.view(), {}, {.sample_rate = 1, .gather = std::chrono::minutes(1)});
    for (std::size_t q = 0; q < 5; ++q) monitor.observe(base.row(q), served.search(base.row(q), 10));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(monitor.estimate().checked == 0);  // still gathering: a minute
    const auto t = clock::now();
    monitor.flush();  // checks what is queued now
    CHECK(clock::now() - t < std::chrono::seconds(30));
    CHECK(monitor.estimate().checked == 5);
    CHECK(monitor.estimate().recall == 1.0);
    monitor.observe(base.row(9), served.search(base.row(9), 10));
  }  // the destructor stops a gather under way
  CHECK(clock::now() - start < std::chrono::seconds(50));
  recall_monitor<l2> eager(base.view(), {}, {.sample_rate = 1, .gather = std::chrono::milliseconds(0)});
  eager.observe(base.row(0), served.search(base.row(0), 10));
  const auto deadline = clock::now() + std::chrono::minutes(1);
  while (eager.estimate().checked == 0 && clock::now() < deadline) std::this_thread::yield();
  CHECK(eager.estimate().checked == 1);  // checked without a flush
}
