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
#include "annulus/io/vecs.hpp"

namespace fs = std::filesystem;
using namespace annulus;

namespace {
fs::path data_dir() {
  const char* dir = std::getenv("ANNULUS_DATA_DIR");
  return dir ? fs::path(dir) : fs::path();
}
}  // namespace

TEST_CASE("flat_index on Fashion-MNIST: tie-aware recall@10 = 1.0 on all queries", "[real_data]") {
  const fs::path dir = data_dir();
  const auto base = read_fvecs(dir / "base.fvecs");
  const auto queries = read_fvecs(dir / "query.fvecs");
  const auto truth = read_ivecs(dir / "groundtruth.ivecs");
  const auto truth_dist = read_fvecs(dir / "groundtruth_dist.fvecs");
  REQUIRE(base.rows() == 60000);
  REQUIRE(queries.rows() == 10000);
  const auto idx = flat_index<l2>::build(base);
  const result_matrix got = search_batch(idx, queries, 10, {}, 0);
  const double recall = recall_at_k(got, truth, truth_dist, 10);
  std::printf("flat_index<l2> Fashion-MNIST tie-aware recall@10 = %.6f\n", recall);
  CHECK(recall == 1.0);
  // One-query path on a sample agrees with the batch path.
  for (std::size_t i = 0; i < queries.rows(); i += 997) {
    const auto one = idx.search(queries.row(i), 10);
    REQUIRE(std::vector<neighbor>(got[i].begin(), got[i].end()) == one);
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
