// How does tail latency grow when a query fans out to S shards and the
// answer waits for the slowest? Splits one clustered data set round-robin
// into S = 1, 2, 4, 8 hnsw_index<l2> shards and, per S, times every query
// three ways:
//   fan-out   each shard searched by its own thread, all at once, timed until
//             the slowest shard answers (S threads on this machine's cores:
//             oversubscribed once S exceeds them);
//   solo      each shard searched alone on the main thread, one after the
//             other, so a shard's time has no contention in it;
//   max solo  per query, the slowest shard's solo time: the fan-out latency
//             S machines would see (less the network), hard queries being
//             hard on every shard at once.
// and prints the model that extrapolates the tail to many machines: with S
// independent shards, P(max <= t) = F(t)^S, so p99 of the max is the
// single-shard quantile 1 - 0.01/S (exactly: 0.99^(1/S), within 0.05% of it).
// The model is checked against "max solo"; "fan-out" shows what one small
// machine adds (the cores bound: a query's S searches share `cores` cores).
// The data behind docs/scale.md.
//   g++ -std=c++20 -O3 -march=native -Iinclude -isystem /usr/include/eigen3
//       bench/shard_tail_bench.cpp -o shard_tail_bench -lpthread   (one line)
//   shard_tail_bench [n = 100000] [queries = 10000] [ef = 64]
#include <annulus/annulus.hpp>
#include <annulus/eval/synthetic.hpp>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <exception>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using index_type = annulus::hnsw_index<annulus::l2>;
constexpr std::size_t k = 10;

double micros(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

/// Nearest-rank quantile, as annulus-bench computes p50 and p99.
double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, std::size_t(q * double(v.size() - 1) + 0.5))];
}

/// Shards over a round-robin split: shard s holds rows s, s + S, s + 2S, ...
/// (global row = local label * S + s), built one after another on all cores.
std::vector<index_type> build_shards(const annulus::matrix<float>& data, std::size_t shards) {
  std::vector<index_type> out;
  out.reserve(shards);
  for (std::size_t s = 0; s < shards; ++s) {
    annulus::matrix<float> part((data.rows() - s + shards - 1) / shards, data.cols());
    for (std::size_t i = 0; i < part.rows(); ++i)
      std::copy_n(data.row(i * shards + s).data(), data.cols(), part.row(i).data());
    out.push_back(index_type::build(part, {.m = 16, .ef_construction = 200, .seed = 100}, 0));
  }
  return out;
}

/// Of the true k nearest, how many the shards' merged top k (global labels) holds.
std::size_t merged_hits(const std::vector<std::vector<annulus::neighbor>>& per_shard,
                        std::span<const annulus::neighbor> truth) {
  std::vector<annulus::neighbor> all;
  for (std::size_t s = 0; s < per_shard.size(); ++s)
    for (annulus::neighbor nb : per_shard[s]) {
      nb.label = nb.label * per_shard.size() + s;
      all.push_back(nb);
    }
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.distance < b.distance; });
  all.resize(std::min(all.size(), k));
  std::size_t hits = 0;
  for (const auto& t : truth)
    hits += std::any_of(all.begin(), all.end(), [&](auto& nb) { return nb.label == t.label; });
  return hits;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::size_t n = argc > 1 ? std::stoul(argv[1]) : 100000;
    const std::size_t nq = argc > 2 ? std::stoul(argv[2]) : 10000;
    const std::size_t ef = argc > 3 ? std::stoul(argv[3]) : 64;
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());

    // annulus-bench's default set: the same mixture and seed, queries from another stream.
    const annulus::gaussian_mixture mixture(128, {.clusters = 64, .norm_ratio = 8.0, .seed = 20240611});
    const auto data = mixture.sample(n, 1);
    const auto queries = mixture.sample(nq, 2);
    const auto truth = annulus::flat_index<annulus::l2>::build(data).search_batch(queries, k, {}, 0);
    std::printf("%zu x 128 (annulus-bench default mixture), %zu queries, hnsw m=16 ef_construction=200, "
                "ef=%zu, k=%zu, %u cores\n",
                n, nq, ef, k, cores);
    std::printf("latencies in microseconds; model = single-shard solo quantile 1 - 0.01/S\n");
    std::printf("%2s %7s %7s | %8s %8s | %8s %8s | %8s %8s %8s | %8s %8s %8s\n", "S", "rows", "recall",
                "solo_p50", "solo_p99", "max_p50", "max_p99", "model", "model_1", "bound", "fan_p50", "fan_p99",
                "fan/max");

    std::vector<double> solo_s1;  // S = 1's solo latencies: model_1 extrapolates from them alone
    for (const std::size_t shards : {1, 2, 4, 8}) {
      const auto index = build_shards(data, shards);
      std::vector<std::vector<annulus::neighbor>> out(shards, std::vector<annulus::neighbor>(k));

      // Solo: every shard alone on this thread. The first pass over a few
      // queries grows this thread's search scratch, so no timed search allocates.
      for (std::size_t q = 0; q < std::min<std::size_t>(nq, 100); ++q)
        for (std::size_t s = 0; s < shards; ++s) index[s].search(queries.row(q), k, {.ef = ef}, out[s]);
      std::vector<double> solo, max_solo(nq), bound(nq);
      for (std::size_t q = 0; q < nq; ++q) {
        double slowest = 0, total = 0;
        for (std::size_t s = 0; s < shards; ++s) {
          const auto t0 = clock_type::now();
          index[s].search(queries.row(q), k, {.ef = ef}, out[s]);
          const double us = micros(t0, clock_type::now());
          solo.push_back(us);
          slowest = std::max(slowest, us);
          total += us;
        }
        max_solo[q] = slowest;
        // What S searches on `cores` cores cannot beat, contention aside.
        bound[q] = std::max(slowest, total / double(std::min<std::size_t>(shards, cores)));
      }
      if (shards == 1) solo_s1 = solo;

      // Fan-out: one long-lived thread per shard, as a shard server would be
      // (starting threads per query would time thread creation). Two barriers
      // per query: `start` releases the workers on query `current`, `done`
      // hands back. Each worker notes when it answered; the query's latency
      // runs from the release to the last answer.
      std::size_t current = 0;
      bool stop = false;
      std::vector<clock_type::time_point> answered(shards);
      std::barrier start(std::ptrdiff_t(shards + 1)), done(std::ptrdiff_t(shards + 1));
      std::vector<std::thread> workers;
      for (std::size_t s = 0; s < shards; ++s)
        workers.emplace_back([&, s] {
          for (std::size_t q = 0; q < std::min<std::size_t>(nq, 100); ++q)  // grow this thread's scratch
            index[s].search(queries.row(q), k, {.ef = ef}, out[s]);
          for (;;) {
            start.arrive_and_wait();
            if (stop) return;
            index[s].search(queries.row(current), k, {.ef = ef}, out[s]);
            answered[s] = clock_type::now();
            done.arrive_and_wait();
          }
        });
      std::vector<double> fan(nq);
      std::size_t hits = 0;
      for (std::size_t q = 0; q < nq; ++q) {
        current = q;
        const auto t0 = clock_type::now();
        start.arrive_and_wait();
        done.arrive_and_wait();
        fan[q] = micros(t0, *std::max_element(answered.begin(), answered.end()));
        hits += merged_hits(out, truth[q]);
      }
      stop = true;
      start.arrive_and_wait();
      for (auto& w : workers) w.join();

      const double tail = 1 - 0.01 / double(shards);
      const double max_p99 = quantile(max_solo, 0.99), fan_p99 = quantile(fan, 0.99);
      std::printf("%2zu %7zu %7.4f | %8.0f %8.0f | %8.0f %8.0f | %8.0f %8.0f %8.0f | %8.0f %8.0f %8.2f\n", shards,
                  index[0].size(), double(hits) / double(nq * k), quantile(solo, 0.5), quantile(solo, 0.99),
                  quantile(max_solo, 0.5), max_p99, quantile(solo, tail), quantile(solo_s1, tail),
                  quantile(bound, 0.99), quantile(fan, 0.5), fan_p99, fan_p99 / max_p99);
    }
    std::printf(
        "solo: one shard alone (all S shards' times pooled); max: per query the slowest shard's solo time\n"
        "(S machines); model: solo's quantile 1 - 0.01/S, this S's shards; model_1: the same quantile of\n"
        "S = 1's solo times (shards 1/S the size are faster: an upper bound); bound: p99 of max(max solo,\n"
        "sum of solo / min(S, cores)); fan: S threads at once on this machine, until the slowest answers.\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shard_tail_bench: %s\n", e.what());
    return 2;
  }
}
