// annulus-kd-bench: the kd-tree where it belongs and where it breaks.
//
//   annulus-kd-bench --vs-nanoflann   1,000,000 uniform and clustered points at
//                                     d = 3 and 8: exact k = 10, QPS and build
//                                     time against nanoflann (one thread each)
//   annulus-kd-bench --sweep-dim      clustered data at d = 2 .. 256: exact
//                                     kd_tree against flat, QPS and the share
//                                     of points whose distance was computed
// Every figure is the median of --repeat runs, annulus and nanoflann
// alternating, so a slow spell on a shared machine hits both. Results go to
// --out (kd_vs_nanoflann.csv, dim_sweep.csv, dim_sweep.png with gnuplot).
#include <annulus/annulus.hpp>

#include <CLI/CLI.hpp>

#include "annulus_bench/results.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#ifdef ANNULUS_HAVE_NANOFLANN
#include <nanoflann.hpp>
#endif

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;
using annulus::matrix;

struct options {
  std::size_t n = 1'000'000, queries = 20'000, sweep_n = 100'000, sweep_queries = 500, k = 10,
              leaf = 16, repeat = 3;
  std::string out = "annulus-kd-bench-out";
};

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

matrix<float> uniform(std::size_t n, std::size_t d, std::uint64_t stream) {
  annulus::random_generator rng(2024, stream);
  matrix<float> m(n, d);
  for (std::size_t i = 0; i < m.size(); ++i) m.data()[i] = float(rng.uniform());
  return m;
}

// The library's clustered generator without the norm spread: a mixture of
// 64 uneven Gaussian clusters, as an embedding of low dimension looks.
matrix<float> clustered(std::size_t n, std::size_t d, std::uint64_t stream) {
  return annulus::gaussian_mixture(d, {.clusters = 64, .norm_ratio = 1.0, .seed = 2024}).sample(n, stream);
}

// Checks that both libraries found the same distances rank by rank (both
// are exact; tied labels may come in another order, and nanoflann sums in
// another order, hence the relative tolerance), so the race is between equals.
void require_same(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::abs(a[i] - b[i]) > 1e-5f * std::max(std::abs(a[i]), 1e-30f)) {
      std::fprintf(stderr, "%s: annulus and nanoflann disagree at result %zu: %g vs %g\n", what, i,
                   double(a[i]), double(b[i]));
      std::exit(1);
    }
}

#ifdef ANNULUS_HAVE_NANOFLANN
// nanoflann reads points through an adaptor; this one serves a row-major matrix.
struct cloud {
  const matrix<float>* m;
  std::size_t kdtree_get_point_count() const { return m->rows(); }
  float kdtree_get_pt(std::size_t i, std::size_t j) const { return (*m)(i, j); }
  template <class Box>
  bool kdtree_get_bbox(Box&) const { return false; }
};

// Dim = -1: the dimension at run time, as annulus has it; Dim > 0: fixed at
// compile time, nanoflann's fastest form.
template <int Dim>
struct nano {
  using tree = nanoflann::KDTreeSingleIndexAdaptor<nanoflann::L2_Simple_Adaptor<float, cloud>, cloud,
                                                   Dim, std::uint32_t>;
  static double build_and_search(const matrix<float>& base, const matrix<float>& queries,
                                 std::size_t k, std::size_t leaf, double& build_s,
                                 std::vector<float>& dist) {
    cloud c{&base};
    auto t0 = clock_type::now();
    tree t(int(base.cols()), c, nanoflann::KDTreeSingleIndexAdaptorParams(leaf));
    build_s = seconds_since(t0);
    std::vector<std::uint32_t> ids(k);
    dist.assign(queries.rows() * k, 0.f);
    t0 = clock_type::now();
    for (std::size_t i = 0; i < queries.rows(); ++i)
      t.knnSearch(queries.row_ptr(i), k, ids.data(), dist.data() + i * k);
    return double(queries.rows()) / seconds_since(t0);
  }
};
#endif

double annulus_build_and_search(const matrix<float>& base, const matrix<float>& queries,
                                std::size_t k, std::size_t leaf, double& build_s,
                                std::vector<float>& dist, std::size_t threads) {
  auto t0 = clock_type::now();
  const auto tree = annulus::kd_tree_index<annulus::l2>::build(base.view(), {.leaf_size = leaf}, threads);
  build_s = seconds_since(t0);
  dist.assign(queries.rows() * k, 0.f);
  std::vector<annulus::neighbor> out(k);
  t0 = clock_type::now();
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    tree.search(queries.row(i), k, {}, out);
    for (std::size_t r = 0; r < k; ++r) dist[i * k + r] = out[r].distance;
  }
  return double(queries.rows()) / seconds_since(t0);
}

void vs_nanoflann(const options& o) {
#ifndef ANNULUS_HAVE_NANOFLANN
  (void)o;
  std::printf("nanoflann not found (apt-get install libnanoflann-dev): --vs-nanoflann skipped\n");
#else
  std::ofstream csv(fs::path(o.out) / "kd_vs_nanoflann.csv");
  csv << "data,d,n,library,build_s,qps\n";
  std::printf("%-10s %3s | %12s %12s %12s | %8s %8s %8s %8s | %s\n", "data", "d", "annulus QPS",
              "nano QPS", "nano<D> QPS", "build s", "nano", "nano<D>", "ours 2t",
              "QPS ratio, build ratio (1 thread)");
  for (const char* kind : {"uniform", "clustered"})
    for (std::size_t d : {3u, 8u}) {
      const bool uni = std::string(kind) == "uniform";
      const matrix<float> base = uni ? uniform(o.n, d, 1) : clustered(o.n, d, 1);
      const matrix<float> queries = uni ? uniform(o.queries, d, 2) : clustered(o.queries, d, 2);
      std::vector<double> qa, qn, qf, ba, bn, bf, ball;
      std::vector<float> da, dn, df;
      for (std::size_t r = 0; r < o.repeat; ++r) {
        double b = 0;
        qa.push_back(annulus_build_and_search(base, queries, o.k, o.leaf, b, da, 1));
        ba.push_back(b);
        const auto t0 = clock_type::now();  // the build on every core, for the record
        annulus::kd_tree_index<annulus::l2>::build(base.view(), {.leaf_size = o.leaf}, 0);
        ball.push_back(seconds_since(t0));
        qn.push_back(nano<-1>::build_and_search(base, queries, o.k, o.leaf, b, dn));
        bn.push_back(b);
        qf.push_back(d == 3 ? nano<3>::build_and_search(base, queries, o.k, o.leaf, b, df)
                            : nano<8>::build_and_search(base, queries, o.k, o.leaf, b, df));
        bf.push_back(b);
      }
      require_same(da, dn, kind);
      require_same(da, df, kind);
      using annulus::bench::median;
      const double best_peer_qps = std::max(median(qn), median(qf));
      const double best_peer_build = std::min(median(bn), median(bf));
      std::printf("%-10s %3zu | %12.0f %12.0f %12.0f | %8.3f %8.3f %8.3f %8.3f | %.2fx, %.2fx\n", kind,
                  d, median(qa), median(qn), median(qf), median(ba), median(bn), median(bf), median(ball),
                  median(qa) / best_peer_qps, median(ba) / best_peer_build);
      csv << kind << ',' << d << ',' << o.n << ",annulus," << median(ba) << ',' << median(qa) << '\n'
          << kind << ',' << d << ',' << o.n << ",annulus-all-cores," << median(ball) << ",\n"
          << kind << ',' << d << ',' << o.n << ",nanoflann," << median(bn) << ',' << median(qn) << '\n'
          << kind << ',' << d << ',' << o.n << ",nanoflann-fixed-dim," << median(bf) << ','
          << median(qf) << '\n';
    }
  std::printf("(QPS ratio: annulus / the faster nanoflann form; build ratio: annulus / the faster,\n"
              " both on one thread; 'ours 2t' is annulus's build on every core)\n");
#endif
}

void sweep_dim(const options& o) {
  const fs::path csv_file = fs::path(o.out) / "dim_sweep.csv";
  std::ofstream csv(csv_file);
  csv << "d,n,kd_qps,flat_qps,kd_over_flat,scored_share\n";
  std::printf("%4s | %10s %10s %8s | %s\n", "d", "kd QPS", "flat QPS", "kd/flat", "points scored by kd");
  for (std::size_t d : {2u, 4u, 8u, 16u, 32u, 64u, 128u, 256u}) {
    const matrix<float> base = clustered(o.sweep_n, d, 1), queries = clustered(o.sweep_queries, d, 2);
    const auto tree = annulus::kd_tree_index<annulus::l2>::build(base.view(), {.leaf_size = o.leaf}, 1);
    const auto flat = annulus::flat_index<annulus::l2>::build(base.view());
    std::vector<annulus::neighbor> out(o.k);
    std::vector<double> kd_qps, flat_qps;
    double scored = 0;
    for (std::size_t i = 0; i < queries.rows(); ++i) scored += double(tree.explain(queries.row(i), o.k).points);
    for (std::size_t r = 0; r < o.repeat; ++r) {
      auto t0 = clock_type::now();
      for (std::size_t i = 0; i < queries.rows(); ++i) tree.search(queries.row(i), o.k, {}, out);
      kd_qps.push_back(double(queries.rows()) / seconds_since(t0));
      t0 = clock_type::now();
      for (std::size_t i = 0; i < queries.rows(); ++i) flat.search(queries.row(i), o.k, {}, out);
      flat_qps.push_back(double(queries.rows()) / seconds_since(t0));
    }
    using annulus::bench::median;
    const double share = scored / double(queries.rows()) / double(base.rows());
    std::printf("%4zu | %10.0f %10.0f %7.2fx | %6.2f%%\n", d, median(kd_qps), median(flat_qps),
                median(kd_qps) / median(flat_qps), 100 * share);
    csv << d << ',' << base.rows() << ',' << median(kd_qps) << ',' << median(flat_qps) << ','
        << median(kd_qps) / median(flat_qps) << ',' << share << '\n';
    std::fflush(stdout);
  }
  csv.close();  // gnuplot reads it next
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "gnuplot not found (apt-get install gnuplot-nox): no dim_sweep.png\n");
    return;
  }
  const fs::path png = fs::path(o.out) / "dim_sweep.png", script = fs::path(o.out) / "dim_sweep.gp";
  std::ofstream(script)
      << "set terminal pngcairo size 900,520 noenhanced\nset output '" << png.string() << "'\n"
      << "set datafile separator ','\nset logscale x 2\nset logscale y\nset key top center\n"
      << "set xlabel 'dimension (clustered data, " << o.sweep_n << " points, exact k = " << o.k << ")'\n"
      << "set ylabel 'QPS, one thread'\nset y2label 'share of points scored by the kd-tree'\n"
      << "set y2range [0:1]\nset y2tics\nset ytics nomirror\nset grid\n"
      << "plot '" << csv_file.string() << "' every ::1 using 1:3 with linespoints title 'kd_tree QPS', "
      << "'' every ::1 using 1:4 with linespoints title 'flat QPS', "
      << "'' every ::1 using 1:6 axes x1y2 with linespoints dt 2 title 'kd_tree: share of points scored'\n";
  if (std::system(("gnuplot '" + script.string() + "'").c_str()) != 0)
    std::fprintf(stderr, "gnuplot failed: no dim_sweep.png\n");
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  bool nano = false, dims = false;
  CLI::App app("annulus-kd-bench: kd_tree against nanoflann, and against flat as d grows");
  app.add_flag("--vs-nanoflann", nano, "1M points, d = 3 and 8, against nanoflann");
  app.add_flag("--sweep-dim", dims, "clustered data at d = 2 .. 256, against flat");
  app.add_option("--n", o.n, "points for --vs-nanoflann")->check(CLI::PositiveNumber);
  app.add_option("--queries", o.queries, "queries for --vs-nanoflann")->check(CLI::PositiveNumber);
  app.add_option("--sweep-n", o.sweep_n, "points for --sweep-dim")->check(CLI::PositiveNumber);
  app.add_option("--sweep-queries", o.sweep_queries, "queries for --sweep-dim")->check(CLI::PositiveNumber);
  app.add_option("--leaf", o.leaf, "leaf size, both libraries")->check(CLI::PositiveNumber);
  app.add_option("--repeat", o.repeat, "runs per figure (median)")->check(CLI::PositiveNumber);
  app.add_option("--out", o.out, "output folder");
  CLI11_PARSE(app, argc, argv);
  if (!nano && !dims) nano = dims = true;
  fs::create_directories(o.out);
  std::printf("annulus SIMD target %s, one thread, k = %zu, leaf size %zu, medians of %zu runs\n\n",
              annulus::kernels::simd_target().describe().c_str(), o.k, o.leaf, o.repeat);
  if (nano) vs_nanoflann(o);
  if (nano && dims) std::printf("\n");
  if (dims) sweep_dim(o);
}
