// flat_index: exact search by scanning every stored vector.
//
//   flat_index<l2> idx(128);            // or annulus::flat_index<l2>::build(data)
//   idx.add(data);                      // labels 0, 1, 2, ... (row numbers)
//   auto hits = idx.search(query, 10);  // 10 closest, closest first
//
// One query is a SIMD one-to-many scan (64 rows per kernel call) into a
// bounded heap that lives in the caller's output. A batch is a blocked GEMM
// (query block x base block, gemm.hpp) with precomputed norms, then top-k
// per query; each query's best candidates are re-scored with the one-query
// kernel, so batch and single searches return the same distances bit for
// bit and GEMM's cancellation error under l2 never reorders them. Batch
// memory is bounded by the block sizes (a few MB per thread), not by
// queries x base.
//
// Ownership: the index copies what it is given (normalised under cosine).
// Threads: const calls (search, search_batch) are safe from any number of
// threads at once; add is not safe alongside anything else.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/gemm.hpp"
#include "annulus/core/labels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/prepare.hpp"
#include "annulus/core/sizes.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/concepts.hpp"

namespace annulus {

template <metric Metric>
class flat_index : public vector_search<flat_index<Metric>> {
 public:
  using metric_type = Metric;
  struct build_params {
    std::size_t initial_capacity = 0;  ///< vectors to reserve room for (0 = grow on add)
  };
  struct search_params {};  ///< exact search has no knob

  /// Empty index for vectors of `dim` (>= 1) floats. Throws invalid_argument on dim 0.
  explicit flat_index(std::size_t dim, const build_params& params = {}) : dim_(dim) {
    if (dim == 0) throw invalid_argument("flat_index: dimension must be at least 1, got 0");
    reserve(params.initial_capacity);
  }

  /// An index holding every row of `data` (labels = row numbers).
  /// Throws invalid_argument on empty data, and what add throws.
  static flat_index build(matrix_view<const float> data, const build_params& params = {}) {
    if (data.rows() == 0 || data.cols() == 0)
      throw invalid_argument("flat_index::build: empty data (" + std::to_string(data.rows()) +
                             " x " + std::to_string(data.cols()) + ")");
    flat_index idx(data.cols(), params);
    idx.add(data);
    return idx;
  }

  std::size_t dim() const { return dim_; }
  std::size_t size() const { return labels_.size(); }

  void reserve(std::size_t n) {
    if (n > label_map::max_slots)
      throw capacity_error("flat_index: room for " + std::to_string(n) + " vectors asked, the limit is " +
                           std::to_string(label_map::max_slots));
    vectors_.reserve(sizes::product(n, dim_, "flat_index::reserve"));
    norms_.reserve(n);
  }

  /// Appends the rows of `data` with labels `labels` (empty = size(), size()+1, ...).
  /// Throws dimension_mismatch (wrong column count), invalid_argument (NaN/Inf,
  /// zero vector under cosine, label count or duplicate label), capacity_error.
  /// On a throw the index is unchanged. Adding zero rows does nothing.
  void add(matrix_view<const float> data, std::span<const label_t> labels = {}) {
    validate_rows<Metric>("data", data, dim_);
    labels_.check_new(data.rows(), labels);
    if (data.rows() == 0) return;
    const std::size_t old = size();
    vectors_.resize(sizes::product(old + data.rows(), dim_, "flat_index::add"));  // may throw: nothing changed yet
    norms_.resize(old + data.rows());
    store_rows<Metric>(data, vectors_.data() + old * dim_);
    kernels::norm_sq_many({vectors_.data() + old * dim_, data.rows(), dim_}, norms_.data() + old);
    labels_.append(data.rows(), labels);
  }

  /// The k closest stored vectors to `query`, closest first, written to `out`
  /// (size >= k); returns k. Allocates nothing.
  /// Throws dimension_mismatch, invalid_argument (k = 0, k > size(), output
  /// too small, NaN/Inf or, under cosine, zero query).
  std::size_t search(std::span<const float> query, std::size_t k, const search_params&,
                     std::span<neighbor> out) const {
    check::k_in_range(k, size());
    check::output_size(out.size(), k);
    const std::span<const float> q = prepare_query<Metric>(query, dim_, query_scratch());
    topk_heap heap(out, k);
    scan(q.data(), 0, size(), heap);
    const std::size_t n = heap.sort();
    for (std::size_t i = 0; i < n; ++i) out[i].label = labels_.label(slot_t(out[i].label));
    return n;
  }

  using vector_search<flat_index>::search;  // the std::vector-returning forms

  /// Every row of `queries` at once, over `threads` workers (0 = all cores).
  /// Throws what search throws, before doing any work.
  result_matrix search_batch(matrix_view<const float> queries, std::size_t k,
                             const search_params& params = {}, std::size_t threads = 0) const {
    check::k_in_range(k, size());
    validate_rows<Metric>("query", queries, dim_);
    result_matrix out(queries.rows(), k);
    if (queries.rows() < gemm_min_queries) {
      parallel_for(queries.rows(), threads, [&](std::size_t i, std::size_t) {
        out.set_count(i, search(queries.row(i), k, params, out.row_storage(i)));
      });
      return out;
    }
    // Blocks of up to max_query_block queries, smaller when that keeps every worker busy.
    const std::size_t per_worker = (queries.rows() + resolve_threads(threads) - 1) / resolve_threads(threads);
    const std::size_t block = std::clamp(per_worker, gemm_min_queries, max_query_block);
    const std::size_t blocks = (queries.rows() + block - 1) / block;
    const std::size_t workers = worker_count(blocks, threads);
    std::vector<batch_scratch> scratch(
        workers, batch_scratch(block, dim_, std::min(size(), k + rescore_extra)));
    parallel_for(blocks, workers, [&](std::size_t b, std::size_t w) {
      const std::size_t first = b * block;
      search_block(queries.rows_slice(first, std::min(block, queries.rows() - first)), k,
                   scratch[w], out, first);
    });
    return out;
  }

  /// Bytes of heap memory the index holds (vectors, norms, labels).
  std::size_t memory_bytes() const {
    return vectors_.capacity() * sizeof(float) + norms_.capacity() * sizeof(float) +
           labels_.memory_bytes();
  }

  /// The stored vectors (normalised under cosine), in slot order.
  matrix_view<const float> stored() const { return {vectors_.data(), size(), dim_, dim_}; }
  /// The label of slot `s` (s < size()).
  label_t label_of(slot_t s) const { return labels_.label(s); }

 private:
  // Below this many queries a batch is searched one query at a time: GEMM pays
  // off once a base block is reused by enough queries.
  static constexpr std::size_t gemm_min_queries = 16;
  // Block shape for gemm::inner_products: a query block streams from L2 past
  // the packed base block; 192 x 256 measured as fast as any of 102..256 x
  // 128..512 on AVX2 at d = 784 (within the noise of a 2-core machine).
  static constexpr std::size_t max_query_block = 192;  // queries per block (a multiple of 6)
  static constexpr std::size_t base_block = 256;       // base rows per block
  // GEMM distances are re-scored for this many candidates beyond k: l2 via
  // norms loses digits to cancellation, so the k-th and the k+1-th can swap.
  static constexpr std::size_t rescore_extra = 32;

  struct batch_scratch {
    batch_scratch(std::size_t block, std::size_t dim, std::size_t candidates)
        : queries(block * dim), query_norms(block), products(block * base_block),
          heaps(block * candidates), candidates(candidates) {}
    std::vector<float, aligned_allocator<float>> queries;
    std::vector<float> query_norms;
    std::vector<float, aligned_allocator<float>> products;
    std::vector<neighbor> heaps;
    std::size_t candidates;
    gemm::workspace gemm;
  };

  // Per-thread room for a normalised query; grows once per thread, then reused.
  std::span<float> query_scratch() const {
    thread_local std::vector<float> buf;
    if (buf.size() < dim_) buf.resize(dim_);
    return buf;
  }

  // Offers slots [begin, end) to the heap (labels in the heap are slots),
  // scoring a block of rows per kernel call.
  void scan(const float* q, std::size_t begin, std::size_t end, topk_heap& heap) const {
    constexpr std::size_t block = 64;
    alignas(64) float dist[block];
    float threshold = heap.threshold();
    for (std::size_t b = begin; b < end; b += block) {
      const std::size_t n = std::min(block, end - b);
      Metric::distances(q, matrix_view<const float>(vectors_.data() + b * dim_, n, dim_), dist);
      for (std::size_t j = 0; j < n; ++j)
        if (dist[j] <= threshold && heap.push(b + j, dist[j])) threshold = heap.threshold();
    }
  }

  // Turns one query's dot products with base rows [b0, b0 + nb) into
  // distances (in place, a loop the compiler vectorises), then offers them to
  // the heap, skipping a register's worth at a time when none beats the
  // threshold, which is almost always once the heap has filled.
  void offer_row(float* row, std::size_t nb, std::size_t b0, float query_norm,
                 topk_heap& heap) const {
    const float* norms = norms_.data() + b0;
    for (std::size_t j = 0; j < nb; ++j) row[j] = Metric::from_dot(row[j], query_norm, norms[j]);
    float threshold = heap.threshold();
    for (std::size_t j = kernels::first_at_most(row, nb, threshold); j < nb;
         j = j + 1 + kernels::first_at_most(row + j + 1, nb - j - 1, threshold))
      if (heap.push(b0 + j, row[j])) threshold = heap.threshold();
  }

  void search_block(matrix_view<const float> queries, std::size_t k, batch_scratch& sc,
                    result_matrix& out, std::size_t first_row) const {
    const std::size_t nq = queries.rows();
    const std::size_t c = sc.candidates;
    store_rows<Metric>(queries, sc.queries.data());
    kernels::norm_sq_many({sc.queries.data(), nq, dim_}, sc.query_norms.data());
    std::vector<topk_heap> heaps;  // one per query block: not per query
    heaps.reserve(nq);
    for (std::size_t i = 0; i < nq; ++i) heaps.emplace_back(std::span(sc.heaps).subspan(i * c, c), c);

    const matrix_view<const float> q(sc.queries.data(), nq, dim_);
    for (std::size_t b0 = 0; b0 < size(); b0 += base_block) {
      const std::size_t nb = std::min(base_block, size() - b0);
      gemm::inner_products(q, stored().rows_slice(b0, nb), sc.products.data(), nb, sc.gemm);
      for (std::size_t i = 0; i < nq; ++i)
        offer_row(sc.products.data() + i * nb, nb, b0, sc.query_norms[i], heaps[i]);
    }
    // Re-score the candidates exactly, keep the k best.
    for (std::size_t i = 0; i < nq; ++i) {
      std::span<neighbor> cand = std::span(sc.heaps).subspan(i * c, heaps[i].size());
      for (neighbor& n : cand)
        n.distance = Metric::distance(sc.queries.data() + i * dim_,
                                      vectors_.data() + n.label * dim_, dim_);
      std::span<neighbor> dst = out.row_storage(first_row + i);
      topk_heap best(dst, k);
      for (const neighbor& n : cand) best.push(n.label, n.distance);
      const std::size_t found = best.sort();
      for (std::size_t r = 0; r < found; ++r) dst[r].label = labels_.label(slot_t(dst[r].label));
      out.set_count(first_row + i, found);
    }
  }

  std::size_t dim_;
  std::vector<float, aligned_allocator<float>> vectors_;
  std::vector<float> norms_;  // squared norms, for the GEMM path under l2
  label_map labels_;
};

}  // namespace annulus
