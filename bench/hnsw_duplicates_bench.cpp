// HNSW on data full of exact duplicates, against hnswlib in the same run:
// one vector copied into 0, 1, 20 and 50% of the rows, the copies added
// first (the order that once made annulus's graph a clique of copies; issue
// 15). Prints tie-aware recall@10 (a copy is as right as the row it copies),
// how many results a k = 200 search for the copied vector returns, and the
// build and search times as annulus / hnswlib ratios. One thread each.
//   annulus-hnsw-duplicates-bench [--rows 10000] [--dim 32] [--queries 500]
#include <annulus/annulus.hpp>
#include <annulus/eval/synthetic.hpp>

#include <CLI/CLI.hpp>
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

// Recall@k counting ties: a returned row is right when its distance is at
// most the k-th true distance.
double tie_aware_recall(const annulus::matrix<float>& base, const float* q, const std::vector<std::size_t>& got,
                        float kth) {
  std::size_t hits = 0;
  for (std::size_t id : got) hits += annulus::kernels::l2sq(q, base.row_ptr(id), base.cols()) <= kth * (1 + 1e-5f) + 1e-6f;
  return double(hits) / double(got.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t rows = 10000, dim = 32, nq = 500;
  CLI::App app{"HNSW with exact duplicates: annulus against hnswlib"};
  app.add_option("--rows", rows, "base vectors");
  app.add_option("--dim", dim, "dimensions");
  app.add_option("--queries", nq, "queries");
  CLI11_PARSE(app, argc, argv);
  const std::size_t k = 10, m = 16, ef_construction = 200, ef = 64;

  const annulus::gaussian_mixture mixture(dim, {.clusters = 20, .norm_ratio = 8.0, .seed = 41});
  const annulus::matrix<float> clean = mixture.sample(rows, 1), queries = mixture.sample(nq, 2);
  std::printf("%zu x %zu, %zu queries, m = %zu, ef_construction = %zu, ef = %zu, one thread\n", rows, dim, nq, m,
              ef_construction, ef);
  std::printf("copies  recall annulus  hnswlib  k=200 annulus  hnswlib  build annulus/hnswlib  search annulus/hnswlib\n");
  for (double share : {0.0, 0.01, 0.2, 0.5}) {
    annulus::matrix<float> base = clean;
    for (std::size_t i = 1; i < std::size_t(share * double(rows)); ++i)
      std::copy_n(base.row_ptr(0), dim, base.row_ptr(i));
    const annulus::result_matrix truth =
        annulus::flat_index<annulus::l2>::build(base.view()).search_batch(queries.view(), k, {}, 0);

    auto t = clock_type::now();
    const auto ours = annulus::hnsw_index<annulus::l2>::build(base.view(), {.m = m, .ef_construction = ef_construction}, 1);
    const double our_build = seconds_since(t);
    hnswlib::L2Space space(dim);
    t = clock_type::now();
    hnswlib::HierarchicalNSW<float> peer(&space, rows, m, ef_construction, 100);
    for (std::size_t i = 0; i < rows; ++i) peer.addPoint(base.row_ptr(i), i);
    const double peer_build = seconds_since(t);
    peer.setEf(ef);

    std::vector<std::vector<std::size_t>> our_ids(nq), peer_ids(nq);
    t = clock_type::now();
    for (std::size_t i = 0; i < nq; ++i)
      for (const annulus::neighbor& n : ours.search(queries.row(i), k, {.ef = ef})) our_ids[i].push_back(n.label);
    const double our_search = seconds_since(t);
    t = clock_type::now();
    for (std::size_t i = 0; i < nq; ++i)
      for (auto result = peer.searchKnn(queries.row_ptr(i), k); !result.empty(); result.pop())
        peer_ids[i].push_back(result.top().second);
    const double peer_search = seconds_since(t);

    double our_recall = 0, peer_recall = 0;
    for (std::size_t i = 0; i < nq; ++i) {
      const float kth = truth[i][k - 1].distance;
      our_recall += tie_aware_recall(base, queries.row_ptr(i), our_ids[i], kth);
      peer_recall += tie_aware_recall(base, queries.row_ptr(i), peer_ids[i], kth);
    }
    const std::size_t our_many = ours.search(base.row(0), 200, {.ef = ef}).size();
    const std::size_t peer_many = peer.searchKnn(base.row_ptr(0), 200).size();
    std::printf("%5.0f%%  %14.3f  %7.3f  %13zu  %7zu  %21.2f  %22.2f\n", share * 100, our_recall / double(nq),
                peer_recall / double(nq), our_many, peer_many, our_build / peer_build, our_search / peer_search);
  }
}
