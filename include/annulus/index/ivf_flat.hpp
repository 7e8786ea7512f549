// ivf_flat_index: an inverted file over full vectors. k-means splits the
// space into nlist cells; a vector is stored in its cell's list; a query scans
// the nprobe lists whose centroids suit it best and ranks their vectors
// exactly. nprobe trades recall for speed; nprobe = nlist is exact search.
//
//   ivf_flat_index<l2> idx = ivf_flat_index<l2>::build(data, {.nlist = 1024});
//   auto hits = idx.search(query, 10, {.nprobe = 16});
//
// Or in steps: ivf_flat_index<l2> idx(dim, {.nlist = 1024}); idx.train(sample);
// idx.add(data). Coarse assignment of an add, and the probes of a batch
// search, are one GEMM pass over the batch (core/gemm.hpp).
//
// Memory: dim floats and a 4-byte slot per vector in the lists, the label
// map (nothing while labels are row numbers and nothing was removed; else
// about 40 bytes a vector), and nlist centroids (bfloat16).
//
// Threads: const calls (search, search_batch) are safe from any number of
// threads at once. train, add and remove are not safe alongside anything
// else; guard them with your own lock if searches run meanwhile.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/prepare.hpp"
#include "annulus/core/scratch.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/concepts.hpp"
#include "annulus/index/ivf/core.hpp"
#include "annulus/index/ivf/lists.hpp"

namespace annulus {

template <metric Metric>
class ivf_flat_index : public vector_search<ivf_flat_index<Metric>> {
 public:
  using metric_type = Metric;
  struct build_params {
    std::size_t nlist = 1024;            ///< lists (k-means centroids), >= 1
    std::size_t train_size = 0;          ///< vectors build trains on; 0 = min(rows, 256 * nlist)
    std::size_t kmeans_iterations = 10;  ///< Lloyd iterations at most
    std::uint64_t seed = 1234;           ///< training sample and k-means seeds
  };
  struct search_params {
    std::size_t nprobe = 8;  ///< lists scanned per query (>= 1; above nlist means all: exact)
  };

  /// Empty, untrained index. Throws invalid_argument on dim 0 or nlist 0.
  explicit ivf_flat_index(std::size_t dim, const build_params& params = {})
      : core_("ivf_flat_index", dim, params.nlist), params_(params), lists_(params.nlist, dim) {}

  /// Trains on a sample of `data` (see build_params::train_size) and adds all
  /// of it (labels = row numbers), on `threads` workers (0 = all cores).
  /// Throws invalid_argument on empty data or fewer rows than nlist, and what add throws.
  static ivf_flat_index build(matrix_view<const float> data, const build_params& params = {},
                              std::size_t threads = 0) {
    if (data.rows() == 0 || data.cols() == 0)
      throw invalid_argument("ivf_flat_index::build: empty data (" + std::to_string(data.rows()) +
                             " x " + std::to_string(data.cols()) + ")");
    ivf_flat_index idx(data.cols(), params);
    validate_rows<Metric>("data", data, idx.dim());
    const matrix<float> sample = idx.core_.training_sample(data, params.train_size, params.seed);
    idx.core_.set_coarse(idx.core_.train_coarse(sample.view(), params.kmeans_iterations, params.seed, threads));
    idx.add(data, {}, threads);
    return idx;
  }

  /// Runs k-means over every row of `sample` (at least nlist rows) for the
  /// coarse centroids. Throws invalid_argument if vectors were ever added,
  /// on too few rows or bad values; dimension_mismatch. A throw changes nothing.
  void train(matrix_view<const float> sample, std::size_t threads = 0) {
    validate_rows<Metric>("training data", sample, dim());
    matrix<float> copy;
    core_.set_coarse(core_.train_coarse(core_.stored_form(sample, copy), params_.kmeans_iterations,
                                        params_.seed, threads));
  }

  bool trained() const { return core_.trained(); }
  std::size_t dim() const { return core_.dim(); }
  std::size_t size() const { return core_.slots().live(); }
  std::size_t nlist() const { return core_.nlist(); }
  /// Vectors in list l (l < nlist()).
  std::size_t list_size(std::size_t l) const { return lists_.size(l); }
  bool contains(label_t label) const { return core_.slots().find(label).has_value(); }

  /// Adds the rows of `data` with `labels` (empty = continuing row numbers),
  /// reusing removed vectors' slots first. Throws invalid_argument (untrained,
  /// NaN/Inf, zero vector under cosine, label count or duplicate label),
  /// dimension_mismatch, capacity_error; on a throw the index is unchanged.
  void add(matrix_view<const float> data, std::span<const label_t> labels = {},
           std::size_t threads = 0) {
    core_.require_trained("add");
    validate_rows<Metric>("data", data, dim());
    core_.slots().check_new(data.rows(), labels);
    if (data.rows() == 0) return;
    matrix<float> copy;
    const matrix_view<const float> rows = core_.stored_form(data, copy);
    const std::vector<std::uint32_t> to = core_.coarse().assign(rows, threads);
    const std::vector<slot_t> slots = core_.slots().plan(rows.rows());
    std::vector<std::size_t> per_list(nlist());
    for (const std::uint32_t l : to) ++per_list[l];
    lists_.reserve(per_list);                  // may throw bad_alloc: nothing changed yet
    core_.slots().commit(rows.rows(), labels);  // may throw bad_alloc: then it recorded nothing
    for (std::size_t i = 0; i < rows.rows(); ++i)  // cannot throw
      std::copy_n(rows.row_ptr(i), dim(), lists_.append(to[i], slots[i]));
  }

  /// Removes the vector labelled `label`. Throws invalid_argument if absent.
  void remove(label_t label) {
    const slot_t s = core_.slots().release(label, "ivf_flat_index::remove");
    lists_.erase(s);
  }

  /// The k closest vectors among the nprobe probed lists, closest first,
  /// into `out` (size >= k); returns how many (fewer than k only if the
  /// probed lists hold fewer). Allocates nothing once the thread is warm.
  /// Throws invalid_argument (untrained, k = 0, k > size(), out too small,
  /// nprobe = 0, NaN/Inf, zero query under cosine), dimension_mismatch.
  std::size_t search(std::span<const float> query, std::size_t k, const search_params& params,
                     std::span<neighbor> out) const {
    return search_impl(query, k, params, out, static_cast<const accept_all*>(nullptr));
  }
  /// The same over vectors whose label passes `keep` (applied in the list
  /// scan, before any distance); may return fewer than k.
  template <label_predicate Keep>
  std::size_t search(std::span<const float> query, std::size_t k, const search_params& params,
                     std::span<neighbor> out, const Keep& keep) const {
    return search_impl(query, k, params, out, &keep);
  }
  using vector_search<ivf_flat_index>::search;  // the std::vector-returning forms

  /// Every row of `queries`: probes chosen for all of them in one GEMM pass,
  /// then the lists scanned on `threads` workers (0 = all cores). Same
  /// results as search, row by row. Throws what search throws, before any work.
  result_matrix search_batch(matrix_view<const float> queries, std::size_t k,
                             const search_params& params = {}, std::size_t threads = 0) const {
    const std::size_t nprobe = core_.check_search(k, k, params.nprobe);
    validate_rows<Metric>("query", queries, dim());
    result_matrix out(queries.rows(), k);
    if (queries.rows() == 0) return out;
    matrix<float> copy;
    const matrix_view<const float> q = core_.stored_form(queries, copy);
    std::vector<std::uint32_t> lists(q.rows() * nprobe);
    std::vector<float> keys(q.rows() * nprobe);
    core_.coarse().probe_batch(q, nprobe, lists.data(), keys.data(), threads);
    parallel_for(q.rows(), threads, [&](std::size_t i, std::size_t) {
      out.set_count(i, scan(q.row_ptr(i), k, {lists.data() + i * nprobe, nprobe}, out.row_storage(i),
                            static_cast<const accept_all*>(nullptr)));
    });
    return out;
  }

  /// Heap bytes: lists (vectors and slots), centroids, label map.
  std::size_t memory_bytes() const { return lists_.memory_bytes() + core_.memory_bytes(); }

 private:
  struct scratch {
    std::vector<float> query;
    ivf::probe_scratch probe;
  };

  template <class Keep>
  std::size_t search_impl(std::span<const float> query, std::size_t k, const search_params& params,
                          std::span<neighbor> out, const Keep* keep) const {
    const std::size_t nprobe = core_.check_search(k, out.size(), params.nprobe);
    scratch_lease<scratch> sc;
    if (sc->query.size() < dim()) sc->query.resize(dim());
    const std::span<const float> q = prepare_query<Metric>(query, dim(), sc->query);
    core_.coarse().probe(q.data(), nprobe, sc->probe);
    return scan(q.data(), k, sc->probe.lists, out, keep);
  }

  // Ranks the vectors of `lists` exactly into out; labels replace slots at the end.
  template <class Keep>
  std::size_t scan(const float* q, std::size_t k, std::span<const std::uint32_t> lists,
                   std::span<neighbor> out, const Keep* keep) const {
    topk_heap heap(out, k);
    float threshold = heap.threshold();
    for (const std::uint32_t l : lists) {
      const float* v = lists_.entries(l);
      const slot_t* slots = lists_.slots(l);
      for (std::size_t i = 0, n = lists_.size(l); i < n; ++i, v += dim()) {
        if constexpr (!std::is_same_v<Keep, accept_all>)
          if (!(*keep)(core_.slots().label(slots[i]))) continue;
        const float d = Metric::distance(q, v, dim());
        if (d <= threshold && heap.push(slots[i], d)) threshold = heap.threshold();
      }
    }
    const std::size_t n = heap.sort();
    for (std::size_t r = 0; r < n; ++r) out[r].label = core_.slots().label(slot_t(out[r].label));
    return n;
  }

  ivf::core<Metric> core_;
  build_params params_;
  ivf::inverted_lists<float> lists_;
};

}  // namespace annulus
