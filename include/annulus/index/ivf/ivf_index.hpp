// ivf::ivf_index<Derived, Metric, Encoding>: what an IVF index is besides its
// encoding and its search: an index_base (index/base.hpp) whose steps are an
// inverted file's (engine.hpp). It holds the engine and gives the base the
// hooks that only forward to it (build, add, remove, update, get, the slot
// directory), the public calls every IVF index has (train, trained, nlist,
// list_size, memory), and for the indexes whose search_params have a
// refine_factor (ivf_pq, ivf_pq_fs) the search hooks: the encoding's
// estimates, then an exact re-ranking of the best candidates by the kept
// vectors (refined). Derived (ivf_flat_index, ivf_pq_index, ivf_pq_fs_index)
// adds its parameters, its Encoding and check_searchable; ivf_flat_index,
// whose estimates are exact, its own search_prepared and search_batch_prepared.
//
// health() (index/base.hpp) reports the engine's list balance and drift
// since training (engine.hpp).
//
// Persistence: save_sections is the engine's save (engine.hpp lists the
// sections); Derived's load_sections builds itself from engine::load. A
// view (every IVF kind is viewable) refuses train as well.
//
// Threads: as the engine (const calls from any number of threads; train,
// add, remove and update alone).
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/prefetch.hpp"
#include "annulus/core/scratch.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/core/slots.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/base.hpp"
#include "annulus/index/health.hpp"
#include "annulus/index/ivf/engine.hpp"

namespace annulus::ivf {

template <class Derived, metric Metric, class Encoding>
class ivf_index : public index_base<Derived, Metric> {
  using base = index_base<Derived, Metric>;
  friend base;

 public:
  /// Heap bytes by part; memory_bytes() is their sum.
  using memory_usage = ivf::memory_usage;

  /// Trains the coarse quantizer (k-means over every row of `sample`, at
  /// least nlist rows) and then the encoding (ivf_pq: the PQ on the sample's
  /// residuals), on `threads` workers (0 = all cores). Throws
  /// invalid_argument if vectors were ever added, on too few rows or bad
  /// values; dimension_mismatch; read_only_error on a view. A throw changes nothing.
  void train(matrix_view<const float> sample, std::size_t threads = 0) {
    validate_rows<Metric>("training data", sample, dim());
    matrix<float> copy;
    engine_.train(engine::stored_form(sample, copy), threads);
  }

  bool trained() const { return engine_.trained(); }
  std::size_t dim() const { return engine_.dim(); }
  std::size_t size() const { return engine_.size(); }
  std::size_t nlist() const { return engine_.nlist(); }
  /// Vectors in list l (l < nlist()).
  std::size_t list_size(std::size_t l) const { return engine_.list_size(l); }

  memory_usage memory() const { return engine_.memory(); }
  /// Heap bytes of every part (see memory()).
  std::size_t memory_bytes() const { return memory().total(); }

 protected:
  using engine = inverted_file<Metric, Encoding>;

  /// Throws invalid_argument on dim 0 or nlist 0, and what the encoding's constructor threw.
  ivf_index(std::string_view name, std::size_t dim, std::size_t nlist, training t, Encoding encoding)
      : engine_(name, dim, nlist, t, std::move(encoding)) {}
  /// The index of a loaded engine (load_sections).
  explicit ivf_index(engine e) : engine_(std::move(e)) {}

  void save_sections(serial::writer& w) const { engine_.save(w); }

  // build (index/base.hpp): trains on a sample of data (params.train_size)
  // and adds all of it. Throws invalid_argument on fewer rows than nlist,
  // and what train and add throw.
  template <class Params>
  static Derived build_validated(matrix_view<const float> data, std::span<const label_t> labels,
                                 const Params& params, std::size_t threads) {
    Derived idx(data.cols(), params);
    engine& e = static_cast<ivf_index&>(idx).engine_;
    const matrix<float> sample = e.training_sample(data, params.train_size);
    e.train(sample.view(), threads);
    e.add(data, labels, threads);
    return idx;
  }

  // The base's hooks: add (untrained: invalid_argument), remove, update, get.
  void add_validated(matrix_view<const float> data, std::span<const label_t> labels, std::size_t threads) {
    engine_.add(data, labels, threads);
  }
  void remove_label(label_t label) { engine_.remove(label); }
  void update_validated(label_t label, std::span<const float> vector) { engine_.update(label, vector); }
  const slot_directory& directory() const { return engine_.slots(); }
  void copy_vector(slot_t s, float* out) const { engine_.copy_vector(s, out); }

  // health() (index/base.hpp): the inverted file's figures and findings
  // (engine.hpp lists them) and its memory_needed estimate.
  void add_health(health_report& r) const {
    r.memory_needed = engine_.memory_needed();
    engine_.health(r);
  }

  /// The first n of out hold slots: give them their labels (ties by label).
  std::size_t labelled(std::span<neighbor> out, std::size_t n) const {
    return this->finish_labels(out, n, [&](slot_t s) { return engine_.label(s); });
  }

  // search_prepared and search_batch_prepared (index/base.hpp) of an index
  // that re-ranks (Params::refine_factor; Encoding::vector(slot) its kept
  // vectors). Batch: probes for every query in one GEMM pass, then the
  // lists on `threads` workers.
  template <class Params, class Keep>
    requires requires(const Params& p) { p.refine_factor; }
  std::size_t search_prepared(const float* q, std::size_t k, const Params& params, std::span<neighbor> out,
                              const Keep& keep) const {
    return refined(q, k, params.refine_factor, out, kept_vector(), [&](std::span<neighbor> pool) {
      return engine_.search(q, params.nprobe, pool, keep);
    });
  }
  template <class Params>
    requires requires(const Params& p) { p.refine_factor; }
  result_matrix search_batch_prepared(matrix_view<const float> queries, std::size_t k, const Params& params,
                                      std::size_t threads) const {
    return engine_.search_batch(queries, params.nprobe, k, threads,
                                [&](const float* q, ivf::probed lists, std::span<neighbor> out) {
                                  return refined(q, k, params.refine_factor, out, kept_vector(),
                                                 [&](std::span<neighbor> pool) {
                                                   return engine_.scan(q, lists, pool, accept_all{});
                                                 });
                                });
  }

  /// The k best into out, users' labels: scan_into(pool) ranks by the
  /// encoding's estimate into the pool (slots as labels), which is out
  /// itself when refine_factor = 0, else k * refine_factor candidates (all
  /// live vectors at most) re-ranked here by exact distance to
  /// vector_of(slot) (dim floats, stored form; ivf_pq's and ivf_pq_fs's
  /// kept vectors), the first lines of the next 32 candidates' vectors
  /// always being fetched. The candidates live in per-thread scratch.
  template <class VectorOf, class ScanInto>
  std::size_t refined(const float* q, std::size_t k, std::size_t refine_factor, std::span<neighbor> out,
                      const VectorOf& vector_of, const ScanInto& scan_into) const {
    if (refine_factor == 0) return labelled(out, scan_into(out.first(k)));
    const std::size_t n_live = size();
    const std::size_t want = refine_factor >= n_live / k ? n_live : k * refine_factor;
    scratch_lease<std::vector<neighbor>> candidates;
    if (candidates->size() < want) candidates->resize(want);
    const std::span<neighbor> pool = std::span(*candidates).first(want);
    const std::size_t n = scan_into(pool);
    // The first lines of the next rerank_window candidates are always in
    // flight: their misses overlap instead of queueing one vector at a time
    // (+9-10% QPS for ivf_pq_fs on Fashion-MNIST at refine x3, all 30
    // candidates in the window; a whole vector each, or the next one only,
    // gained nothing). The window bounds what is fetched ahead when k *
    // refine_factor is large.
    const std::size_t lines = std::min(rerank_prefetch_lines, lines_for(dim() * sizeof(float)));
    topk_heap best(out, k);
    for_each_prefetched(
        n, rerank_window, [&](std::size_t c) { prefetch_lines(vector_of(slot_t(pool[c].label)), lines); },
        [&](std::size_t c) {
          const slot_t s = slot_t(pool[c].label);
          best.push(s, Metric::distance(q, vector_of(s), dim()));
        });
    return labelled(out, best.sort());
  }

 private:
  // Lines of each re-rank candidate prefetched (measured: 4 and 16 gained
  // less than 8), and how many candidates ahead.
  static constexpr std::size_t rerank_prefetch_lines = 8, rerank_window = 32;

  auto kept_vector() const {
    return [this](slot_t s) { return engine_.encoding().vector(s); };
  }

 protected:

  engine engine_;
};

}  // namespace annulus::ivf
