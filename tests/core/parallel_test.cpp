#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "annulus/core/parallel.hpp"
#include "annulus/core/random.hpp"

using namespace annulus;

TEST_CASE("parallel_for visits every index once", "[parallel]") {
  for (std::size_t threads : {1u, 2u, 4u, 0u}) {
    for (std::size_t grain : {1u, 7u}) {
      std::vector<std::atomic<int>> seen(1001);
      std::atomic<std::size_t> max_worker{0};
      parallel_for(seen.size(), threads, [&](std::size_t i, std::size_t w) {
        seen[i].fetch_add(1);
        std::size_t m = max_worker.load();
        while (w > m && !max_worker.compare_exchange_weak(m, w)) {}
      }, grain);
      for (auto& s : seen) REQUIRE(s.load() == 1);
      REQUIRE(max_worker.load() < worker_count(seen.size(), threads, grain));
    }
  }
}

TEST_CASE("parallel_for rethrows a worker's exception after joining", "[parallel]") {
  std::atomic<int> ran{0};
  REQUIRE_THROWS_WITH(parallel_for(100, 2, [&](std::size_t i, std::size_t) {
    ++ran;
    if (i == 10) throw std::runtime_error("bad item 10");
  }), "bad item 10");
  CHECK(ran.load() <= 100);
  parallel_for(0, 2, [](std::size_t, std::size_t) { FAIL("no items"); });
}

TEST_CASE("random_generator is reproducible and roughly uniform", "[random]") {
  random_generator a(5), b(5), c(6), d(5, 1);
  CHECK(a() == b());
  CHECK(a() != c());
  CHECK(b() != d());
  double sum = 0, sq = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double x = a.normal();
    sum += x;
    sq += x * x;
  }
  CHECK(sum / n == Approx(0).margin(0.02));
  CHECK(sq / n == Approx(1).margin(0.02));
  for (int i = 0; i < 1000; ++i) REQUIRE(a.below(7) < 7);
}
