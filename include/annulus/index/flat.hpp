// flat_index: exact search by scanning every stored vector.
//
//   flat_index<l2> idx(128);            // or annulus::flat_index<l2>::build(data)
//   idx.add(data);                      // labels 0, 1, 2, ... (row numbers)
//   auto hits = idx.search(query, 10);  // 10 closest, closest first
//   idx.search(query, 10, {}, [&](label_t l) { return in_stock(l); });  // exact filtered
//   idx.remove(label);  idx.update(label, vector);  idx.get(label);
//   idx.save("items.annulus");  auto back = flat_index<l2>::load("items.annulus");
//   auto served = flat_index<l2>::view("items.annulus");   // read in place, read-only
//
// The public calls (search forms, batch, range search, get, labels, k
// policy) come from index/base.hpp; this file is the scan.
//
// One query is a SIMD one-to-many scan (64 rows per kernel call) into a
// bounded heap that lives in the caller's output. A batch is a blocked GEMM
// (query block x base block, gemm.hpp) with precomputed norms, then top-k
// per query; each query's best candidates are re-scored with the one-query
// kernel, so batch and single searches return the same distances bit for
// bit and GEMM's cancellation error under l2 never reorders them. Batch
// memory is bounded by the block sizes (a few MB per thread), not by
// queries x base. A small batch (or one asked for one_query_kernel) scores
// groups of queries with the one-query kernel, block by block, so each
// block of stored rows is read from memory once per group.
//
// Removal frees the slot at once (the next add writes into it); a scan skips
// free slots with one test per candidate that beats the k-th distance.
// A filter is tested the same way, so filtered search is exact: the ground
// truth for other indexes' filtered recall.
//
// Ownership: the index copies what it is given (normalised under cosine).
// Memory: dim floats and a squared norm a vector, a byte a slot, the label
// map (nothing while labels are row numbers and nothing was removed).
// File (kind "flat"): the vectors and norms as stored (a view reads both in
// place), the slot directory and the free-slot marks.
// Threads: const calls (search, search_batch, get, ...) are safe from any
// number of threads at once; add, remove and update are not safe alongside
// anything else.
#pragma once

#include <algorithm>
#include <string_view>
#include <type_traits>
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
#include "annulus/core/serialize.hpp"
#include "annulus/core/slots.hpp"
#include "annulus/core/stored.hpp"
#include "annulus/core/tombstones.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/concepts.hpp"

namespace annulus {

template <metric Metric>
class flat_index : public index_base<flat_index<Metric>, Metric> {
  using base = index_base<flat_index<Metric>, Metric>;
  friend base;

 public:
  static constexpr std::string_view index_name = "flat_index";
  static constexpr std::string_view file_kind = "flat";
  static constexpr bool viewable = true;
  struct build_params {
    std::size_t initial_capacity = 0;  ///< vectors to reserve room for (0 = grow on add)
  };
  struct search_params {
    /// search_batch only: score every query with the one-query kernel, as
    /// search() does, instead of GEMM (each batch row is then search()'s
    /// result bit for bit, even where GEMM's cancellation would pick other
    /// candidates). Each block of stored rows is still read once for a group
    /// of queries, so b queries cost about one scan's memory traffic and b
    /// scans' arithmetic: slower than GEMM for large batches.
    bool one_query_kernel = false;
  };

  /// Empty index for vectors of `dim` (>= 1) floats. Throws invalid_argument on dim 0.
  explicit flat_index(std::size_t dim, const build_params& params = {}) : dim_(dim) {
    if (dim == 0) throw invalid_argument("flat_index: dimension must be at least 1, got 0");
    reserve(params.initial_capacity);
  }

  std::size_t dim() const { return dim_; }
  std::size_t size() const { return slots_.live(); }

  /// Room for n vectors without reallocating. Throws capacity_error,
  /// std::bad_alloc, read_only_error on a view.
  void reserve(std::size_t n) {
    if (n > label_map::max_slots)
      throw capacity_error("flat_index: room for " + std::to_string(n) + " vectors asked, the limit is " +
                           std::to_string(label_map::max_slots));
    vectors_.reserve(sizes::product(n, dim_, "flat_index::reserve"));
    norms_.reserve(n);
  }

  /// Bytes of heap memory the index holds (vectors, norms, labels, free slots).
  std::size_t memory_bytes() const {
    return vectors_.memory_bytes() + norms_.memory_bytes() + slots_.memory_bytes() + free_.memory_bytes();
  }

  /// The stored vectors (normalised under cosine), in slot order; slots
  /// freed by remove hold stale rows until an add reuses them.
  matrix_view<const float> stored() const { return {vectors_.data(), slots_.slots(), dim_, dim_}; }

 private:
  // Freed slots first, then fresh ones; everything that allocates before the
  // label commit, the last step that can throw.
  void add_validated(matrix_view<const float> data, std::span<const label_t> labels, std::size_t threads) {
    // flat frees a removed slot at once: there is never anything to purge.
    const std::vector<slot_t> slots = free_.plan_add(slots_, vectors_, data.rows(), labels, dim_, "flat_index::add", [] {});
    if (slots.empty()) return;
    norms_.resize(vectors_.size() / dim_);
    slots_.commit(data.rows(), labels);
    parallel_for(data.rows(), threads, [&](std::size_t i, std::size_t) { write(slots[i], data.row_ptr(i)); }, 1024);
    free_.reuse(slots);
  }

  void remove_label(label_t label) {
    free_.remove(slots_, label, "flat_index::remove");  // nothing refers to the slot: free it now
    free_.reclaim(slots_);
  }

  void update_validated(label_t label, std::span<const float> vector) {
    write(slots_.slot_of(label, "flat_index::update"), vector.data());
  }

  const slot_directory& directory() const { return slots_; }
  void copy_vector(slot_t s, float* out) const { std::copy_n(vectors_.data() + std::size_t(s) * dim_, dim_, out); }

  void save_sections(serial::writer& w) const {
    const std::size_t n = slots_.slots();
    w.section("vectors", std::span<const float>(vectors_.data(), n * dim_));
    w.section("norms", std::span<const float>(norms_.data(), n));
    slots_.save(w);
    free_.save(w);
  }

  static flat_index load_sections(serial::reader& r) {
    flat_index idx(r.header().dim);
    idx.slots_ = slot_directory::load(r);
    idx.free_ = tombstones::load(r, idx.slots_);
    const std::size_t n = idx.slots_.slots();
    const auto vectors = r.payload_array<float>("vectors", r.product("vectors", n, idx.dim_));
    const auto norms = r.payload_array<float>("norms", n);
    idx.vectors_ = r.viewing() ? stored_array<float>::borrow(vectors) : stored_array<float>::copy_of(vectors);
    idx.norms_ = r.viewing() ? stored_array<float>::borrow(norms) : stored_array<float>::copy_of(norms);
    return idx;
  }

  // Writes a validated vector (normalised under cosine) and its norm into slot s. Cannot throw.
  void write(slot_t s, const float* v) {
    float* row = vectors_.data() + std::size_t(s) * dim_;
    store_rows<Metric>(matrix_view<const float>(v, 1, dim_), row);
    norms_[s] = kernels::norm_sq(row, dim_);
  }

  template <class Keep>
  std::size_t search_prepared(const float* q, std::size_t k, const search_params&, std::span<neighbor> out,
                              const Keep& keep) const {
    topk_heap heap(out, k);
    scan(q, 0, slots_.slots(), heap, keep);
    return heap.sort();  // labels already: ties sorted by label
  }

  // Whether slot s may enter a result: it holds a vector that passes the filter.
  template <class Keep>
  bool admits(std::size_t s, const Keep& keep) const {
    if (free_.dead(s)) return false;
    if constexpr (std::is_same_v<Keep, accept_all>)
      return true;
    else
      return keep(slots_.label(slot_t(s)));
  }

  // Every query at once, by blocked GEMM (below gemm_min_queries, or when
  // asked, with the one-query kernel over shared blocks).
  result_matrix search_batch_prepared(matrix_view<const float> queries, std::size_t k, const search_params& params,
                                      std::size_t threads) const {
    result_matrix out(queries.rows(), k);
    if (queries.rows() < gemm_min_queries || params.one_query_kernel) {
      const std::size_t groups =
          std::max((queries.rows() + max_scan_group - 1) / max_scan_group, worker_count(queries.rows(), threads));
      const std::size_t group = (queries.rows() + groups - 1) / groups;
      parallel_for((queries.rows() + group - 1) / group, threads, [&](std::size_t g, std::size_t) {
        const std::size_t first = g * group;
        scan_group(queries.rows_slice(first, std::min(group, queries.rows() - first)), k, out, first);
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

  // Below this many queries a batch takes scan_group (the one-query kernel,
  // blocks shared by the group): GEMM pays off once a base block is reused
  // by enough queries.
  static constexpr std::size_t gemm_min_queries = 16;
  // Queries scored together against each 64-row block by scan_group (their
  // stored form, 4 x dim bytes each, sits in cache beside the block).
  static constexpr std::size_t max_scan_group = 32;
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

  // Offers slots [begin, end) to the heap under their labels (ties at the
  // k-th distance are kept by label, the order of every result),
  // scoring a block of rows per kernel call.
  template <class Keep>
  void scan(const float* q, std::size_t begin, std::size_t end, topk_heap& heap, const Keep& keep) const {
    alignas(64) float dist[scan_block];
    for (std::size_t b = begin; b < end; b += scan_block) {
      const std::size_t n = std::min(scan_block, end - b);
      Metric::distances(q, matrix_view<const float>(vectors_.data() + b * dim_, n, dim_), dist);
      offer_scanned(dist, n, b, heap, keep);
    }
  }

  // The same scan for a group of queries (raw, prepared here), block-major:
  // each block of rows is scored against every query of the group while it
  // is in cache. Row i's result is what search() returns for query i.
  void scan_group(matrix_view<const float> queries, std::size_t k, result_matrix& out, std::size_t first) const {
    const std::size_t nq = queries.rows();
    std::vector<float, aligned_allocator<float>> prepared(nq * dim_);
    store_rows<Metric>(queries, prepared.data());
    std::vector<topk_heap> heaps;
    heaps.reserve(nq);
    for (std::size_t i = 0; i < nq; ++i) heaps.emplace_back(out.row_storage(first + i), k);
    alignas(64) float dist[scan_block];
    const std::size_t end = slots_.slots();
    for (std::size_t b = 0; b < end; b += scan_block) {
      const std::size_t n = std::min(scan_block, end - b);
      const matrix_view<const float> rows(vectors_.data() + b * dim_, n, dim_);
      for (std::size_t i = 0; i < nq; ++i) {
        Metric::distances(prepared.data() + i * dim_, rows, dist);
        offer_scanned(dist, n, b, heaps[i], accept_all{});
      }
    }
    for (std::size_t i = 0; i < nq; ++i) out.set_count(first + i, heaps[i].sort());
  }

  static constexpr std::size_t scan_block = 64;  // rows per kernel call

  // Offers the n distances of slots [b, b + n) to the heap.
  template <class Keep>
  void offer_scanned(const float* dist, std::size_t n, std::size_t b, topk_heap& heap, const Keep& keep) const {
    float threshold = heap.threshold();
    for (std::size_t j = 0; j < n; ++j)
      if (dist[j] <= threshold && admits(b + j, keep) && heap.push(slots_.label(slot_t(b + j)), dist[j]))
        threshold = heap.threshold();
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
      if (admits(b0 + j, accept_all{}) && heap.push(b0 + j, row[j])) threshold = heap.threshold();
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
    for (std::size_t b0 = 0; b0 < slots_.slots(); b0 += base_block) {
      const std::size_t nb = std::min(base_block, slots_.slots() - b0);
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
      for (const neighbor& n : cand) best.push(slots_.label(slot_t(n.label)), n.distance);
      out.set_count(first_row + i, best.sort());
    }
  }

  std::size_t dim_;
  stored_array<float> vectors_;  // slot-major, dim_ floats a slot
  stored_array<float> norms_;    // squared norms, for the GEMM path under l2
  slot_directory slots_;      // labels, free slots
  tombstones free_;           // which slots hold no vector (removed, not yet reused)
};

static_assert(mutable_index<flat_index<l2>> && filterable_index<flat_index<cosine>, accept_all>);

}  // namespace annulus
