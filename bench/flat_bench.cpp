// annulus-flat-bench: exact k-NN search, annulus flat_index against FAISS
// IndexFlatL2 (l2) / IndexFlatIP (ip, and cosine on normalised copies), next
// to the machine's single-thread streaming read bandwidth: one query at a time
// reads the whole base matrix, so that bandwidth bounds single-query QPS.
//   annulus-flat-bench --data /tmp/fmnist --threads 2
// Every figure is the median of --repeat runs; annulus and FAISS runs alternate
// so that a slow spell on a shared machine hits both.
#include <annulus/annulus.hpp>

#include <CLI/CLI.hpp>

#include "annulus_bench/dataset.hpp"
#include "annulus_bench/peer_threads.hpp"
#include "annulus_bench/results.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifdef ANNULUS_HAVE_FAISS
#include <faiss/IndexFlat.h>
#include <faiss/utils/distances.h>
#include <faiss/utils/utils.h>
constexpr bool have_faiss = true;
#else
constexpr bool have_faiss = false;
#endif

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

struct options {
  std::string data;
  std::string metric = "l2";
  std::size_t k = 10, threads = 0, single = 300, repeat = 3;
};

struct dataset {
  std::string source;
  annulus::matrix<float> base, queries;
  std::optional<annulus::matrix<std::int32_t>> truth;  // exact, under the metric searched
  std::optional<annulus::matrix<float>> truth_dist;
};

// The data through annulus-bench's loader: the same embedded default, texmex
// directories and HDF5 files, and exact ground truth for the chosen metric.
dataset load(const std::string& path, const std::string& metric, std::size_t k) {
  annulus::bench::dataset_request req;
  req.path = path;
  req.metric = annulus::bench::parse_metric(metric);
  req.k = k;
  annulus::bench::dataset d = annulus::bench::load_dataset(req);
  return {path.empty() ? "annulus-bench's embedded default (" + d.name + ")" : d.name,
          std::move(d.base), std::move(d.queries), std::move(d.truth), std::move(d.truth_dist)};
}

// Wall times of repeated runs of one measurement; reports the median.
struct timer {
  std::vector<double> samples;
  template <class F>
  void run(F&& f) {
    // Let another library's spinning worker threads (OpenMP, OpenBLAS) go to
    // sleep first: on a 2-core machine they would steal a core from this run.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto start = clock_type::now();
    f();
    samples.push_back(std::chrono::duration<double>(clock_type::now() - start).count());
  }
  double min() const { return *std::min_element(samples.begin(), samples.end()); }
  double median() const { return annulus::bench::median(samples); }  // 0: never run (no FAISS)
};

// Sums every float once. 32 independent accumulators let the compiler
// vectorise without -ffast-math (no reassociation needed) and keep add latency
// off the critical path, so memory is the limit. The caller stores the result
// in a volatile, so the loop cannot be dropped.
float stream_sum(const float* p, std::size_t n) {
  constexpr std::size_t lanes = 32;
  float acc[lanes] = {};
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    for (std::size_t j = 0; j < lanes; ++j) acc[j] += p[i + j];
  float s = 0;
  for (float a : acc) s += a;
  for (; i < n; ++i) s += p[i];
  return s;
}

// Labels of each row as a recall reference (-1 where a row is short).
annulus::matrix<std::int32_t> ids_of(const annulus::result_matrix& r) {
  annulus::matrix<std::int32_t> m(r.size(), r.k());
  std::fill_n(m.data(), m.size(), -1);
  for (std::size_t q = 0; q < r.size(); ++q)
    for (std::size_t j = 0; j < r[q].size(); ++j) m(q, j) = std::int32_t(r[q][j].label);
  return m;
}

#ifdef ANNULUS_HAVE_FAISS
using faiss_id = decltype(faiss::Index::ntotal);  // Index::idx_t in 1.7, faiss::idx_t later

// Threads for FAISS: OpenMP (its own loops) and OpenBLAS (its sgemm). Returns
// OpenBLAS's own count afterwards (-1 without OpenBLAS), to show it was respected.
int faiss_threads(std::size_t t) {
  annulus::bench::pin_peer_threads(t);
  return annulus::bench::peer_blas_threads();
}
annulus::result_matrix from_faiss(const std::vector<faiss_id>& ids, std::size_t nq, std::size_t k) {
  annulus::result_matrix r(nq, k);
  for (std::size_t q = 0; q < nq; ++q) {
    std::size_t n = 0;
    for (std::size_t j = 0; j < k; ++j)
      if (ids[q * k + j] >= 0) r.row_storage(q)[n++].label = annulus::label_t(ids[q * k + j]);
    r.set_count(q, n);
  }
  return r;
}
#endif

template <class Metric>
void run(const options& o, const dataset& ds) {
  const std::size_t n = ds.base.rows(), d = ds.base.cols(), nq = ds.queries.rows(), k = o.k;
  const std::size_t single = std::min(o.single, nq);
  const std::size_t threads = annulus::resolve_threads(o.threads);
  const double scan_gb = double(n) * double(d) * sizeof(float) / 1e9;  // read by one query
  std::printf("data:    %s\n         base %zu x %zu (%.1f MB), %zu queries, k = %zu, metric %s\n",
              ds.source.c_str(), n, d, scan_gb * 1e3, nq, k, o.metric.c_str());
  std::printf("annulus: SIMD target %s; batch threads %zu; single queries %zu; medians of %zu runs\n",
              annulus::kernels::simd_target().describe().c_str(), threads, single, o.repeat);

  auto t0 = clock_type::now();
  const auto idx = annulus::flat_index<Metric>::build(ds.base);
  const double build = std::chrono::duration<double>(clock_type::now() - t0).count();
  annulus::result_matrix single_res(single, k), batch_res;
  timer stream, a_single, a_batch, f_single, f_batch;
  double f_build = 0;
  int blas_single = 0, blas_batch = 0;
  constexpr std::size_t stream_passes = 10;
  volatile float sink = 0;  // the streaming sums land here, so they cannot be dropped

#ifdef ANNULUS_HAVE_FAISS
  std::printf("FAISS:   compile options '%s'; BLAS %s\n", faiss::get_compile_options().c_str(),
              annulus::bench::blas_description().c_str());
  // Cosine: FAISS has no such metric; inner product on unit vectors is it.
  // Normalising the base counts as FAISS build time, as it does for annulus.
  const bool unit = Metric::kind == annulus::metric_kind::cosine;
  annulus::matrix<float> unit_queries = unit ? ds.queries : annulus::matrix<float>(), unit_base;
  if (unit) faiss::fvec_renorm_L2(d, nq, unit_queries.data());
  const float* fq = unit ? unit_queries.data() : ds.queries.data();
  t0 = clock_type::now();
  std::unique_ptr<faiss::IndexFlat> fidx;
  if (Metric::kind == annulus::metric_kind::l2) fidx = std::make_unique<faiss::IndexFlatL2>(d);
  else fidx = std::make_unique<faiss::IndexFlatIP>(d);
  if (unit) unit_base = ds.base, faiss::fvec_renorm_L2(d, n, unit_base.data());
  fidx->add(faiss_id(n), unit ? unit_base.data() : ds.base.data());
  f_build = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::vector<faiss_id> fs_ids(single * k), fb_ids(nq * k);
  std::vector<float> fs_dist(single * k), fb_dist(nq * k);
#endif

  for (std::size_t r = 0; r < o.repeat; ++r) {
    // The index's own copy, the very memory a single query streams through;
    // several passes, so that one run lasts long enough to time well.
    stream.run([&] {
      for (std::size_t p = 0; p < stream_passes; ++p) sink = sink + stream_sum(idx.stored().data(), n * d);
    });
    a_single.run([&] {
      for (std::size_t q = 0; q < single; ++q)
        single_res.set_count(q, idx.search(ds.queries.row(q), k, {}, single_res.row_storage(q)));
    });
#ifdef ANNULUS_HAVE_FAISS
    blas_single = faiss_threads(1);
    f_single.run([&] {
      for (std::size_t q = 0; q < single; ++q)
        fidx->search(1, fq + q * d, faiss_id(k), fs_dist.data() + q * k, fs_ids.data() + q * k);
    });
#endif
    a_batch.run([&] { batch_res = annulus::search_batch(idx, ds.queries, k, {}, threads); });
#ifdef ANNULUS_HAVE_FAISS
    blas_batch = faiss_threads(threads);
    f_batch.run([&] { fidx->search(faiss_id(nq), fq, faiss_id(k), fb_dist.data(), fb_ids.data()); });
#endif
  }

  const double bw = stream_passes * scan_gb / stream.median();
  const double a_sq = double(single) / a_single.median(), a_bq = double(nq) / a_batch.median();
  const double f_sq = double(single) / f_single.median(), f_bq = double(nq) / f_batch.median();
  std::printf("\nstreaming read, 1 thread: %.2f GB/s (best run %.2f; sum of the stored base, checksum %g)\n\n",
              bw, stream_passes * scan_gb / stream.min(), double(sink));
  // One table row: annulus, then FAISS and the ratio when there is a peer.
  auto row = [&](const std::string& what, const char* fmt, double a, double f, bool ratio) {
    std::printf("%-34s", what.c_str());
    std::printf(fmt, a, 100 * a / bw);  // the % is used by the GB/s row only
    if (have_faiss) std::printf(fmt, f, 100 * f / bw);
    if (have_faiss && ratio) std::printf(" %13.2fx", a / f);
    std::printf("\n");
  };
  std::printf("%-34s %14s%s\n", "", "annulus", have_faiss ? "          FAISS  annulus/FAISS" : "");
  row("build (add), s (one run)", " %14.3f", build, f_build, false);
  row("single query, 1 thread, QPS", " %14.1f", a_sq, f_sq, true);
  row("  effective GB/s (% of stream)", "  %6.2f (%3.0f%%)", a_sq * scan_gb, f_sq * scan_gb, false);
  row("batch of " + std::to_string(nq) + ", " + std::to_string(threads) + " threads, QPS", " %14.1f",
      a_bq, f_bq, true);
  if (have_faiss)
    std::printf("OpenBLAS threads after setting: single %d, batch %d (-1: not OpenBLAS)\n", blas_single,
                blas_batch);
  else
    std::printf("FAISS not found at configure time: no peer column\n");

  // Sanity: exact searches agree, recall ~1. Against the ground truth, ties
  // count (an equally close label at the k-th distance is a hit) when the
  // truth distances are there; between two runs they cannot.
  std::vector<std::pair<std::string, const annulus::result_matrix*>> runs = {
      {"annulus single", &single_res}, {"annulus batch", &batch_res}};
#ifdef ANNULUS_HAVE_FAISS
  const auto f_single_res = from_faiss(fs_ids, single, k), f_batch_res = from_faiss(fb_ids, nq, k);
  runs.insert(runs.end(), {{"FAISS single", &f_single_res}, {"FAISS batch", &f_batch_res}});
#endif
  const auto ref = ids_of(batch_res);
  const bool truth = ds.truth && ds.truth->rows() == nq && ds.truth->cols() >= k;
  std::printf("\nrecall@%-9zu %18s%s\n", k, "vs annulus batch",
              !truth ? "" : ds.truth_dist ? "  vs ground truth (tie-aware)" : "  vs ground truth");
  for (const auto& [name, res] : runs) {
    const std::size_t m = res->size();
    std::printf("  %-16s %16.4f", name.c_str(), annulus::recall_at_k(*res, ref.view().rows_slice(0, m), k));
    const auto ids = truth ? ds.truth->view().rows_slice(0, m) : ref.view();
    if (truth && ds.truth_dist)
      std::printf(" %16.4f", annulus::recall_at_k(*res, ids, ds.truth_dist->view().rows_slice(0, m), k));
    else if (truth)
      std::printf(" %16.4f", annulus::recall_at_k(*res, ids, k));
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  annulus::bench::use_passive_openmp(argv);
  options o;
  CLI::App app{"annulus-flat-bench: exact search, annulus flat_index vs FAISS IndexFlat"};
  app.add_option("--data", o.data, "texmex directory with base.fvecs and query.fvecs "
                                   "(default: $ANNULUS_DATA_DIR, else annulus-bench's embedded default)");
  app.add_option("--k", o.k, "neighbours per query")->check(CLI::PositiveNumber);
  app.add_option("--threads", o.threads, "threads for the batch search (0 = all cores)");
  app.add_option("--single-queries", o.single, "queries searched one at a time")->check(CLI::PositiveNumber);
  app.add_option("--repeat", o.repeat, "runs per measurement (medians reported)")->check(CLI::PositiveNumber);
  app.add_option("--metric", o.metric, "l2, ip or cosine")->check(CLI::IsMember({"l2", "ip", "cosine"}));
  CLI11_PARSE(app, argc, argv);

  try {
    if (o.data.empty())
      if (const char* env = std::getenv("ANNULUS_DATA_DIR"); env && *env) o.data = env;
    const dataset ds = load(o.data, o.metric, o.k);
    if (o.metric == "l2") run<annulus::l2>(o, ds);
    else if (o.metric == "ip") run<annulus::inner_product>(o, ds);
    else run<annulus::cosine>(o, ds);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "annulus-flat-bench: %s\n", e.what());
    return 1;
  }
}
