// When should a filtered HNSW search scan the passing vectors instead of
// running a filtered beam? Times both, forced, on one thread over a range of
// selectivities p (the filter keeps labels with label % round(1/p) == 1) and
// beam widths, and prints where they cross. A beam that finds fewer than k
// still falls back to the scan, so at very small p the beam's time includes
// that; it only happens where the scan wins anyway. The data behind
// hnsw_index::search_params::filter_scan_ratio (docs/benchmarks.md).
//   annulus-hnsw-filter-bench [--data DIR] [--queries 200]
#include <annulus/annulus.hpp>

#include <CLI/CLI.hpp>

#include "annulus_bench/dataset.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <string>
#include <vector>

namespace {

struct measurement {
  double us_per_query;
};

template <class Index, class Keep>
measurement time_search(const Index& idx, const annulus::matrix<float>& queries, std::size_t nq,
                        typename Index::search_params params, const Keep& keep) {
  std::vector<annulus::neighbor> out(10);
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < nq; ++i) idx.search(queries.row(i), 10, params, out, keep);
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  return {us / double(nq)};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"annulus-hnsw-filter-bench: filtered beam against exact scan of the passing vectors"};
  std::string data;
  std::size_t queries = 200;
  app.add_option("--data", data, "texmex directory or .hdf5 (default: annulus-bench's generated set)");
  app.add_option("--queries", queries, "queries per measurement (default 200)");
  CLI11_PARSE(app, argc, argv);
  try {
    annulus::bench::dataset_request req;
    req.path = data;
    const auto ds = annulus::bench::load_dataset(req);
    const std::size_t nq = std::min(queries, ds.queries.rows());
    std::printf("%s: %zu x %zu, %zu queries, hnsw m=16 ef_construction=200\n", ds.name.c_str(),
                ds.base.rows(), ds.base.cols(), nq);
    const auto idx = annulus::hnsw_index<annulus::l2>::build(ds.base, {.m = 16, .ef_construction = 200, .seed = 100});
    const double n = double(idx.size());
    std::printf("%8s %5s %10s %10s %8s  %s\n", "p", "ef", "beam_us", "scan_us", "faster", "c = (p n)^2 / (ef n)");
    for (const double p : {0.005, 0.01, 0.02, 0.05, 0.1, 0.2}) {
      const auto mod = static_cast<annulus::label_t>(std::lround(1 / p));
      auto keep = [mod](annulus::label_t l) { return l % mod == 1; };
      for (const std::size_t ef : {32, 64, 128}) {
        const auto beam = time_search(idx, ds.queries, nq, {.ef = ef, .filter_scan_ratio = -1}, keep);
        const auto scan = time_search(idx, ds.queries, nq,
                                      {.ef = ef, .filter_scan_ratio = std::numeric_limits<double>::infinity()}, keep);
        std::printf("%8.3f %5zu %10.0f %10.0f %8s  %.1f\n", p, ef, beam.us_per_query, scan.us_per_query,
                    beam.us_per_query < scan.us_per_query ? "beam" : "scan", (p * n) * (p * n) / (double(ef) * n));
      }
    }
    std::puts("scan is faster below the crossover p; filter_scan_ratio = c at the crossover.");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "annulus-hnsw-filter-bench: %s\n", e.what());
    return 2;
  }
}
