// The coarse quantizer both IVF indexes share: nlist k-means centroids, the
// list each stored vector goes to, and the lists each query probes.
//
// Stored vectors go to their nearest centroid under l2 for every metric: the
// smallest residual, which is what k-means minimised and what IVF-PQ encodes.
// Queries probe lists by the metric: nearest centroids under l2 and cosine
// (unit vectors: the nearest centroid holds the most similar directions),
// largest <q, c> under inner_product (a list's mean inner product with q).
// Probing every list is exact search under all three.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/quant/centroids.hpp"
#include "annulus/quant/kmeans.hpp"

namespace annulus::ivf {

/// Per-thread room for one query's probe: centroid keys and the selection.
struct probe_scratch {
  std::vector<float, aligned_allocator<float>> keys;
  std::vector<neighbor> heap;
  std::vector<std::uint32_t> lists;
  std::vector<float> list_keys;
};

template <metric Metric>
class coarse_quantizer {
 public:
  static constexpr centroid_order probe_order =
      std::same_as<Metric, inner_product> ? centroid_order::inner_product : centroid_order::l2;

  bool trained() const { return centroids_.size() != 0; }
  std::size_t nlist() const { return centroids_.size(); }
  const basic_centroid_table<gemm::bf16>& centroids() const { return centroids_; }

  /// k-means with `nlist` centroids over `sample` (already stored form:
  /// normalised under cosine). Throws what kmeans throws.
  void train(matrix_view<const float> sample, std::size_t nlist, const kmeans_params& params) {
    centroids_ = basic_centroid_table<gemm::bf16>(kmeans(sample, nlist, params).centroids.view());
  }

  /// The list of each stored-form row (nearest centroid under l2), as one GEMM pass.
  std::vector<std::uint32_t> assign(matrix_view<const float> rows, std::size_t threads) const {
    std::vector<std::uint32_t> lists(rows.rows());
    std::vector<float> keys(rows.rows());
    centroids_.nearest(rows, centroid_order::l2, 1, lists.data(), keys.data(), threads);
    return lists;
  }

  /// The `nprobe` (<= nlist) lists to probe for query q, best first, in
  /// sc.lists / sc.list_keys (keys as in centroid_order).
  void probe(const float* q, std::size_t nprobe, probe_scratch& sc) const {
    if (sc.keys.size() < centroids_.score_room()) sc.keys.resize(centroids_.score_room());
    if (sc.heap.size() < nprobe) sc.heap.resize(nprobe);
    sc.lists.resize(nprobe);
    sc.list_keys.resize(nprobe);
    centroids_.score_one(q, probe_order, sc.keys.data());
    centroids_.select(sc.keys.data(), nprobe, sc.heap, sc.lists.data(), sc.list_keys.data());
  }

  /// probe for every row of `queries` at once (GEMM): lists[i * nprobe + r],
  /// keys likewise; the same lists probe() picks for each row.
  void probe_batch(matrix_view<const float> queries, std::size_t nprobe, std::uint32_t* lists,
                   float* keys, std::size_t threads) const {
    centroids_.nearest(queries, probe_order, nprobe, lists, keys, threads);
  }

  std::size_t memory_bytes() const { return centroids_.memory_bytes(); }

 private:
  // bfloat16: a query reads every centroid, and at nlist = 1024, d = 784 the
  // 3.2 MB of floats took 48 us from L3, a quarter of a Fashion-MNIST query
  // at nprobe = 8. Rounding the centroids (2^-8 relative) moves the cells'
  // borders a hair; stored vectors and queries all see the same rounded ones.
  basic_centroid_table<gemm::bf16> centroids_;
};

/// nprobe >= 1, clamped to nlist (probing every list is exact search).
inline std::size_t probes(std::size_t nprobe, std::size_t nlist) {
  if (nprobe == 0) throw invalid_argument("nprobe must be at least 1, got 0");
  return std::min(nprobe, nlist);
}

/// Rows to train the coarse quantizer on: train_size (0 = 256 per list, as
/// k-means would sample anyway), at most the data; at least nlist.
inline std::size_t training_rows(std::size_t rows, std::size_t nlist, std::size_t train_size) {
  const std::size_t want = train_size == 0 ? 256 * nlist : train_size;
  const std::size_t n = std::min(rows, want);
  if (n < nlist)
    throw invalid_argument("IVF: " + std::to_string(n) + " training vectors for nlist = " +
                           std::to_string(nlist) + " lists; need at least one per list (lower nlist)");
  return n;
}

}  // namespace annulus::ivf
