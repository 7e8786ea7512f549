// Real data: Fashion-MNIST from ANNULUS_DATA_DIR (base.fvecs, query.fvecs,
// groundtruth.ivecs, groundtruth_dist.fvecs; see ../shared/data/README.md).
// Without it the program prints "skipped: no data" and exits 77, which CTest
// reports as skipped, never as passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "annulus/eval/recall.hpp"
#include "annulus/index/concepts.hpp"
#include "annulus/index/flat.hpp"
#include "annulus/index/hnsw.hpp"
#include "annulus/index/ivf_flat.hpp"
#include "annulus/index/ivf_pq.hpp"
#include "annulus/io/vecs.hpp"

namespace fs = std::filesystem;
using namespace annulus;

namespace {
fs::path data_dir() {
  const char* dir = std::getenv("ANNULUS_DATA_DIR");
  return dir ? fs::path(dir) : fs::path();
}
// ANNULUS_REAL_DATA_QUERIES=N searches only the first N queries: the sanitizer
// presets set it, since an instrumented scan of all 10,000 takes many minutes.
std::size_t query_count() {
  const char* n = std::getenv("ANNULUS_REAL_DATA_QUERIES");
  return n ? std::size_t(std::stoul(n)) : 10000;
}
// ANNULUS_REAL_DATA_BASE=N builds the approximate indexes over the first N
// base vectors only, with exact truth from flat_index on those N: the
// sanitizer presets set it, since an instrumented HNSW build of all 60,000
// takes minutes.
std::size_t base_count() {
  const char* n = std::getenv("ANNULUS_REAL_DATA_BASE");
  return n ? std::size_t(std::stoul(n)) : 60000;
}
}  // namespace

TEST_CASE("flat_index on Fashion-MNIST: tie-aware recall@10 = 1.0 on all queries", "[real_data]") {
  const fs::path dir = data_dir();
  const std::size_t nq = query_count();
  const auto base = read_fvecs(dir / "base.fvecs");
  const auto queries = read_fvecs(dir / "query.fvecs", 0, nq);
  const auto truth = read_ivecs(dir / "groundtruth.ivecs", 0, nq);
  const auto truth_dist = read_fvecs(dir / "groundtruth_dist.fvecs", 0, nq);
  REQUIRE(base.rows() == 60000);
  REQUIRE(queries.rows() == nq);
  const auto idx = flat_index<l2>::build(base);
  const result_matrix got = search_batch(idx, queries, 10, {}, 0);
  const double recall = recall_at_k(got, truth, truth_dist, 10);
  std::printf("flat_index<l2> Fashion-MNIST, %zu queries: tie-aware recall@10 = %.6f\n", nq, recall);
  CHECK(recall == 1.0);
  // One-query path on a sample agrees with the batch path.
  for (std::size_t i = 0; i < queries.rows(); i += 97) {
    const auto one = idx.search(queries.row(i), 10);
    REQUIRE(std::vector<neighbor>(got[i].begin(), got[i].end()) == one);
  }
}

TEST_CASE("hnsw_index on Fashion-MNIST: tie-aware recall@10 >= 0.98 at ef = 128", "[real_data][hnsw]") {
  const fs::path dir = data_dir();
  const std::size_t nq = query_count(), nb = base_count();
  const auto base = read_fvecs(dir / "base.fvecs", 0, nb);
  const auto queries = read_fvecs(dir / "query.fvecs", 0, nq);
  const auto idx = hnsw_index<l2>::build(base, {.m = 16, .ef_construction = 200}, 0);
  REQUIRE(idx.size() == nb);
  const result_matrix got = search_batch(idx, queries, 10, {.ef = 128}, 0);
  double recall = 0;
  if (nb == 60000) {
    const auto truth = read_ivecs(dir / "groundtruth.ivecs", 0, nq);
    const auto truth_dist = read_fvecs(dir / "groundtruth_dist.fvecs", 0, nq);
    recall = recall_at_k(got, truth, truth_dist, 10);
  } else {
    recall = recall_at_k(got, search_batch(flat_index<l2>::build(base), queries, 10, {}, 0), 10);
  }
  std::printf("hnsw_index<l2> m=16 ef_construction=200, Fashion-MNIST (%zu base, %zu queries): "
              "%srecall@10 at ef=128 = %.6f\n", nb, nq, nb == 60000 ? "tie-aware " : "", recall);
  CHECK(recall >= 0.98);
}

namespace {
// Recall@10 of `got` on the first nb base vectors: tie-aware against the
// shipped truth over all 60,000, else against flat_index over the nb.
double real_recall(const result_matrix& got, const matrix<float>& base, const matrix<float>& queries,
                   const fs::path& dir) {
  const std::size_t nq = queries.rows();
  if (base.rows() == 60000)
    return recall_at_k(got, read_ivecs(dir / "groundtruth.ivecs", 0, nq),
                       read_fvecs(dir / "groundtruth_dist.fvecs", 0, nq), 10);
  return recall_at_k(got, search_batch(flat_index<l2>::build(base), queries, 10, {}, 0), 10);
}
}  // namespace

TEST_CASE("ivf_flat_index and ivf_pq_index on Fashion-MNIST: recall@10 at nprobe = 32", "[real_data][ivf]") {
  const fs::path dir = data_dir();
  const std::size_t nq = query_count(), nb = base_count();
  const auto base = read_fvecs(dir / "base.fvecs", 0, nb);
  const auto queries = read_fvecs(dir / "query.fvecs", 0, nq);
  // 1024 lists as in the benchmarks; a smaller base gets about 60 vectors a list too.
  const std::size_t nlist = nb >= 60000 ? 1024 : std::max<std::size_t>(16, nb / 60);

  const auto flat = ivf_flat_index<l2>::build(base, {.nlist = nlist}, 0);
  const double flat_recall = real_recall(search_batch(flat, queries, 10, {.nprobe = 32}, 0), base, queries, dir);
  std::printf("ivf_flat_index<l2> nlist=%zu, Fashion-MNIST (%zu base, %zu queries): recall@10 at nprobe=32 = %.6f\n",
              nlist, nb, nq, flat_recall);
  CHECK(flat_recall >= 0.98);

  // The sanitizer presets' smaller base also trains the PQ for fewer iterations.
  const std::size_t pq_iterations = nb >= 60000 ? 25 : 6;
  const auto pq = ivf_pq_index<l2>::build(
      base, {.nlist = nlist, .m = 56, .keep_vectors = true, .pq_iterations = pq_iterations}, 0);
  const result_matrix refined = search_batch(pq, queries, 10, {.nprobe = 32, .refine_factor = 4}, 0);
  const double pq_recall = real_recall(refined, base, queries, dir);
  const double plain = real_recall(search_batch(pq, queries, 10, {.nprobe = 32}, 0), base, queries, dir);
  std::printf("ivf_pq_index<l2> nlist=%zu m=56, Fashion-MNIST: recall@10 at nprobe=32 = %.6f re-ranked x4, "
              "%.6f from codes alone\n", nlist, pq_recall, plain);
  CHECK(pq_recall >= 0.97);
  CHECK(plain >= 0.6);
  // One-query path on a sample agrees with the batch path.
  for (std::size_t i = 0; i < queries.rows(); i += 97) {
    const auto one = pq.search(queries.row(i), 10, {.nprobe = 32, .refine_factor = 4});
    REQUIRE(std::vector<neighbor>(refined[i].begin(), refined[i].end()) == one);
  }
}

int main(int argc, char** argv) {
  const fs::path dir = data_dir();
  if (dir.empty() || !fs::exists(dir / "base.fvecs") || !fs::exists(dir / "groundtruth.ivecs")) {
    std::puts("skipped: no data (set ANNULUS_DATA_DIR to a Fashion-MNIST directory; see ../shared/data/README.md)");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
