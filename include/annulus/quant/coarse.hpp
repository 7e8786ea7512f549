// The coarse quantizer of an inverted file: nlist k-means centroids, the
// list each stored vector goes to, and the lists each query probes.
//
//   coarse_quantizer<l2> cq;
//   cq.train(sample, 1024, kmeans_params{});            // sample in stored form
//   std::vector<std::uint32_t> to = cq.assign(rows, 0);  // each row's list
//   coarse_quantizer<l2>::probe_scratch sc;
//   cq.probe(q, 8, sc);                                  // sc.lists: the 8 lists to scan
//
// Stored vectors go to their nearest centroid under l2 for every metric: the
// smallest residual, which is what k-means minimised and what IVF-PQ encodes.
// Queries probe lists by the metric: nearest centroids under l2 and cosine
// (unit vectors: the nearest centroid holds the most similar directions),
// largest <q, c> under inner_product (a list's mean inner product with q).
// Probing every list is exact search under all three.
//
// Memory: nlist centroids in bfloat16 plus a float norm each. Threads: the
// const calls are safe from any number of threads; train is not.
// Saved form (save/load): one section of nlist x dim bfloat16 values (u16,
// row-major), written only once trained; the norms are recomputed on load.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/quant/centroids.hpp"
#include "annulus/quant/kmeans.hpp"

namespace annulus {

template <metric Metric>
class coarse_quantizer {
 public:
  static constexpr centroid_order probe_order =
      std::same_as<Metric, inner_product> ? centroid_order::inner_product : centroid_order::l2;

  /// Per-thread room for one query's probe: centroid keys and the selection.
  struct probe_scratch {
    std::vector<float, aligned_allocator<float>> keys;
    std::vector<neighbor> heap;
    std::vector<std::uint32_t> lists;
    std::vector<float> list_keys;
  };

  bool trained() const { return centroids_.size() != 0; }
  std::size_t nlist() const { return centroids_.size(); }
  /// Copies centroid l (dim floats, as rounded to bfloat16) to `out`.
  void centroid(std::size_t l, float* out) const { centroids_.row(l, out); }

  /// <q, c_l> from the probe key of list l for query q (see probe: under
  /// l2 order the key is ||c_l||^2 - 2<q, c_l>, under inner_product -<q, c_l>).
  float dot_from_key(std::size_t l, float key) const {
    if constexpr (probe_order == centroid_order::l2)
      return 0.5f * (centroids_.norm_sq(l) - key);
    else
      return -key;
  }

  /// k-means with `nlist` centroids over `sample` (already stored form:
  /// normalised under cosine). Throws what kmeans throws; then nothing changed.
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

  /// The `nprobe` (1..nlist) lists to probe for query q, best first, in
  /// sc.lists, with their keys in sc.list_keys (keys as in centroid_order:
  /// ||c||^2 - 2<q, c> under l2 and cosine, -<q, c> under inner_product).
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

  /// Writes section `name` (the centroids as bfloat16 bits, row-major) if trained.
  void save(serial::writer& w, std::string_view name) const {
    if (!trained()) return;
    const auto values = centroids_.stored_values();
    w.section(name, std::span<const std::uint16_t>(values));
  }

  /// The quantizer a file saved in section `name`: untrained (and the
  /// section absent) unless `trained`, else nlist x dim finite centroids
  /// (format_error otherwise). A norm up to twice max_row_norm is taken
  /// (a mean of rows within it, rounded to bfloat16, may pass it by a
  /// hair): every probe key of a valid query stays a number, never NaN.
  static coarse_quantizer load(serial::reader& r, std::string_view name, bool trained, std::size_t nlist,
                               std::size_t dim) {
    coarse_quantizer q;
    if (!trained) {
      if (r.has(name)) r.fail(name, "centroids for an index the file says is untrained");
      return q;
    }
    const auto values = r.structure_array<std::uint16_t>(name, r.product(name, nlist, dim));
    if (const auto why = table::check_stored(values, nlist, dim, 2 * max_row_norm)) r.fail(name, *why);
    q.centroids_ = table::from_stored(values, nlist, dim);
    return q;
  }

 private:
  using table = basic_centroid_table<gemm::bf16>;

  // bfloat16: a query reads every centroid, and at nlist = 1024, d = 784 the
  // 3.2 MB of floats took 48 us from L3, a quarter of a Fashion-MNIST query
  // at nprobe = 8. Rounding the centroids (2^-8 relative) moves the cells'
  // borders a hair; stored vectors and queries all see the same rounded ones.
  basic_centroid_table<gemm::bf16> centroids_;
};

}  // namespace annulus
