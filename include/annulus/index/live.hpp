// live_index<Index>: one index served without a pause while it changes,
// is rebuilt, or is replaced.
//
//   annulus::live_index<hnsw_index<l2>> live(hnsw_index<l2>::build(data, {.m = 16}));
//   auto hits = live.search(query, 10, {.ef = 64});   // from any thread
//   live.add(rows, labels);  live.remove(label);      // writers, one at a time
//   std::jthread rebuilder([&] { live.rebuild({.m = 24}); });  // searches go on meanwhile
//   live.replace(hnsw_index<l2>::load("fresh.annulus"));        // swap in one built elsewhere
//   live.compact();                                   // hnsw: relink around removed nodes in place
//
// The served index is owned by a std::shared_ptr and published as a plain
// atomic pointer. A search counts itself in (core/grace.hpp: two atomic
// adds on a cache line its thread does not share, no lock) and
// searches the index published when it starts; a rebuild or a replace
// publishes a new one and then waits until every search that could have
// seen the old one has returned. So a search never waits for a swap, a
// search that started on the old index finishes on it, and the old index is
// freed by the thread that swapped, never by a query thread (unless a
// caller still holds it through snapshot(): then its last holder frees it).
//
// rebuild(params): copies the live vectors and labels out of the current
// index (the stored form: normalised under cosine), builds a fresh index
// from them on `threads` workers (retraining IVF coarse centroids and PQ
// codebooks, relinking a graph from scratch), while the current one keeps
// serving and taking adds, removes and updates. Those changes are logged,
// replayed on the fresh index, and the fresh one swapped in, all under the
// writer lock, so no change is lost. Costs: the time of a build; memory for
// two indexes, the copied vectors and the logged changes at once. IVF-PQ
// without keep_vectors stores only codes: rebuilding from its decoded
// approximations would train on its own error, so rebuild() refuses it;
// rebuild_from(data, labels, params) takes the original vectors instead.
//
// Threads: search, search_batch, range_search, contains, get, labels, size,
// memory_bytes and snapshot are safe from any number of threads, beside
// everything else. add, remove, update, rebuild and replace are serialised
// by this holder (rebuild holds the writer lock only to copy the vectors and
// to replay and swap, not while it builds). A search never waits for a
// rebuild or a swap. It waits for add, remove and update only where the
// index type cannot change beside searches (every type but hnsw_index and
// sharded_index over it: see writes_beside_searches).
//
// Failure: a rebuild that throws (bad_alloc, a bad parameter, a save that
// fails) leaves the current index serving, with every change made meanwhile;
// a failed add, remove or update leaves it as it was (the index's own
// guarantee).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/grace.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/index/concepts.hpp"

namespace annulus {

template <class Index>
  requires index<Index> && mutable_index<Index> && inspectable_index<Index>
class live_index {
 public:
  using metric_type = typename Index::metric_type;
  using build_params = typename Index::build_params;
  using search_params = typename Index::search_params;
  /// This holder's add, remove, update, rebuild and replace are safe beside its searches.
  static constexpr bool writes_beside_searches = true;

  /// Serves `initial` (moved in).
  explicit live_index(Index initial)
      : current_(std::make_shared<const Index>(std::move(initial))), serving_(current_.get()) {}
  live_index(const live_index&) = delete;
  live_index& operator=(const live_index&) = delete;

  /// The index serving now, kept alive for as long as the caller holds it
  /// (after a swap, the last holder frees it). For
  /// a sequence of calls that must see one index: health(), save(), a batch.
  /// Do not change it (const) and do not hold it for long.
  std::shared_ptr<const Index> snapshot() const {
    std::lock_guard hold(pointer_);
    return current_;
  }

  // ---- searches: those of Index, on the index serving when they start ----

  std::size_t search(std::span<const float> query, std::size_t k, const search_params& params,
                     std::span<neighbor> out) const {
    return reading([&](const Index& idx) { return idx.search(query, k, params, out); });
  }
  template <label_predicate Keep>
  std::size_t search(std::span<const float> query, std::size_t k, const search_params& params,
                     std::span<neighbor> out, const Keep& keep) const {
    return reading([&](const Index& idx) { return idx.search(query, k, params, out, keep); });
  }
  std::vector<neighbor> search(std::span<const float> query, std::size_t k, const search_params& params = {}) const {
    return reading([&](const Index& idx) { return idx.search(query, k, params); });
  }
  template <label_predicate Keep>
  std::vector<neighbor> search(std::span<const float> query, std::size_t k, const search_params& params,
                               const Keep& keep) const {
    return reading([&](const Index& idx) { return idx.search(query, k, params, keep); });
  }
  result_matrix search_batch(matrix_view<const float> queries, std::size_t k, const search_params& params = {},
                             std::size_t threads = 0) const {
    return reading([&](const Index& idx) { return idx.search_batch(queries, k, params, threads); });
  }
  std::vector<neighbor> range_search(std::span<const float> query, float radius,
                                     const search_params& params = {}) const {
    return reading([&](const Index& idx) { return idx.range_search(query, radius, params); });
  }

  std::size_t dim() const { return reading([](const Index& idx) { return idx.dim(); }); }
  std::size_t size() const { return reading([](const Index& idx) { return idx.size(); }); }
  std::size_t memory_bytes() const { return reading([](const Index& idx) { return idx.memory_bytes(); }); }
  bool contains(label_t label) const { return reading([&](const Index& idx) { return idx.contains(label); }); }
  std::vector<float> get(label_t label) const { return reading([&](const Index& idx) { return idx.get(label); }); }
  std::vector<label_t> labels() const { return reading([](const Index& idx) { return idx.labels(); }); }
  /// The serving index's health() (index/health.hpp).
  health_report health() const { return reading([](const Index& idx) { return idx.health(); }); }
  /// How many indexes were swapped in (rebuild, rebuild_from, replace) so far.
  std::size_t generation() const { return generation_.load(std::memory_order_acquire); }
  /// Whether a rebuild is building now (changes are being logged for it).
  bool rebuilding() const { return rebuilding_.load(std::memory_order_acquire); }

  // ---- changes: those of Index, one at a time, logged while a rebuild runs ----

  /// Adds `rows` under `labels` (empty = the index's default labels) to the
  /// serving index. Throws what Index::add throws, changing nothing.
  void add(matrix_view<const float> rows, std::span<const label_t> labels = {}, std::size_t threads = 0) {
    std::lock_guard writer(writer_);
    changing([&] { return change{adding{matrix<float>(rows), {labels.begin(), labels.end()}}}; },
             [&](Index& idx) { idx.add(rows, labels, threads); });
  }
  void add(std::span<const float> vector, label_t label) {
    add(matrix_view<const float>(vector.data(), 1, vector.size()), std::span<const label_t>(&label, 1), 1);
  }
  /// Removes `label`. Throws what Index::remove throws, changing nothing.
  void remove(label_t label) {
    std::lock_guard writer(writer_);
    changing([&] { return change{removing{label}}; }, [&](Index& idx) { idx.remove(label); });
  }
  /// Replaces the vector of `label`. Throws what Index::update throws, changing nothing.
  void update(label_t label, std::span<const float> vector) {
    std::lock_guard writer(writer_);
    changing([&] { return change{updating{label, {vector.begin(), vector.end()}}}; },
             [&](Index& idx) { idx.update(label, vector); });
  }

  /// The serving index's compact() (hnsw_index: relinks around removed
  /// nodes and gives their memory back, in place, without a rebuild; see its
  /// costs). Serialised with the other changes; searches go on.
  void compact(std::size_t threads = 0, std::size_t room_for = 0)
    requires requires(Index& idx) { idx.compact(threads, room_for); }
  {
    std::lock_guard writer(writer_);
    // Labels and vectors stay as they are, so a rebuild's log stays valid.
    if constexpr (annulus::writes_beside_searches<Index>) {
      serving_for_change().compact(threads, room_for);
    } else {
      std::unique_lock exclusive(access_);
      serving_for_change().compact(threads, room_for);
    }
  }

  // ---- replacing the index ----

  /// Builds a fresh index with `params` from the live vectors of the
  /// serving one, on `threads` workers (0 = all cores), and swaps it in (see
  /// the top of this file); with `save_to`, saves it there first (a failed
  /// save swaps nothing). Blocks the calling thread for a build: call it
  /// from a background thread. One rebuild at a time (a second waits).
  /// Throws invalid_argument for an empty index (nothing to build from) and
  /// for IVF-PQ without keep_vectors; what Index::build_with_labels throws;
  /// io_error from the save. On a throw the serving index is unchanged.
  void rebuild(const build_params& params, std::size_t threads = 0, const std::filesystem::path& save_to = {}) {
    std::lock_guard one_rebuild(rebuild_);
    matrix<float> vectors;
    std::vector<label_t> labels;
    {
      std::lock_guard writer(writer_);
      const std::shared_ptr<const Index> now = snapshot();
      refuse_codes_only(*now);
      labels = now->labels();
      if (labels.empty()) throw invalid_argument("live_index::rebuild: the index holds no vectors to rebuild from");
      vectors = matrix<float>(labels.size(), now->dim());
      for (std::size_t i = 0; i < labels.size(); ++i) {
        const std::vector<float> v = now->get(labels[i]);
        std::copy(v.begin(), v.end(), vectors.row_ptr(i));
      }
      start_log();
    }
    build_and_swap(vectors.view(), labels, params, threads, save_to);
  }

  /// The same from vectors the caller holds (the originals, e.g. for IVF-PQ
  /// without keep_vectors): `data` row i under `labels[i]` must be what the
  /// index should hold as of this call; changes made through this holder
  /// after the call starts are replayed on top. Throws as rebuild.
  void rebuild_from(matrix_view<const float> data, std::span<const label_t> labels, const build_params& params,
                    std::size_t threads = 0, const std::filesystem::path& save_to = {}) {
    std::lock_guard one_rebuild(rebuild_);
    {
      std::lock_guard writer(writer_);
      start_log();
    }
    build_and_swap(data, labels, params, threads, save_to);
  }

  /// Serves `fresh` from now on (an index built or loaded elsewhere; changes
  /// made through this holder meanwhile are not carried over). Waits for a
  /// running rebuild, then for the searches on the old index to end, and
  /// frees it. Throws dimension_mismatch when `fresh` has another dimension.
  void replace(Index fresh) {
    std::lock_guard one_rebuild(rebuild_);
    auto next = std::make_shared<const Index>(std::move(fresh));
    std::shared_ptr<const Index> old;
    {
      std::lock_guard writer(writer_);
      const std::size_t want = snapshot()->dim();
      if (next->dim() != want)
        throw dimension_mismatch("live_index::replace: the index serving has dimension " + std::to_string(want) +
                                 ", the replacement " + std::to_string(next->dim()));
      old = swap_in(std::move(next));
    }
    retire(std::move(old));
  }

 private:
  struct adding {
    matrix<float> rows;
    std::vector<label_t> labels;
  };
  struct removing {
    label_t label;
  };
  struct updating {
    label_t label;
    std::vector<float> vector;
  };
  using change = std::variant<adding, removing, updating>;

  template <class Read>
  decltype(auto) reading(Read&& read) const {
    const grace_period::reader counted(grace_);
    const Index& idx = *serving_.load();
    if constexpr (annulus::writes_beside_searches<Index>) {
      return read(idx);
    } else {
      std::shared_lock shared(access_);
      return read(idx);
    }
  }

  // The serving index is const to readers; its writers are serialised by
  // writer_ (and, for indexes that cannot change beside searches, by
  // access_), so changing it in place is safe.
  Index& serving_for_change() { return const_cast<Index&>(*serving_.load()); }

  // Applies `apply` to the serving index; while a rebuild runs, logs the
  // change (`record()`) first: allocated before the index changes, so a
  // change is never made and then lost; forgotten if `apply` throws.
  template <class Record, class Apply>
  void changing(Record&& record, Apply&& apply) {
    if (logging_) log_.push_back(record());
    try {
      if constexpr (annulus::writes_beside_searches<Index>) {
        apply(serving_for_change());
      } else {
        std::unique_lock exclusive(access_);
        apply(serving_for_change());
      }
    } catch (...) {
      if (logging_) log_.pop_back();
      throw;
    }
  }

  void start_log() {
    log_.clear();
    logging_ = true;
    rebuilding_.store(true, std::memory_order_release);
  }

  static void refuse_codes_only(const Index& idx) {
    if constexpr (requires { idx.keeps_vectors(); }) {
      if (!idx.keeps_vectors())
        throw invalid_argument(
            "live_index::rebuild: this index keeps PQ codes only (keep_vectors = false); retraining on their "
            "decoded approximations would train on its own error: use rebuild_from with the original vectors");
    }
  }

  void build_and_swap(matrix_view<const float> data, std::span<const label_t> labels, const build_params& params,
                      std::size_t threads, const std::filesystem::path& save_to) {
    std::shared_ptr<const Index> old;
    try {
      // The long part: no lock held, the old index serves and takes changes.
      auto fresh = std::make_shared<Index>(Index::build_with_labels(data, labels, params, threads));
      std::lock_guard writer(writer_);
      fresh->set_k_policy(snapshot()->get_k_policy());
      for (const change& c : log_) replay(*fresh, c, threads);
      if (!save_to.empty()) fresh->save(save_to);
      old = swap_in(std::move(fresh));
    } catch (...) {
      std::lock_guard writer(writer_);
      stop_log();
      throw;
    }
    retire(std::move(old));
  }

  static void replay(Index& idx, const change& c, std::size_t threads) {
    if (const auto* a = std::get_if<adding>(&c)) {
      idx.add(a->rows.view(), a->labels, threads);
    } else if (const auto* r = std::get_if<removing>(&c)) {
      idx.remove(r->label);
    } else {
      const auto& u = std::get<updating>(c);
      idx.update(u.label, u.vector);
    }
  }

  // Publishes `next` (writer_ and rebuild_ held); returns the index it replaces.
  std::shared_ptr<const Index> swap_in(std::shared_ptr<const Index> next) {
    std::shared_ptr<const Index> old;
    {
      std::lock_guard hold(pointer_);
      serving_.store(next.get());
      old = std::exchange(current_, std::move(next));
    }
    generation_.fetch_add(1, std::memory_order_acq_rel);
    stop_log();
    return old;
  }

  void stop_log() {
    logging_ = false;
    rebuilding_.store(false, std::memory_order_release);
    log_.clear();
    log_.shrink_to_fit();
  }

  // Frees `old` on this thread once no search can be using it: searches
  // that started before the swap finish on it, and none can start on it
  // now. rebuild_ is held, so waits for readers are one at a time.
  void retire(std::shared_ptr<const Index> old) const {
    grace_.wait_for_readers();
    old.reset();
  }

  mutable std::mutex pointer_;           // held to copy or exchange current_
  std::shared_ptr<const Index> current_;  // owns the serving index; never null
  std::atomic<const Index*> serving_;     // current_.get(), what searches load
  grace_period grace_;                    // searches counted in, for retire()
  std::atomic<std::size_t> generation_{0};
  std::atomic<bool> rebuilding_{false};
  mutable std::shared_mutex access_;  // searches against changes, for indexes that need it
  std::mutex writer_;                 // add, remove, update, the rebuild's copy and swap; guards the log
  std::mutex rebuild_;                // one rebuild or replace at a time
  bool logging_ = false;
  std::vector<change> log_;
};

}  // namespace annulus
