// grace_period: lets readers use a published object without locks, and a
// writer wait until no reader can still be using the one it replaced
// (the scheme of sleepable RCU: two reader counts, flipped per replacement).
//
//   const grace_period::reader r(grace);        // reader: two atomic adds
//   const T& t = *published.load();              //   use t until r ends
//
//   old = published.exchange(next);              // writer, one at a time
//   grace.wait_for_readers();                    //   no reader still sees old
//   delete old;
//
// A reader counts itself in the count of the current parity, on a stripe
// chosen per thread (so threads on different cores do not share a cache
// line), and checks that the parity did not flip meanwhile. A writer flips
// the parity after publishing, then waits for the old parity's counts to
// reach zero: every reader that could have loaded the old object counted
// itself there before the flip. All operations are sequentially consistent,
// which the argument needs and ThreadSanitizer can follow.
//
// Threads: any number of readers; wait_for_readers() from one thread at a
// time (callers serialise their writers). A reader must not wait for
// readers (it would wait for itself).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>

namespace annulus {

class grace_period {
  static constexpr std::size_t stripes = 16;
  struct alignas(64) stripe {
    std::array<std::atomic<std::uint64_t>, 2> readers{};
  };

 public:
  class reader {
   public:
    explicit reader(const grace_period& grace) : stripe_(grace.stripes_[this_thread_stripe()]) {
      for (;;) {
        parity_ = grace.parity_.load();
        stripe_.readers[parity_].fetch_add(1);
        if (grace.parity_.load() == parity_) return;
        stripe_.readers[parity_].fetch_sub(1);  // a writer flipped meanwhile: count again in the new parity
      }
    }
    reader(const reader&) = delete;
    reader& operator=(const reader&) = delete;
    ~reader() { stripe_.readers[parity_].fetch_sub(1); }

   private:
    stripe& stripe_;
    unsigned parity_ = 0;
  };

  /// Returns once every reader that started before this call has ended.
  /// Polls: a yield at first, then sleeps of 50 us (a reader may be a long
  /// batch search).
  void wait_for_readers() const {
    const unsigned old = parity_.load();
    parity_.store(old ^ 1u);
    for (std::size_t polls = 0;; ++polls) {
      bool any = false;
      for (const stripe& s : stripes_) any = any || s.readers[old].load() != 0;
      if (!any) return;
      if (polls < 64)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

 private:
  static std::size_t this_thread_stripe() {
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t mine = next.fetch_add(1, std::memory_order_relaxed) % stripes;
    return mine;
  }

  mutable std::array<stripe, stripes> stripes_{};
  mutable std::atomic<unsigned> parity_{0};
};

}  // namespace annulus
