#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "annulus/core/grace.hpp"

using namespace annulus;
using namespace std::chrono_literals;

TEST_CASE("grace_period waits for a reader that started before it, not for later ones", "[threads][grace]") {
  grace_period grace;
  std::atomic<int> stage{0};
  std::thread early([&] {
    const grace_period::reader r(grace);
    stage.store(1);
    while (stage.load() < 2) std::this_thread::sleep_for(1ms);
  });
  while (stage.load() < 1) std::this_thread::yield();

  std::atomic<bool> waited{false};
  std::thread writer([&] {
    grace.wait_for_readers();
    waited.store(true);
  });
  // A reader that starts after the wait began does not hold it up.
  std::this_thread::sleep_for(20ms);
  { const grace_period::reader late(grace); }
  std::this_thread::sleep_for(30ms);
  CHECK_FALSE(waited.load());  // the early reader is still in

  stage.store(2);
  early.join();
  writer.join();
  CHECK(waited.load());
  grace.wait_for_readers();  // no reader: returns at once
}

TEST_CASE("grace_period: nothing a reader loaded is freed under it", "[threads][grace]") {
  // A writer publishes a fresh object, waits, then frees the old one; readers
  // check the object they loaded is intact for as long as they use it.
  struct payload {
    std::vector<int> values = std::vector<int>(64, 7);
  };
  grace_period grace;
  std::atomic<payload*> published{new payload};
  std::atomic<bool> stop{false};
  std::atomic<long> bad{0}, reads{0};
  auto read_loop = [&] {
    while (!stop.load()) {
      const grace_period::reader r(grace);
      const payload* p = published.load();
      for (int v : p->values) bad.fetch_add(v != 7 ? 1 : 0, std::memory_order_relaxed);
      reads.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::thread a(read_loop), b(read_loop);
  // Swaps until there were 500 and the readers read 2,000 times (a loaded
  // machine may start them late), or a minute passed.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  for (int swap = 0; (swap < 500 || reads.load() < 2000) && std::chrono::steady_clock::now() < deadline; ++swap) {
    payload* old = published.exchange(new payload);
    grace.wait_for_readers();
    old->values.assign(64, -1);  // what a reader would see if it were still inside
    delete old;
  }
  stop.store(true);
  a.join();
  b.join();
  delete published.load();
  CHECK(bad.load() == 0);
  CHECK(reads.load() >= 2000);
}
