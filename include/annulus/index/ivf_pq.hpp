// ivf_pq_index: an inverted file over product-quantized residuals, for
// collections too large to keep as floats. A vector x in list l (centroid c)
// is stored as the PQ code of its residual r = x - c: m bytes instead of
// 4 dim. A query scans the nprobe best lists and ranks their codes by
// asymmetric distance; optionally the best k * refine_factor are re-ranked
// with exact distances to kept copies of the vectors.
//
//   ivf_pq_index<l2> idx = ivf_pq_index<l2>::build(data, {.nlist = 1024, .m = 56, .keep_vectors = true});
//   auto hits = idx.search(query, 10, {.nprobe = 16, .refine_factor = 4});
//
// Distances from codes, with r^ the decoded residual (the query-dependent part
// is one table of <q_j, centroid> per query, shared by every list):
//   inner_product  -<q, c + r^> = -<q, c> - sum_j T[j][code_j]
//   cosine         1 - <q, c> - sum_j T[j][code_j]        (unit vectors)
//   l2             ||q - c||^2 + (||r^||^2 + 2<c, r^>) - 2 sum_j T[j][code_j]
// Under l2 the middle term depends on the stored vector only, so it is
// computed at add and kept beside the code (4 bytes). FAISS instead keeps a
// table of it per (list, sub-space, centroid): nlist * m * 256 floats, 58 MB at
// nlist = 1024, m = 56, whatever the collection size, and adds a slice of it
// into a per-list table for every probed list. The per-vector float costs
// 4 bytes a vector and no per-list work.
//
// Memory per vector: m code bytes (+ 4 under l2) + a 4-byte slot in the
// lists; with keep_vectors, 4 dim bytes more (memory_usage() shows each part);
// labels other than row numbers, or any remove, add a hash table entry
// (about 40 bytes a vector).
// Threads: as ivf_flat_index (searches concurrently; train/add/remove alone).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/kernels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/prepare.hpp"
#include "annulus/core/scratch.hpp"
#include "annulus/core/sizes.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/concepts.hpp"
#include "annulus/index/ivf/core.hpp"
#include "annulus/index/ivf/lists.hpp"
#include "annulus/quant/pq.hpp"

namespace annulus {

template <metric Metric>
class ivf_pq_index : public vector_search<ivf_pq_index<Metric>> {
 public:
  using metric_type = Metric;
  struct build_params {
    std::size_t nlist = 1024;            ///< lists (coarse k-means centroids), >= 1
    std::size_t m = 0;                   ///< PQ sub-vectors, must divide dim; 0 = default_pq_m(dim)
    std::size_t nbits = 8;               ///< bits per sub-vector code, 1..8 (2^nbits centroids)
    bool keep_vectors = false;           ///< keep the float vectors too, for refine_factor
    std::size_t train_size = 0;          ///< vectors build trains on; 0 = min(rows, 256 * nlist)
    std::size_t kmeans_iterations = 10;  ///< coarse k-means iterations at most
    std::size_t pq_iterations = 25;      ///< k-means iterations per PQ sub-space at most
    std::uint64_t seed = 1234;           ///< training sample and k-means seeds
  };
  struct search_params {
    std::size_t nprobe = 8;         ///< lists scanned per query (>= 1; above nlist means all)
    std::size_t refine_factor = 0;  ///< re-rank k * refine_factor by exact distance (needs keep_vectors); 0 = off
  };
  /// Heap bytes by part; memory_bytes() is their sum.
  struct memory_usage {
    std::size_t lists = 0;       ///< codes (+ l2 terms) and slots
    std::size_t vectors = 0;     ///< kept float vectors (keep_vectors)
    std::size_t quantizers = 0;  ///< coarse centroids and PQ codebooks
    std::size_t labels = 0;      ///< label map and free slots
  };

  /// Empty, untrained index. Throws invalid_argument on dim 0, nlist 0, an m
  /// that does not divide dim, or nbits outside 1..8.
  explicit ivf_pq_index(std::size_t dim, const build_params& params = {})
      : core_("ivf_pq_index", dim, params.nlist), params_(params),
        pq_(dim, params.m == 0 ? default_pq_m(dim) : params.m, params.nbits),
        lists_(params.nlist, pq_.code_size() + term_bytes) {}

  /// Trains on a sample of `data` (see build_params::train_size) and adds all
  /// of it (labels = row numbers), on `threads` workers (0 = all cores).
  /// Throws invalid_argument on empty data, fewer rows than nlist or than
  /// 2^nbits, and what add throws.
  static ivf_pq_index build(matrix_view<const float> data, const build_params& params = {},
                            std::size_t threads = 0) {
    if (data.rows() == 0 || data.cols() == 0)
      throw invalid_argument("ivf_pq_index::build: empty data (" + std::to_string(data.rows()) +
                             " x " + std::to_string(data.cols()) + ")");
    ivf_pq_index idx(data.cols(), params);
    validate_rows<Metric>("data", data, idx.dim());
    const matrix<float> sample = idx.core_.training_sample(data, params.train_size, params.seed);
    idx.train_stored(sample.view(), threads);
    idx.add(data, {}, threads);
    return idx;
  }

  /// Trains the coarse quantizer (k-means over every row of `sample`) and
  /// then the PQ on the sample's residuals. Throws invalid_argument if the
  /// index ever held vectors, on fewer rows than nlist or 2^nbits, or bad
  /// values; dimension_mismatch. A throw changes nothing.
  void train(matrix_view<const float> sample, std::size_t threads = 0) {
    validate_rows<Metric>("training data", sample, dim());
    matrix<float> copy;
    train_stored(core_.stored_form(sample, copy), threads);
  }

  bool trained() const { return core_.trained() && pq_.trained(); }
  std::size_t dim() const { return core_.dim(); }
  std::size_t size() const { return core_.slots().live(); }
  std::size_t nlist() const { return core_.nlist(); }
  const product_quantizer& quantizer() const { return pq_; }
  std::size_t list_size(std::size_t l) const { return lists_.size(l); }
  bool contains(label_t label) const { return core_.slots().find(label).has_value(); }

  /// Adds the rows of `data` with `labels` (empty = continuing row numbers),
  /// reusing removed vectors' slots first. Throws as ivf_flat_index::add;
  /// on a throw the index is unchanged.
  void add(matrix_view<const float> data, std::span<const label_t> labels = {},
           std::size_t threads = 0) {
    core_.require_trained("add", pq_.trained());
    validate_rows<Metric>("data", data, dim());
    core_.slots().check_new(data.rows(), labels);
    if (data.rows() == 0) return;
    matrix<float> copy;
    const matrix_view<const float> rows = core_.stored_form(data, copy);
    const std::size_t n = rows.rows();
    const std::vector<std::uint32_t> to = core_.coarse().assign(rows, threads);
    const std::vector<slot_t> slots = core_.slots().plan(n);
    const std::size_t width = lists_.width();
    std::vector<std::uint8_t> entries(n * width);
    encode(rows, to, entries.data(), threads);

    // Everything that allocates, before the first change.
    std::vector<std::size_t> per_list(nlist());
    for (const std::uint32_t l : to) ++per_list[l];
    lists_.reserve(per_list);
    if (params_.keep_vectors) {
      const std::size_t top = *std::max_element(slots.begin(), slots.end()) + std::size_t{1};
      if (vectors_.size() < top * dim()) vectors_.resize(sizes::product(top, dim(), "ivf_pq_index::add"));
    }
    core_.slots().commit(n, labels);  // may throw bad_alloc: then it recorded nothing
    for (std::size_t i = 0; i < n; ++i) {  // cannot throw
      std::copy_n(entries.data() + i * width, width, lists_.append(to[i], slots[i]));
      if (params_.keep_vectors) std::copy_n(rows.row_ptr(i), dim(), vectors_.data() + slots[i] * dim());
    }
  }

  /// Removes the vector labelled `label`. Throws invalid_argument if absent.
  void remove(label_t label) {
    const slot_t s = core_.slots().release(label, "ivf_pq_index::remove");
    lists_.erase(s);
  }

  /// The k closest by PQ distance (or, with refine_factor, the k closest by
  /// exact distance among the k * refine_factor closest by PQ distance),
  /// closest first, into `out` (size >= k); returns how many. Distances are
  /// the PQ estimates unless refined. Allocates nothing once the thread is
  /// warm. Throws invalid_argument (untrained, k = 0, k > size(), out too
  /// small, nprobe = 0, refine_factor without keep_vectors, NaN/Inf, zero
  /// query under cosine), dimension_mismatch.
  std::size_t search(std::span<const float> query, std::size_t k, const search_params& params,
                     std::span<neighbor> out) const {
    return search_impl(query, k, params, out, static_cast<const accept_all*>(nullptr));
  }
  /// The same over vectors whose label passes `keep` (applied in the list scan).
  template <label_predicate Keep>
  std::size_t search(std::span<const float> query, std::size_t k, const search_params& params,
                     std::span<neighbor> out, const Keep& keep) const {
    return search_impl(query, k, params, out, &keep);
  }
  using vector_search<ivf_pq_index>::search;  // the std::vector-returning forms

  /// Every row of `queries`: probes for all in one GEMM pass, then the lists
  /// scanned on `threads` workers (0 = all cores). Same results as search.
  result_matrix search_batch(matrix_view<const float> queries, std::size_t k,
                             const search_params& params = {}, std::size_t threads = 0) const {
    const std::size_t nprobe = check_search(k, k, params);
    validate_rows<Metric>("query", queries, dim());
    result_matrix out(queries.rows(), k);
    if (queries.rows() == 0) return out;
    matrix<float> copy;
    const matrix_view<const float> q = core_.stored_form(queries, copy);
    std::vector<std::uint32_t> lists(q.rows() * nprobe);
    std::vector<float> keys(q.rows() * nprobe);
    core_.coarse().probe_batch(q, nprobe, lists.data(), keys.data(), threads);
    parallel_for(q.rows(), threads, [&](std::size_t i, std::size_t) {
      scratch_lease<scratch> sc;
      out.set_count(i, scan(q.row_ptr(i), k, params, {lists.data() + i * nprobe, nprobe},
                            keys.data() + i * nprobe, *sc, out.row_storage(i),
                            static_cast<const accept_all*>(nullptr)));
    });
    return out;
  }

  memory_usage memory() const {
    return {lists_.memory_bytes(), vectors_.capacity() * sizeof(float),
            core_.coarse().memory_bytes() + pq_.memory_bytes(), core_.slots().memory_bytes()};
  }
  /// Heap bytes of every part (see memory()).
  std::size_t memory_bytes() const {
    const memory_usage u = memory();
    return u.lists + u.vectors + u.quantizers + u.labels;
  }

 private:
  static constexpr bool is_l2 = Metric::kind == metric_kind::l2;
  static constexpr std::size_t term_bytes = is_l2 ? sizeof(float) : 0;

  struct scratch {
    std::vector<float> query;
    std::vector<float, aligned_allocator<float>> table;
    std::vector<neighbor> candidates;
    ivf::probe_scratch probe;
  };

  void train_stored(matrix_view<const float> sample, std::size_t threads) {
    core_.require_empty_for_training();
    if (sample.rows() < pq_.ksub())
      throw invalid_argument("ivf_pq_index::train: " + std::to_string(sample.rows()) +
                             " training vectors for " + std::to_string(pq_.ksub()) +
                             " PQ centroids per sub-space (nbits = " + std::to_string(pq_.nbits()) +
                             "); need at least " + std::to_string(pq_.ksub()));
    // Both quantizers train into temporaries: a throw changes nothing.
    ivf::coarse_quantizer<Metric> coarse =
        core_.train_coarse(sample, params_.kmeans_iterations, params_.seed, threads);
    const std::vector<std::uint32_t> to = coarse.assign(sample, threads);
    matrix<float> residuals(sample.rows(), dim());
    residuals_of(coarse, sample, to, residuals.view().data());
    kmeans_params p;
    p.iterations = params_.pq_iterations;
    p.seed = params_.seed + 1;
    p.threads = threads;
    product_quantizer pq(dim(), pq_.m(), pq_.nbits());
    pq.train(residuals.view(), p);
    core_.set_coarse(std::move(coarse));
    pq_ = std::move(pq);
  }

  // out row i = rows row i - its list's centroid.
  static void residuals_of(const ivf::coarse_quantizer<Metric>& coarse, matrix_view<const float> rows,
                           const std::vector<std::uint32_t>& to, float* out) {
    const std::size_t d = rows.cols();
    std::vector<float> c(d);
    for (std::size_t i = 0; i < rows.rows(); ++i) {
      coarse.centroids().row(to[i], c.data());
      const float* x = rows.row_ptr(i);
      float* r = out + i * d;
      for (std::size_t j = 0; j < d; ++j) r[j] = x[j] - c[j];
    }
  }

  // The list entries of stored-form rows: code, then under l2 the term
  // ||r^||^2 + 2<c, r^> of the decoded residual r^.
  void encode(matrix_view<const float> rows, const std::vector<std::uint32_t>& to, std::uint8_t* entries,
              std::size_t threads) const {
    const std::size_t n = rows.rows(), width = lists_.width(), m = pq_.code_size();
    matrix<float> residuals(n, dim());
    residuals_of(core_.coarse(), rows, to, residuals.view().data());
    std::vector<std::uint8_t> codes(n * m);
    pq_.encode(residuals.view(), codes.data(), threads);
    parallel_for(n, threads, [&](std::size_t i, std::size_t) {
      std::uint8_t* e = entries + i * width;
      std::copy_n(codes.data() + i * m, m, e);
      if constexpr (is_l2) {
        thread_local std::vector<float> decoded, centroid;
        decoded.resize(dim());
        centroid.resize(dim());
        pq_.decode(e, decoded.data());
        core_.coarse().centroids().row(to[i], centroid.data());
        const float term = kernels::norm_sq(decoded.data(), dim()) +
                           2.f * kernels::dot(centroid.data(), decoded.data(), dim());
        std::memcpy(e + m, &term, sizeof term);
      }
    }, 256);
  }

  std::size_t check_search(std::size_t k, std::size_t out_size, const search_params& params) const {
    const std::size_t nprobe = core_.check_search(k, out_size, params.nprobe, pq_.trained());
    if (params.refine_factor > 0 && !params_.keep_vectors)
      throw invalid_argument("ivf_pq_index: refine_factor = " + std::to_string(params.refine_factor) +
                             " needs the vectors; build with keep_vectors = true");
    return nprobe;
  }

  template <class Keep>
  std::size_t search_impl(std::span<const float> query, std::size_t k, const search_params& params,
                          std::span<neighbor> out, const Keep* keep) const {
    const std::size_t nprobe = check_search(k, out.size(), params);
    scratch_lease<scratch> sc;
    if (sc->query.size() < dim()) sc->query.resize(dim());
    const std::span<const float> q = prepare_query<Metric>(query, dim(), sc->query);
    core_.coarse().probe(q.data(), nprobe, sc->probe);
    return scan(q.data(), k, params, sc->probe.lists, sc->probe.list_keys.data(), *sc, out, keep);
  }

  // Ranks the codes of `lists` (probe keys `keys`) into out, re-ranking
  // exactly when asked; labels replace slots at the end.
  template <class Keep>
  std::size_t scan(const float* q, std::size_t k, const search_params& params,
                   std::span<const std::uint32_t> lists, const float* keys, scratch& sc,
                   std::span<neighbor> out, const Keep* keep) const {
    if (sc.table.size() < pq_.table_size()) sc.table.resize(pq_.table_size());
    pq_.inner_product_table(q, sc.table.data());
    const float* table = sc.table.data();
    const std::size_t width = lists_.width(), m = pq_.code_size(), stride = pq_.table_stride();
    const bool refine = params.refine_factor > 0;
    const std::size_t want =
        !refine ? k : (params.refine_factor >= size() / k ? size() : k * params.refine_factor);
    if (refine && sc.candidates.size() < want) sc.candidates.resize(want);
    std::span<neighbor> pool = refine ? std::span(sc.candidates).first(want) : out;
    const float q_norm = is_l2 ? kernels::norm_sq(q, dim()) : 0.f;

    topk_heap heap(pool, want);
    float threshold = heap.threshold();
    for (std::size_t p = 0; p < lists.size(); ++p) {
      const std::uint32_t l = lists[p];
      // The list's share of the distance (see the header comment).
      float base;
      if constexpr (is_l2) base = keys[p] + q_norm;  // ||q - c||^2
      else if constexpr (Metric::kind == metric_kind::inner_product) base = keys[p];  // -<q, c>
      else base = 1.f - 0.5f * (core_.coarse().centroids().norm_sq(l) - keys[p]);  // 1 - <q, c>
      const std::uint8_t* e = lists_.entries(l);
      const slot_t* slots = lists_.slots(l);
      for (std::size_t i = 0, n = lists_.size(l); i < n; ++i, e += width) {
        if constexpr (!std::is_same_v<Keep, accept_all>)
          if (!(*keep)(core_.slots().label(slots[i]))) continue;
        const float ip = product_quantizer::lookup_add(table, e, m, stride);
        float d;
        if constexpr (is_l2) {
          float term;
          std::memcpy(&term, e + m, sizeof term);
          d = base + term - 2.f * ip;
        } else {
          d = base - ip;
        }
        if (d <= threshold && heap.push(slots[i], d)) threshold = heap.threshold();
      }
    }
    std::size_t n = heap.sort();
    if (refine) {
      topk_heap best(out, k);
      for (std::size_t c = 0; c < n; ++c) {
        const slot_t s = slot_t(pool[c].label);
        best.push(s, Metric::distance(q, vectors_.data() + std::size_t(s) * dim(), dim()));
      }
      n = best.sort();
    }
    for (std::size_t r = 0; r < n; ++r) out[r].label = core_.slots().label(slot_t(out[r].label));
    return n;
  }

  ivf::core<Metric> core_;
  build_params params_;
  product_quantizer pq_;
  ivf::inverted_lists<std::uint8_t> lists_;
  std::vector<float, aligned_allocator<float>> vectors_;  // slot-indexed, keep_vectors only
};

}  // namespace annulus
