// hnsw_index: approximate search on a hierarchical navigable small-world
// graph (Malkov & Yashunin, 2016/2018).
//
//   auto idx = annulus::hnsw_index<l2>::build(data, {.m = 16, .ef_construction = 200});
//   auto hits = idx.search(query, 10, {.ef = 64});     // 10 closest, closest first
//   idx.add(more);  idx.remove(label);  idx.update(label, vector);
//   idx.search(query, 10, {.ef = 64}, [&](label_t l) { return in_stock(l); });
//
// Each node sits on layers 0..level, level = floor(-ln(U) / ln(m)); it links
// to at most m nodes on the upper layers and 2m on layer 0, chosen by the
// paper's diversity heuristic. A search descends greedily from the entry point
// through the upper layers, then runs a beam of width max(ef, k) on layer 0.
// Larger ef: higher recall, slower queries. Larger m: higher recall at a given
// ef and more memory (8m bytes a vector on layer 0).
//
// Memory: one record per slot of round_up(24 + 8m, 64) + round_up(4 dim, 64)
// bytes (links, header and vector together), plus 4 (m + 1) bytes per upper
// layer a node reaches (1/(m-1) layers a node on average), plus the label map
// (nothing while labels are row numbers). memory_bytes() counts all of it;
// per-thread search scratch (2 bytes a slot for the visited set) is not.
//
// Deletion: remove() leaves a tombstone that searches route through but never
// return; the next add reuses the slot, first relinking the tombstone's former
// neighbours among themselves, so a service that adds and removes forever
// stays at its peak size.
//
// Failure: add, remove and update either do all they say or throw and
// change nothing (out of memory included: everything the linking needs, the
// workers' scratch too, is allocated before the first change; per-thread
// scratch then holds a visited set and a frontier sized to the store, 10
// bytes a slot, the frontier reserved rather than touched).
//
// Threads: search (with or without a filter) is safe from any number of
// threads, also while add, remove or update run; those three take one writer
// lock, so they run one at a time (a batch add uses `threads` workers inside),
// and contains, neighbors, level, memory_bytes and reserve wait for it too.
// A search that overlaps an add may or may not see the vectors being added.
// Adds that reuse removed slots hold searches off while the reused vectors
// are overwritten (microseconds per vector). Moving or destroying the index
// while another thread uses it is not allowed. One thread and one seed build
// the same graph every time; more threads build an equally good but
// different one.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/labels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/prepare.hpp"
#include "annulus/core/scratch.hpp"
#include "annulus/core/slots.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/concepts.hpp"
#include "annulus/index/hnsw/graph.hpp"

namespace annulus {

template <metric Metric>
class hnsw_index : public vector_search<hnsw_index<Metric>> {
 public:
  using metric_type = Metric;

  struct build_params {
    std::size_t m = 16;                 ///< links per node on upper layers (2m on layer 0), 2..1024
    std::size_t ef_construction = 200;  ///< beam width while linking a new node (raised to m if smaller)
    std::uint64_t seed = 42;            ///< draws node levels
    std::size_t initial_capacity = 0;   ///< vectors to allocate room for up front (0 = grow on add)
  };
  struct search_params {
    std::size_t ef = 64;  ///< beam width on layer 0; raised to k if smaller
    /// Filtered search only: scan the passing vectors exactly, instead of a
    /// filtered beam, when P^2 <= filter_scan_ratio * ef * size(), P being
    /// the estimated number that pass; 4 is the break-even measured on
    /// Fashion-MNIST (the note above filter_sample). Negative: never scan up front.
    double filter_scan_ratio = 4;
  };

  /// Empty index for `dim`-dimensional vectors. Throws invalid_argument on
  /// dim = 0, m outside 2..1024 or ef_construction = 0, and what reserve
  /// throws for initial_capacity.
  explicit hnsw_index(std::size_t dim, const build_params& params = {})
      : dim_(dim), params_(checked(dim, params)),
        state_(std::make_unique<state>(dim, params_)) {
    reserve(params_.initial_capacity);
  }

  /// An index holding every row of `data` (labels = row numbers), linked by
  /// `threads` workers (0 = all cores). Throws invalid_argument on empty
  /// data, and what the constructor and add throw.
  static hnsw_index build(matrix_view<const float> data, const build_params& params = {},
                          std::size_t threads = 0) {
    if (data.rows() == 0 || data.cols() == 0)
      throw invalid_argument("hnsw_index::build: empty data (" + std::to_string(data.rows()) +
                             " x " + std::to_string(data.cols()) + ")");
    build_params p = params;
    p.initial_capacity = std::max(p.initial_capacity, data.rows());
    hnsw_index idx(data.cols(), p);
    idx.add(data, {}, threads);
    return idx;
  }

  std::size_t dim() const { return dim_; }
  /// Vectors that searches can return (removed ones excluded).
  std::size_t size() const { return state_->live.load(std::memory_order_acquire); }
  const build_params& params() const { return params_; }

  /// Allocates room for n slots now, so adds up to that many do not grow the
  /// store. Throws capacity_error beyond 2^32 - 1 slots, std::bad_alloc.
  void reserve(std::size_t n) {
    if (n > label_map::max_slots)
      throw capacity_error("hnsw_index: room for " + std::to_string(n) + " vectors asked, the limit is " +
                           std::to_string(label_map::max_slots));
    std::lock_guard lock(state_->writer);
    graph().store().reserve(n);
  }

  /// Whether `label` is in the index (and not removed).
  bool contains(label_t label) const {
    std::lock_guard lock(state_->writer);
    return state_->slots.find(label).has_value();
  }

  /// Adds the rows of `data` with `labels` (empty = continue the row
  /// numbering: the count of vectors ever added), linking them on `threads`
  /// workers (0 = all cores). Removed slots are reused first.
  /// Throws dimension_mismatch (wrong column count), invalid_argument (NaN or
  /// Inf, zero vector under cosine, label count, a label already present or
  /// repeated), capacity_error (more than 2^32 - 1 slots), std::bad_alloc;
  /// then the index is unchanged (everything the linking needs, per-thread
  /// scratch included, is allocated before the first change).
  void add(matrix_view<const float> data, std::span<const label_t> labels = {},
           std::size_t threads = 0) {
    validate_rows<Metric>("data", data, dim_);
    std::lock_guard lock(state_->writer);
    add_locked(data, labels, threads);
  }

  /// Adds one vector under `label`. Throws as the batch add.
  void add(std::span<const float> vector, label_t label) {
    const matrix_view<const float> row(vector.data(), 1, vector.size());
    add(row, std::span(&label, 1), 1);
  }

  /// Removes `label`: no search that starts after this returns it; its slot
  /// goes to the next add. Throws invalid_argument if the label is not in the index.
  void remove(label_t label) {
    std::lock_guard lock(state_->writer);
    remove_locked(label, "remove");
  }

  /// Replaces the vector of `label` in its slot, relinking it as an add
  /// that reuses the slot would (a search running meanwhile sees the old or
  /// the new vector, linked by the old or the new links). Throws
  /// invalid_argument for an unknown label, dimension_mismatch and
  /// invalid_argument for a bad vector, std::bad_alloc; then the index is
  /// unchanged.
  void update(label_t label, std::span<const float> vector) {
    const matrix_view<const float> row(vector.data(), 1, vector.size());
    validate_rows<Metric>("vector", row, dim_);
    std::lock_guard lock(state_->writer);
    const slot_t s = state_->slots.slot_of(label, "update");
    link_plan plan;
    prepare(plan, {&s, 1}, 1, 0, 1);
    link(row, plan, 1);
  }

  /// The k closest vectors to `query`, closest first, written to `out` (size
  /// >= k); returns how many (k, unless ef's beam met fewer live vectors).
  /// Allocates nothing once the calling thread has searched an index this
  /// large with this ef before (per-thread scratch grows, then is reused).
  /// Throws dimension_mismatch, invalid_argument (k = 0, k > size(), output
  /// too small, NaN/Inf or, under cosine, zero query).
  std::size_t search(std::span<const float> query, std::size_t k, const search_params& params,
                     std::span<neighbor> out) const {
    return search_impl(query, k, params, out, static_cast<const accept_all*>(nullptr));
  }

  /// As search, returning only vectors whose label passes `keep`. Nodes that
  /// fail still route the beam. When an estimate from a sample of the slots
  /// says few vectors pass, or the beam finds fewer than k, the passing
  /// vectors are scanned exactly instead (search_params::filter_scan_ratio). Returns
  /// fewer than k when fewer than k pass. `keep` is called from the
  /// searching thread while the search holds the index's shared lock: it
  /// must not call any member of this index (a reusing add waiting for the
  /// lock would deadlock with it).
  template <label_predicate Keep>
  std::size_t search(std::span<const float> query, std::size_t k, const search_params& params,
                     std::span<neighbor> out, const Keep& keep) const {
    return search_impl(query, k, params, out, &keep);
  }

  using vector_search<hnsw_index>::search;  // the std::vector-returning forms

  /// The labels `label` links to on `layer` (for inspection and tests; may
  /// include removed vectors, which still route). Throws invalid_argument for
  /// an unknown label or a layer above level(label).
  std::vector<label_t> neighbors(label_t label, std::size_t layer = 0) const {
    std::lock_guard lock(state_->writer);
    const slot_t s = slot_of(label, "neighbors");
    if (layer > store().header(s).level)
      throw invalid_argument("neighbors: label " + std::to_string(label) + " is on layers 0.." +
                             std::to_string(store().header(s).level) + ", not " + std::to_string(layer));
    std::vector<label_t> out;
    const hnsw_detail::link_list l = store().links(s, layer);
    for (std::uint32_t i = 0, n = l.size(); i < n; ++i) out.push_back(store().header(l[i]).label);
    return out;
  }
  /// The highest layer `label` is on. Throws invalid_argument for an unknown label.
  std::size_t level(label_t label) const {
    std::lock_guard lock(state_->writer);
    return store().header(slot_of(label, "level")).level;
  }

  /// Bytes of heap memory the index holds: node records (allocated capacity),
  /// upper-layer links, label map and free list.
  std::size_t memory_bytes() const {
    std::lock_guard lock(state_->writer);
    return graph().store().bytes() + state_->upper_words.load() * sizeof(std::uint32_t) +
           state_->slots.memory_bytes();
  }

  // filter_scan_ratio's form: a beam that may return only a fraction p of
  // the nodes scores about c * ef / p of them, a scan scores P = p * size(),
  // so they cost the same where P^2 = c * ef * size(). Measured on
  // Fashion-MNIST (bench/hnsw_filter_bench.cpp; m = 16, p from 0.5% to 20%,
  // ef 32/64/128): the two cross at p = 5%, 6% and 8% for ef = 32, 64 and
  // 128, c = 4.5, 3.3 and 2.9 (docs/benchmarks.md); near the crossing either
  // path is within 10-20% of the other, so 4 errs little either way.
  /// Slots sampled to estimate how many vectors pass a filter.
  static constexpr std::size_t filter_sample = 128;

 private:
  using graph_type = hnsw_detail::graph<Metric>;
  using node_state = hnsw_detail::node_state;

  struct state {
    state(std::size_t dim, const build_params& p) : graph(dim, p.m, p.ef_construction, p.seed) {}
    ~state() {
      // Upper-layer link blocks are owned by their node headers.
      const hnsw_detail::node_store& store = graph.store();
      for (std::size_t s = 0; s < slots.slots(); ++s) delete[] store.header(slot_t(s)).upper;
    }
    state(const state&) = delete;
    state& operator=(const state&) = delete;

    graph_type graph;
    slot_directory slots;          // labels and free slots; writer side only (searches read
                                   // labels from node headers)
    std::atomic<std::size_t> live{0};
    std::atomic<std::size_t> tombstones{0};
    std::atomic<std::size_t> upper_words{0};
    mutable std::mutex writer;              // add, remove, update, reserve, memory_bytes
    mutable std::shared_mutex structure;    // exclusive only while reused slots are overwritten
    // glibc's shared_mutex lets new readers in while a writer waits, so a
    // stream of searches could hold a reusing add off forever: the add raises
    // `overwriting` and holds `gate`, and searches that see the flag queue
    // on the gate instead of taking the shared lock.
    std::atomic<bool> overwriting{false};
    mutable std::mutex gate;
  };

  static build_params checked(std::size_t dim, build_params p) {
    if (dim == 0) throw invalid_argument("hnsw_index: dimension must be at least 1, got 0");
    if (p.m < 2 || p.m > 1024)
      throw invalid_argument("hnsw_index: m must be in 2..1024, got " + std::to_string(p.m));
    if (p.ef_construction == 0) throw invalid_argument("hnsw_index: ef_construction must be at least 1, got 0");
    p.ef_construction = std::max(p.ef_construction, p.m);
    return p;
  }

  graph_type& graph() const { return state_->graph; }
  const hnsw_detail::node_store& store() const { return state_->graph.store(); }

  slot_t slot_of(label_t label, const char* what) const { return state_->slots.slot_of(label, what); }

  void remove_locked(label_t label, const char* what) {
    state& st = *state_;
    const slot_t slot = st.slots.release(label, what);  // on a throw, nothing changed
    store().set_state(slot, node_state::deleted);
    st.tombstones.fetch_add(1, std::memory_order_release);
    st.live.fetch_sub(1, std::memory_order_release);
  }

  // What linking rows into slots takes, all allocated before the first
  // change (prepare), so that link() cannot fail halfway.
  struct link_plan {
    std::vector<slot_t> slots;  // `reused` slots that held a vector (relinked), then fresh ones
    std::size_t reused = 0;
    std::size_t revived = 0;    // of the reused, those that were removed (the rest are updates)
    std::vector<std::unique_ptr<std::uint32_t[]>> upper;  // fresh slots' upper-layer lists
    std::vector<std::uint8_t> levels;                     // fresh slots' levels
    std::size_t new_words = 0;
    std::vector<std::vector<std::vector<slot_t>>> former;  // reused slots' neighbours, per layer
    scratch_lease<hnsw_detail::scratch> scratch;           // the calling thread's
    std::vector<hnsw_detail::scratch> worker_scratch;      // the other workers'
  };

  // Plans linking `reused` slots (`revived` of them removed ones) followed by
  // fresh ones up to slots.size(), on `threads` workers. Changes nothing in
  // the index but the store's room; throws std::bad_alloc.
  void prepare(link_plan& p, std::span<const slot_t> slots, std::size_t reused, std::size_t revived,
               std::size_t threads) {
    const hnsw_detail::node_store& nodes = store();
    const std::size_t n = slots.size(), fresh = n - reused;
    p.slots.assign(slots.begin(), slots.end());
    p.reused = reused;
    p.revived = revived;
    if (fresh > 0) graph().store().reserve(std::size_t(slots.back()) + 1);  // fresh slots are consecutive
    p.upper.resize(fresh);
    p.levels.resize(fresh);
    for (std::size_t i = 0; i < fresh; ++i) {
      p.levels[i] = static_cast<std::uint8_t>(graph().draw_level(slots[reused + i]));
      const std::size_t words = nodes.upper_words(p.levels[i]);
      if (words) p.upper[i].reset(new std::uint32_t[words]());
      p.new_words += words;
    }
    p.former.resize(reused);
    for (std::size_t i = 0; i < reused; ++i) {
      const std::size_t level = nodes.header(slots[i]).level;
      p.former[i].resize(level + 1);
      for (std::size_t layer = 0; layer <= level; ++layer) {
        const hnsw_detail::link_list l = nodes.links(slots[i], layer);
        for (std::uint32_t j = 0, c = l.size(); j < c; ++j) p.former[i][layer].push_back(l[j]);
      }
    }
    graph().reserve_scratch(*p.scratch);
    p.worker_scratch.resize(worker_count(n, threads) - 1);
    for (hnsw_detail::scratch& sc : p.worker_scratch) graph().reserve_scratch(sc);
  }

  // Writes the rows of `data` into the planned slots and links them. Cannot
  // fail: everything was allocated by prepare (a worker thread that cannot
  // start leaves its rows to the others).
  void link(matrix_view<const float> data, link_plan& p, std::size_t threads) {
    state& st = *state_;
    const hnsw_detail::node_store& nodes = store();
    const std::size_t n = p.slots.size(), reused = p.reused;
    if (reused > 0) {
      // Searches may be reading the old vectors: overwrite them with none running.
      std::lock_guard queue(st.gate);
      st.overwriting.store(true, std::memory_order_seq_cst);
      std::unique_lock hold(st.structure);
      for (std::size_t i = 0; i < reused; ++i) {
        // The old links stay until the insert replaces them layer by layer:
        // they still route, which matters when the slot is the entry point.
        hnsw_detail::node_header& h = nodes.header(p.slots[i]);
        h.label = st.slots.label(p.slots[i]);
        store_rows<Metric>(data.rows_slice(i, 1), nodes.vector(p.slots[i]));
        nodes.set_state(p.slots[i], node_state::live);
      }
      st.tombstones.fetch_sub(p.revived, std::memory_order_release);
      st.overwriting.store(false, std::memory_order_release);
    }
    st.upper_words.fetch_add(p.new_words);

    parallel_for(n, threads, [&](std::size_t i, std::size_t worker) {
      const slot_t s = p.slots[i];
      hnsw_detail::scratch& sc = worker == 0 ? *p.scratch : p.worker_scratch[worker - 1];
      if (i >= reused) {
        hnsw_detail::node_header& h = nodes.header(s);
        h.count = 0;
        h.level = p.levels[i - reused];
        h.lock = 0;
        h.label = st.slots.label(s);
        h.upper = p.upper[i - reused].release();
        store_rows<Metric>(data.rows_slice(i, 1), nodes.vector(s));
        nodes.set_state(s, node_state::live);
      } else {
        for (std::size_t layer = 0; layer < p.former[i].size(); ++layer)
          graph().repair(s, layer, p.former[i][layer], sc);
      }
      graph().insert(s, sc);
      if (i < p.revived || i >= reused) st.live.fetch_add(1, std::memory_order_release);
    });
  }

  // Caller holds the writer lock; data passed validate_rows.
  void add_locked(matrix_view<const float> data, std::span<const label_t> labels, std::size_t threads) {
    state& st = *state_;
    st.slots.check_new(data.rows(), labels);
    const std::size_t n = data.rows();
    if (n == 0) return;
    const std::vector<slot_t> slots = st.slots.plan(n);  // removed slots first, then fresh ones
    const std::size_t reused = std::min(n, st.slots.slots() - st.slots.live());
    link_plan plan;
    prepare(plan, slots, reused, reused, threads);
    st.slots.commit(n, labels);  // the last step that can throw (then it recorded nothing)
    link(data, plan, threads);
  }

  template <class Keep>
  std::size_t search_impl(std::span<const float> query, std::size_t k, const search_params& params,
                          std::span<neighbor> out, const Keep* keep) const {
    if (state_->overwriting.load(std::memory_order_acquire)) {
      std::lock_guard wait(state_->gate);  // let the waiting overwrite go first
    }
    std::shared_lock hold(state_->structure);
    check::k_in_range(k, size());
    check::output_size(out.size(), k);
    scratch_lease<hnsw_detail::scratch> sc;
    if (sc->query.size() < dim_) sc->query.resize(dim_);
    const float* q = prepare_query<Metric>(query, dim_, sc->query).data();
    const std::size_t ef = std::max(params.ef, k);
    const hnsw_detail::node_store& nodes = store();
    const bool tombstones = state_->tombstones.load(std::memory_order_acquire) > 0;

    if constexpr (std::is_same_v<Keep, accept_all>) {
      auto live = [&](slot_t s) { return nodes.state(s) == node_state::live; };
      const std::size_t found = tombstones ? beam_search(q, k, ef, live, *sc, out)
                                           : beam_search(q, k, ef, hnsw_detail::any_node{}, *sc, out);
      // k results whenever k vectors are live: a beam that fell short (a
      // region it could not leave) is replaced by an exact scan.
      if (found == k) return found;
      return exact_scan(q, k, live, out);
    } else {
      auto passes = [&](slot_t s) {
        return nodes.state(s) == node_state::live && (*keep)(nodes.header(s).label);
      };
      if (!few_pass(passes, ef, params.filter_scan_ratio)) {
        const std::size_t found = beam_search(q, k, ef, passes, *sc, out);
        if (found == k) return found;
      }
      return exact_scan(q, k, passes, out);
    }
  }

  template <class Returnable>
  std::size_t beam_search(const float* q, std::size_t k, std::size_t ef, const Returnable& returnable,
                          hnsw_detail::scratch& sc, std::span<neighbor> out) const {
    const graph_type& g = graph();
    g.beam(q, g.descend(q, 0, store().capacity()), ef, 0, returnable, sc);
    // The k closest, in any order (out is sorted below): linear in ef.
    const std::size_t n = std::min(k, sc.best.size());
    std::nth_element(sc.best.begin(), sc.best.begin() + n, sc.best.end());
    for (std::size_t i = 0; i < n; ++i) out[i] = {store().header(sc.best[i].slot).label, sc.best[i].distance};
    std::sort(out.begin(), out.begin() + n, closer);  // ties by label, as every index orders them
    return n;
  }

  // Whether, by a sample of evenly spaced slots, few enough vectors pass that
  // scanning them beats a filtered beam (filter_scan_ratio).
  template <class Passes>
  bool few_pass(const Passes& passes, std::size_t ef, double ratio) const {
    if (ratio < 0) return false;
    const std::size_t slots = store().capacity();
    const std::size_t samples = std::min(slots, filter_sample);
    std::size_t used = 0, pass = 0;
    for (std::size_t i = 0; i < samples; ++i) {
      const slot_t s = slot_t(i * slots / samples);
      if (store().state(s) == node_state::empty) continue;
      ++used;
      pass += passes(s);
    }
    if (used == 0) return true;
    // `used` counts tombstones too, so scale by every slot in use.
    const double in_use = double(size() + state_->tombstones.load(std::memory_order_relaxed));
    const double expected = double(pass) / double(used) * in_use;
    return expected * expected <= ratio * double(ef) * double(size());
  }

  static constexpr std::size_t scan_prefetch = 16;  // headers fetched ahead by the exact scan

  template <class Passes>
  std::size_t exact_scan(const float* q, std::size_t k, const Passes& passes, std::span<neighbor> out) const {
    topk_heap heap(out, k);
    const std::size_t slots = store().capacity();
    float threshold = heap.threshold();
    for (std::size_t s = 0; s < slots; ++s) {
      // Headers are a record apart: too far for the hardware to guess.
      if (s + scan_prefetch < slots) __builtin_prefetch(store().record(slot_t(s + scan_prefetch)), 0, 0);
      if (!passes(slot_t(s))) continue;
      const float d = graph().distance(q, slot_t(s));
      if (d <= threshold && heap.push(s, d)) threshold = heap.threshold();
    }
    const std::size_t n = heap.sort();
    for (std::size_t i = 0; i < n; ++i) out[i].label = store().header(slot_t(out[i].label)).label;
    std::sort(out.begin(), out.begin() + n, closer);
    return n;
  }

  std::size_t dim_;
  build_params params_;
  std::unique_ptr<state> state_;
};

}  // namespace annulus
