// Data drift on a served IVF-PQ index, seen and fixed while it serves:
// train on distribution A, stream in items from a shifted distribution B,
// watch recall fall through a sampling recall monitor and the health report
// say why, then rebuild (retrain) and watch recall come back.
//   cmake --build build/release --target drift_example && build/release/examples/drift_example
// --check: exit 1 unless recall fell, the health verdict named a cause, and the rebuild restored recall.
#include <annulus/annulus.hpp>
#include <annulus/eval/drift.hpp>
#include <annulus/eval/synthetic.hpp>
#include <annulus/index/live.hpp>

#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

using namespace annulus;

int main(int argc, char** argv) {
  const bool check = argc > 1 && std::string(argv[1]) == "--check";
  const std::size_t dim = 32, n = 10000, k = 10;

  // A and B: two mixtures with different centres; B also sits 3 units further along every axis.
  const gaussian_mixture A(dim, {.clusters = 32, .norm_ratio = 1, .seed = 11});
  const gaussian_mixture B(dim, {.clusters = 32, .norm_ratio = 1, .seed = 12});
  auto shift = [](matrix<float> m) {
    for (std::size_t i = 0; i < m.rows(); ++i)
      for (float& x : m.row(i)) x += 3.0f;
    return m;
  };
  const matrix<float> a = A.sample(n, 1), b = shift(B.sample(n / 2, 2));

  // keep_vectors: rebuild() retrains from the stored floats, and refine_factor re-ranks with them.
  const ivf_pq_index<l2>::build_params params{.nlist = 32, .m = 16, .keep_vectors = true};
  const ivf_pq_index<l2>::search_params search{.nprobe = 4, .refine_factor = 2};
  live_index<ivf_pq_index<l2>> live(ivf_pq_index<l2>::build(a.view(), params));

  // The monitor keeps an exact copy of the items and checks a sample of the
  // searches against it on its own thread; the wrapper feeds it.
  std::vector<label_t> labels(n);
  std::iota(labels.begin(), labels.end(), label_t{0});
  monitored served(live, a.view(), labels,
                   {.k = k, .sample_rate = 0.25, .window = 200, .alert_below = 0.85, .min_samples = 100,
                    .on_alert = [](const recall_estimate& e) {
                      std::printf("  ALERT from the monitor: recall %.2f, at most %.2f\n", e.recall, e.high);
                    }});

  // Serve 2000 queries, half like A and half like B (where the new items come from), and report.
  const matrix<float> qa = A.sample(1000, 3), qb = shift(B.sample(1000, 4));
  auto serve_and_report = [&](const char* when) {
    for (std::size_t i = 0; i < 1000; ++i) {
      served.search(qa.row(i), k, search);
      served.search(qb.row(i), k, search);
    }
    served.flush();  // wait for the monitor to check what was sampled
    const recall_estimate e = served.estimate();
    const health_report h = live.snapshot()->health();
    std::printf("%s: %zu items; monitor says recall@%zu %.3f [%.3f, %.3f]\n", when, live.size(), k, e.recall, e.low,
                e.high);
    std::printf("  scan_cost_ratio %.2f  pq_error_ratio %.2f  verdict: %s\n", h.figure("scan_cost_ratio"),
                h.figure("pq_error_ratio"), h.verdict.c_str());
    return std::pair{e.recall, h.verdict};
  };

  const double at_start = serve_and_report("trained on A").first;

  // Stream B in, in batches, as a service would.
  std::vector<label_t> b_labels(b.rows());
  std::iota(b_labels.begin(), b_labels.end(), label_t(n));
  for (std::size_t first = 0; first < b.rows(); first += 1000)
    served.add(b.view().rows_slice(first, 1000), std::span(b_labels).subspan(first, 1000));
  const auto [drifted, verdict] = serve_and_report("after B streamed in");

  // Retrain on everything held now; searches could go on from other threads meanwhile.
  live.rebuild(params);
  const double rebuilt = serve_and_report("after rebuild()").first;

  if (check && !(drifted < at_start - 0.05 && verdict != "healthy" && rebuilt > drifted + 0.05)) {
    std::printf("check failed: recall %.3f -> %.3f -> %.3f, verdict '%s'\n", at_start, drifted, rebuilt,
                verdict.c_str());
    return 1;
  }
}
