// The two costs issue 19 sets (a benchmark, not a timed test):
//   overhead  single-thread QPS of hnsw_index searched directly, through
//             live_index, and through monitored<live_index> sampling 1 in
//             1,000 queries; each path >= 2 s a round, rounds in rotated
//             order, medians and ratios;
//   compact   hnsw_index after 30% removals: compact() against a full
//             rebuild of the live vectors (time), and recall@10 at the same
//             ef of the compacted, the tombstoned and the fresh index.
// On Fashion-MNIST when --data DIR holds base.fvecs and query.fvecs
// (../shared/data/README.md), else "skipped: no data" for it; always on a
// synthetic clustered set (dim 32).
//   annulus-lifecycle-bench [--data DIR] [--threads T] [--rounds R]
#include <annulus/annulus.hpp>
#include <annulus/eval/synthetic.hpp>
#include <annulus/io/vecs.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using namespace annulus;
using clock_type = std::chrono::steady_clock;
using hnsw = hnsw_index<l2>;
constexpr std::size_t k = 10;

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// recall@k of `search` against exact results over `truth`.
template <class Search>
double recall(const result_matrix& truth, matrix_view<const float> queries, Search&& search) {
  double hits = 0;
  for (std::size_t q = 0; q < queries.rows(); ++q) {
    const std::vector<neighbor> got = search(queries.row(q));
    for (const neighbor& t : truth[q])
      for (const neighbor& g : got)
        if (g.label == t.label) ++hits;
  }
  return hits / double(queries.rows() * k);
}

void overhead(const char* name, const matrix<float>& base, const matrix<float>& queries, std::size_t ef,
              std::size_t threads, std::size_t rounds) {
  std::printf("\n### Search overhead: %s (%zu x %zu, %zu queries repeated for 2 s a path, ef %zu, one thread)\n\n", name, base.rows(),
              base.cols(), queries.rows(), ef);
  live_index<hnsw> live(hnsw::build(base.view(), {.m = 16, .ef_construction = 200}, threads));
  const hnsw& plain = *live.snapshot();  // the same index, searched directly
  std::vector<label_t> labels(base.rows());
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = label_t(i);
  monitored served(live, base.view(), std::span<const label_t>(labels), {.k = k, .sample_rate = 0.001});
  std::vector<neighbor> out(k);
  // Passes over the queries for at least 2 s: four of the monitor's
  // gathers (500 ms), so its scans run while the path is timed.
  auto qps = [&](auto&& one) {
    const auto t = clock_type::now();
    std::size_t done = 0;
    do {
      for (std::size_t q = 0; q < queries.rows(); ++q) one(queries.row(q));
      done += queries.rows();
    } while (seconds_since(t) < 2.0);
    return double(done) / seconds_since(t);
  };
  // Each round times the three paths in a rotated order (a drift in the
  // machine's speed then favours none), and lets the monitor's last checks
  // finish before the next path is timed (they run on another core, and
  // would slow whichever path came next).
  std::vector<double> direct, through_live, through_monitor, r_live, r_monitor;
  for (std::size_t r = 0; r < rounds; ++r) {
    double d = 0, l = 0, m = 0;
    for (std::size_t arm = 0; arm < 3; ++arm) {
      switch ((arm + r) % 3) {
        case 0: d = qps([&](std::span<const float> q) { plain.search(q, k, {.ef = ef}, out); }); break;
        case 1: l = qps([&](std::span<const float> q) { live.search(q, k, {.ef = ef}, out); }); break;
        default:
          m = qps([&](std::span<const float> q) { served.search(q, k, {.ef = ef}, out); });
          served.flush();
      }
    }
    direct.push_back(d);
    through_live.push_back(l);
    through_monitor.push_back(m);
    r_live.push_back(l / d);
    r_monitor.push_back(m / d);
  }
  served.flush();
  const recall_estimate e = served.estimate();
  std::printf("| path | QPS (median of %zu) | / direct (median of per-round ratios) |\n|---|---|---|\n", rounds);
  std::printf("| hnsw_index, direct | %.0f | 1.000 |\n", median(direct));
  std::printf("| live_index | %.0f | %.3f |\n", median(through_live), median(r_live));
  std::printf("| monitored<live_index>, 1/1000 sampled | %.0f | %.3f |\n\n", median(through_monitor),
              median(r_monitor));
  std::printf("monitor: %zu queries checked, estimate %.3f [%.3f, %.3f], %zu dropped\n", e.checked, e.recall, e.low,
              e.high, e.dropped);
}

void compaction(const char* name, const matrix<float>& base, const matrix<float>& queries, std::size_t ef,
                std::size_t threads) {
  std::printf("\n### compact() against a rebuild after 30%% removals: %s (m 16, ef_construction 200, ef %zu, "
              "%zu threads)\n\n",
              name, ef, threads);
  const hnsw::build_params params{.m = 16, .ef_construction = 200};
  hnsw idx = hnsw::build(base.view(), params, threads);
  std::vector<label_t> kept;
  for (std::size_t i = 0; i < base.rows(); ++i) {
    if (i % 10 < 3) idx.remove(label_t(i));
    else kept.push_back(label_t(i));
  }
  matrix<float> rows(kept.size(), base.cols());
  for (std::size_t i = 0; i < kept.size(); ++i) std::copy_n(base.row_ptr(kept[i]), base.cols(), rows.row_ptr(i));
  const flat_index<l2> exact = flat_index<l2>::build_with_labels(rows.view(), kept);
  const result_matrix truth = search_batch(exact, queries.view(), k, {}, threads);
  auto recall_of = [&](const hnsw& x) {
    return recall(truth, queries.view(), [&](std::span<const float> q) { return x.search(q, k, {.ef = ef}); });
  };
  const double tombstoned = recall_of(idx);
  const std::size_t held = idx.memory_bytes();
  auto t = clock_type::now();
  idx.compact(threads);
  const double compact_s = seconds_since(t);
  t = clock_type::now();
  const hnsw fresh = hnsw::build_with_labels(rows.view(), kept, params, threads);
  const double rebuild_s = seconds_since(t);
  const double compacted = recall_of(idx), rebuilt = recall_of(fresh);
  std::printf("| index | time s | recall@10 | memory MiB | unreachable live |\n|---|---|---|---|---|\n");
  std::printf("| tombstoned (30%% removed) | - | %.4f | %.1f | - |\n", tombstoned, held / 1048576.0);
  std::printf("| compact() | %.3f | %.4f | %.1f | %.0f |\n", compact_s, compacted, idx.memory_bytes() / 1048576.0,
              idx.health().figure("unreachable_live"));
  std::printf("| rebuild (build_with_labels) | %.3f | %.4f | %.1f | %.0f |\n\n", rebuild_s, rebuilt,
              fresh.memory_bytes() / 1048576.0, fresh.health().figure("unreachable_live"));
  std::printf("compact: %.1fx faster than the rebuild; recall %+.4f against the fresh build's\n",
              rebuild_s / compact_s, compacted - rebuilt);
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path data;
  std::size_t threads = 0, rounds = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--data" && i + 1 < argc) data = argv[++i];
    else if (a == "--threads" && i + 1 < argc) threads = std::strtoul(argv[++i], nullptr, 10);
    else if (a == "--rounds" && i + 1 < argc) rounds = std::max<std::size_t>(1, std::strtoul(argv[++i], nullptr, 10));
    else {
      std::fprintf(stderr, "usage: annulus-lifecycle-bench [--data DIR] [--threads T] [--rounds R]\n");
      return 2;
    }
  }
  std::printf("# annulus-lifecycle-bench (%s)\n", annulus::kernels::simd_target().describe().c_str());
  const gaussian_mixture mix(32, {.clusters = 32, .norm_ratio = 1, .seed = 5});
  const matrix<float> base = mix.sample(50000, 1), queries = mix.sample(2000, 2);
  overhead("synthetic", base, queries, 64, threads, rounds);
  compaction("synthetic", base, queries, 32, threads);
  if (!data.empty() && std::filesystem::exists(data / "base.fvecs") && std::filesystem::exists(data / "query.fvecs")) {
    const matrix<float> fb = read_fvecs(data / "base.fvecs"), fq = read_fvecs(data / "query.fvecs");
    const matrix<float> fq2(fq.view().rows_slice(0, 2000));
    overhead("Fashion-MNIST", fb, fq2, 32, threads, rounds);
    compaction("Fashion-MNIST", fb, fq2, 16, threads);
  } else {
    std::printf("\nFashion-MNIST: skipped: no data (--data DIR with base.fvecs and query.fvecs)\n");
  }
}
