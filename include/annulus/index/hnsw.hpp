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
// paper's diversity heuristic relaxed by alpha (build_params::alpha, 1.05:
// a few more long links, fewer hops a search). A search descends greedily
// from the entry point through the upper layers, then runs a beam of width
// max(ef, k) on layer 0.
// Larger ef: higher recall, slower queries. Larger m: higher recall at a given
// ef and more memory (8m bytes a vector on layer 0).
//
// hnsw_sq8_index<Metric> (= hnsw_index<Metric, sq8_walk>, at the end of this
// file) is the same graph walked on an 8-bit code of each node, the beam's
// closest by code (search_params::rerank, max(8k, 64) by default) re-ranked
// on the vectors: dim bytes more a node, a quarter of the bytes read per
// node visited.
//
// The public calls (search forms, batch, range search, add, remove, update,
// contains, get, labels, k policy) come from index/base.hpp; this file is
// the graph's bookkeeping: slots, labels, locks, and the search paths.
//
// Ownership: the index copies what it is given (normalised under cosine,
// which is what get() returns); the node store owns records and links.
//
// Memory: one record per slot of round_up(24 + 8m, 64) + round_up(4 dim, 64)
// bytes (links, header and vector together; hnsw_sq8_index adds
// round_up(dim, 64) for the code, and 8 dim bytes once for the codes'
// ranges) and 8 bytes for the owner of its upper-layer links, plus 4 (m + 1)
// bytes per upper layer a node reaches (1/(m-1) layers a node on average), plus the label map (nothing while
// labels are row numbers). memory_bytes() counts all of it; per-thread
// search scratch (2 bytes a slot for the visited set) is not. A search
// allocates nothing once the calling thread has searched an index this large
// with this ef before (per-thread scratch grows, then is reused).
//
// Deletion: remove() leaves a tombstone that searches route through but never
// return; its slot goes back to the slot_directory (core/slots.hpp), and the
// next add reuses it, first relinking the tombstone's former neighbours among
// themselves, so a service that adds and removes forever stays at its peak
// size. update() rewrites the vector in its slot and relinks it the same way
// (a search running meanwhile sees the old or the new vector, linked by the
// old or the new links).
//
// Layout: reorder() (or build with .reorder = true) renumbers the nodes
// breadth first over layer 0, so that linked nodes sit near each other in
// memory: 4-23% more QPS at equal ef for the walk on codes, 0-7% for the
// walk on vectors, measured on 10^6 vectors of d = 128, for a label map of
// about 16 bytes a vector (docs/design.md, "Node layout").
//
// Filtered search: nodes that fail the filter still route the beam. When an
// estimate from a sample of the slots says few vectors pass, or the beam
// finds fewer than k, the passing vectors are scanned exactly instead
// (search_params::filter_scan_ratio). Unfiltered, a beam that meets fewer
// than k live vectors is replaced by an exact scan too.
//
// Failure: add, remove and update either do all they say or throw and
// change nothing (out of memory included: everything the linking needs, the
// workers' scratch too, is allocated before the first change; per-thread
// scratch then holds a visited set sized to the store, 2 bytes a slot).
//
// Threads: search (with or without a filter) is safe from any number of
// threads, also while add, remove or update run; those three take one writer
// lock, so they run one at a time (a batch add uses `threads` workers inside),
// and contains, get, labels, neighbors, level, memory_bytes, reserve and
// health wait for it too (health holds writers off for its walk of layer
// 0). A filter is called while the search holds the index's shared lock: it
// must not call any member of this index (a reusing add waiting for the lock
// would deadlock with it).
// A search that overlaps an add may or may not see the vectors being added.
// Adds that reuse removed slots hold searches off while the reused vectors
// are overwritten (microseconds per vector). Moving or destroying the index
// while another thread uses it is not allowed. One thread and one seed build
// the same graph every time; more threads build an equally good but
// different one.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/labels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/prefetch.hpp"
#include "annulus/core/prepare.hpp"
#include "annulus/core/random.hpp"
#include "annulus/core/scratch.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/core/slots.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/index/concepts.hpp"
#include "annulus/index/health.hpp"
#include "annulus/index/hnsw/graph.hpp"

namespace annulus {

/// hnsw_index's build parameters (both walks take the same).
struct hnsw_build_params {
  std::size_t m = 16;                 ///< links per node on upper layers (2m on layer 0), 2..1024
  std::size_t ef_construction = 200;  ///< beam width while linking a new node (raised to m if smaller)
  /// Link pruning slack, DiskANN's alpha, in 1..2: a candidate is left out
  /// of a node's list when a neighbour already kept is closer to it than
  /// 1/alpha of its distance to the node. 1 is the HNSW paper's rule; about
  /// 1.05 keeps more long links, for fewer hops a search: 1.25-1.27x the QPS
  /// at recall 0.95 on 10^5-10^6 clustered vectors, +6-12% on Fashion-MNIST
  /// (measured at alpha 1.049; docs/design.md), at 2-12% more build time.
  /// Under l2 and cosine; inner_product ignores it (its distances can be
  /// negative).
  double alpha = 1.05;
  std::uint64_t seed = default_seed;  ///< draws node levels
  std::size_t initial_capacity = 0;   ///< vectors to allocate room for up front (0 = grow on add)
  /// build() only: after linking, lay the nodes out breadth first
  /// (hnsw_index::reorder). Costs about a tenth of the build's time and,
  /// unless labels were given in that order, a label map (about 16 bytes a
  /// vector); measured gains are in docs/benchmarks.md.
  bool reorder = false;
};
/// hnsw_index's search parameters.
struct hnsw_search_params {
  std::size_t ef = 64;  ///< beam width on layer 0; raised to k if smaller
  /// Filtered search only: scan the passing vectors exactly, instead of a
  /// filtered beam, when P^2 <= filter_scan_ratio * ef * size(), P being
  /// the estimated number that pass; 4 is the break-even measured on
  /// Fashion-MNIST (the note above filter_sample). Negative: never scan up front.
  double filter_scan_ratio = 4;
  /// hnsw_sq8_index only: how many of the beam's closest by code distance
  /// get their exact distance (a read of the vector each) before the k
  /// closest are chosen; raised to k, at most the beam. 0, the default:
  /// max(8 k, 64), which matched the whole beam's recall@10 within 0.0001
  /// at ef 384-768 on 10^6 clustered vectors (d = 128) and exactly at ef
  /// 128-256 on the default set (l2, cosine, inner product), at 5-19% more
  /// QPS at 10^6 (docs/design.md, "Re-ranking"). Fewer risk missing a neighbour
  /// whose code ranked it below that many (3 k lost 0.002 there, k 0.1);
  /// rerank_all re-ranks the whole beam.
  std::size_t rerank = 0;
  static constexpr std::size_t rerank_all = std::numeric_limits<std::size_t>::max();
};

/// How hnsw_index walks its graph (its second template argument).
/// exact_walk: on the stored vectors.
struct exact_walk {};
/// sq8_walk: on an 8-bit code of each node (quant/sq8.hpp) kept in its
/// record between the links and the vector, dim bytes a node, with the beam's
/// closest by code (search_params::rerank of them) re-ranked on the vectors.
/// See hnsw_sq8_index.
struct sq8_walk {};

template <metric Metric, class Walk = exact_walk>
class hnsw_index : public index_base<hnsw_index<Metric, Walk>, Metric> {
  using base = index_base<hnsw_index<Metric, Walk>, Metric>;
  friend base;
  static_assert(std::is_same_v<Walk, exact_walk> || std::is_same_v<Walk, sq8_walk>);

 public:
  using walk_type = Walk;
  /// Whether searches walk node codes (hnsw_sq8_index) rather than vectors.
  static constexpr bool walks_codes = std::is_same_v<Walk, sq8_walk>;
  static constexpr std::string_view index_name = walks_codes ? "hnsw_sq8_index" : "hnsw_index";
  static constexpr std::string_view file_kind = walks_codes ? "hnsw_sq8" : "hnsw";
  static constexpr bool viewable = true;
  /// add, remove and update may run beside searches (see Threads above; live_index reads this).
  static constexpr bool writes_beside_searches = true;

  using build_params = hnsw_build_params;
  using search_params = hnsw_search_params;

  /// Empty index for `dim`-dimensional vectors. Throws invalid_argument on
  /// dim = 0, m outside 2..1024, ef_construction outside 1..2^20 or alpha
  /// outside 1..2 (NaN included), and what reserve throws for initial_capacity.
  explicit hnsw_index(std::size_t dim, const build_params& params = {})
      : hnsw_index(dim, params, terms_by_default(dim)) {}

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

  /// Relinks the graph around removed nodes and gives their memory back,
  /// without a rebuild: each list that names a removed node re-selects (the
  /// build's heuristic) among its other links and the removed node's links
  /// (graph::relinked), and the live nodes move, in slot order, into a store
  /// of exactly their size. Labels, vectors, levels and the links of nodes
  /// that named no removed node are kept as they are. Afterwards
  /// health().removed_unreclaimed is 0 and memory_bytes() is about a fresh
  /// build's of the live vectors.
  /// Cost: for the lists that named removed nodes, a selection each (tens
  /// to hundreds of distances); a copy of every live record; on `threads`
  /// workers (0 = all cores). Memory: the old and the new store at once
  /// until it returns. Threads: searches run on the old graph meanwhile and
  /// wait only while the new one is swapped in (a pointer move); add,
  /// remove and update wait for the whole call. Does nothing when no
  /// vector was removed since the last compaction. `room_for`: vectors to
  /// keep room for (0 or fewer than the live ones: exactly the live ones);
  /// pass the size the index grows back to, since a store that grows past
  /// its room allocates a block as large as all it has (a churning index
  /// compacted to its live size would double at its next add). Throws
  /// read_only_error on a view, capacity_error above 2^32 - 1 slots,
  /// std::bad_alloc (then the index is unchanged).
  void compact(std::size_t threads = 0, std::size_t room_for = 0) {
    check_room_for(room_for, "compact");
    this->refuse_if_view("compact");
    std::lock_guard lock(state_->writer);
    const slot_directory& dir = state_->slots;
    const std::size_t slots = dir.slots();
    if (dir.live() == slots) return;
    std::vector<slot_t> order;
    order.reserve(dir.live());
    for (std::size_t s = 0; s < slots; ++s)
      if (store().state(slot_t(s)) == node_state::live) order.push_back(slot_t(s));
    renumber(order, threads, room_for);
  }

  /// Renumbers the nodes so that nodes linked on layer 0 sit near each
  /// other in memory: the entry region first, then breadth first from it
  /// over layer-0 links (graph::locality_order), so a search's next records
  /// are more often in cache (measured: docs/benchmarks.md). Also does what
  /// compact() does: removed nodes are relinked around and dropped, and the
  /// few live nodes no walk reached are linked in, so answers may differ
  /// slightly from before (recall measured about equal). Labels stay
  /// with their vectors. Cost: a breadth-first walk and a copy of every
  /// record; memory, threads and failure as compact(). Throws as compact().
  void reorder(std::size_t threads = 0, std::size_t room_for = 0) {
    check_room_for(room_for, "reorder");
    this->refuse_if_view("reorder");
    std::lock_guard lock(state_->writer);
    if (state_->slots.slots() == 0) return;
    renumber(graph().locality_order(state_->slots.slots()), threads, room_for);
  }

  /// The labels `label` links to on `layer` (for inspection and tests; may
  /// include removed vectors, which still route). Throws invalid_argument for
  /// an unknown label or a layer above level(label).
  std::vector<label_t> neighbors(label_t label, std::size_t layer = 0) const {
    std::lock_guard lock(state_->writer);
    const slot_t s = slot_of(label, "neighbors");
    if (layer > store().level(s))
      throw invalid_argument("neighbors: label " + std::to_string(label) + " is on layers 0.." +
                             std::to_string(store().level(s)) + ", not " + std::to_string(layer));
    std::vector<label_t> out;
    const hnsw_detail::link_list l = store().links(s, layer);
    for (std::uint32_t i = 0, n = l.size(); i < n; ++i)
      if (l[i] < store().capacity()) out.push_back(store().header(l[i]).label);  // a view's links are unchecked
    return out;
  }
  /// The highest layer `label` is on. Throws invalid_argument for an unknown label.
  std::size_t level(label_t label) const {
    std::lock_guard lock(state_->writer);
    return store().level(slot_of(label, "level"));
  }

  /// Bytes of heap memory the index holds: node records (allocated capacity)
  /// and the owners of their upper-layer links, the upper-layer links, label
  /// map and free list.
  std::size_t memory_bytes() const {
    std::lock_guard lock(state_->writer);
    return store().bytes() + state_->slots.memory_bytes() + ranges_bytes();
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
    state(std::size_t dim, const build_params& p, bool terms)
        : graph(dim, p.m, p.ef_construction, p.seed, p.alpha, code_bytes(dim, terms)), quantizer(walks_codes ? dim : 0),
          code_terms(terms) {}

    graph_type graph;
    sq8_quantizer quantizer;       // walks_codes: trained by the first add (or a file), before any node
                                   // exists; unchanged after
    // walks_codes under l2: whether each record's code is followed by its
    // term (sq8_quantizer::put_term), which the integer walk needs. Files
    // written before the integer walk have none: loaded or viewed, they
    // keep that layout and walk on floats.
    bool code_terms;
    slot_directory slots;          // labels and free slots; writer side only (searches read
                                   // labels from node headers)
    std::atomic<std::size_t> live{0};
    std::atomic<std::size_t> tombstones{0};
    mutable std::mutex writer;              // add, remove, update, reserve, and what reads `slots`
    mutable std::shared_mutex structure;    // exclusive only while reused slots are overwritten
    // glibc's shared_mutex lets new readers in while a writer waits, so a
    // stream of searches could hold a reusing add off forever: the add raises
    // `overwriting` and holds `gate`, and searches that see the flag queue
    // on the gate instead of taking the shared lock.
    std::atomic<bool> overwriting{false};
    mutable std::mutex gate;
  };

  // Each insert keeps a candidate pool of about this many: a beam of a
  // million is far past any recall gain, and a file asking for more is
  // damaged (the fuzzer found one asking for 2^31, 34 GB at the next add).
  static constexpr std::size_t max_ef_construction = std::size_t{1} << 20;
  // alpha's range: below 1 would prune more than the paper's rule, above 2
  // keeps nearly every candidate.
  static constexpr double min_alpha = 1.0, max_alpha = 2.0;
  static bool alpha_in_range(double alpha) { return alpha >= min_alpha && alpha <= max_alpha; }  // false on NaN
  static std::string alpha_range() { return "1..2"; }

  static build_params checked(std::size_t dim, build_params p) {
    if (dim == 0) throw invalid_argument("hnsw_index: dimension must be at least 1, got 0");
    if (p.m < 2 || p.m > 1024)
      throw invalid_argument("hnsw_index: m must be in 2..1024, got " + std::to_string(p.m));
    if (p.ef_construction == 0 || p.ef_construction > max_ef_construction)
      throw invalid_argument("hnsw_index: ef_construction must be in 1.." + std::to_string(max_ef_construction) +
                             ", got " + std::to_string(p.ef_construction));
    if (!alpha_in_range(p.alpha))
      throw invalid_argument("hnsw_index: alpha must be in " + alpha_range() + ", got " + std::to_string(p.alpha));
    p.ef_construction = std::max(p.ef_construction, p.m);
    return p;
  }

  // The private constructor: `terms` as state::code_terms.
  hnsw_index(std::size_t dim, const build_params& params, bool terms)
      : dim_(dim), params_(checked(dim, params)), state_(std::make_unique<state>(dim, params_, terms)) {
    reserve(params_.initial_capacity);
  }

  // l2 records carry code terms (and so walk in integers) where the term
  // fits in the code's last cache line. At dimensions that are a multiple of
  // 64, or 1 to 3 short of one, it would add a line to every neighbour's
  // read: at d = 128 that measured 5-20% slower than the float walk
  // (docs/benchmarks.md), so there l2 walks on floats.
  static bool terms_by_default(std::size_t dim) {
    return walks_codes && Metric::kind == metric_kind::l2 && dim <= sq8_quantizer::max_integer_dim &&
           (dim + sq8_quantizer::term_bytes + 63) / 64 == (dim + 63) / 64;
  }
  static std::size_t code_bytes(std::size_t dim, bool terms) {
    return walks_codes ? dim + (terms ? sq8_quantizer::term_bytes : 0) : 0;
  }
  // Whether searches may walk on sq8_quantizer::walk_distance.
  bool integer_walk() const {
    return walks_codes && (Metric::kind != metric_kind::l2 || state_->code_terms) && state_->quantizer.integer_walk();
  }
  // The sq8 ranges: a lower end and a step a dimension.
  std::size_t ranges_bytes() const { return walks_codes ? 2 * dim_ * sizeof(float) : 0; }

  graph_type& graph() const { return state_->graph; }
  const hnsw_detail::node_store& store() const { return state_->graph.store(); }

  slot_t slot_of(label_t label, const char* what) const { return state_->slots.slot_of(label, what); }

  static void check_room_for(std::size_t room_for, const char* what) {
    if (room_for > label_map::max_slots)
      throw capacity_error(std::string("hnsw_index::") + what + ": room for " + std::to_string(room_for) +
                           " vectors asked, the limit is " + std::to_string(label_map::max_slots));
  }

  // compact's and reorder's body, under the writer lock: a new store holding
  // the live nodes old_of[0], old_of[1], ... in that order, each list that
  // named a removed node re-selected among its other links and the removed
  // node's links (graph::relinked), swapped in with no search running.
  void renumber(std::span<const slot_t> old_of, std::size_t threads, std::size_t room_for) {
    const slot_directory& dir = state_->slots;
    const std::size_t slots = dir.slots(), live = old_of.size();
    const hnsw_detail::node_store& old = store();
    constexpr slot_t gone_slot = ~slot_t{0};
    std::vector<slot_t> renumbered(slots, gone_slot);
    std::vector<label_t> labels(live);
    std::vector<std::uint8_t> levels(live);
    std::vector<std::size_t> upper_at(live + 1, 0);
    for (std::size_t j = 0; j < live; ++j) {
      const slot_t s = old_of[j];
      renumbered[s] = slot_t(j);
      labels[j] = old.header(s).label;
      levels[j] = static_cast<std::uint8_t>(old.level(s));
      upper_at[j + 1] = upper_at[j] + old.upper_words(levels[j]);
    }
    auto gone = [&](slot_t x) { return renumbered[x] == gone_slot; };
    const std::size_t stride = old.stride(), m = params_.m;
    std::vector<std::byte> records(live * stride);
    std::vector<std::uint32_t> upper(upper_at[live]);
    const std::size_t workers = worker_count(live, threads, 64);
    std::vector<hnsw_detail::scratch> scratch(workers);
    std::vector<std::vector<slot_t>> lists(workers);
    for (std::size_t w = 0; w < workers; ++w) {
      graph().reserve_scratch(scratch[w]);
      lists[w].reserve(2 * m);
    }
    parallel_for(
        live, workers,
        [&](std::size_t j, std::size_t w) {
          const slot_t s = old_of[j];
          std::byte* rec = records.data() + j * stride;
          old.saved_record(s, rec);
          std::vector<slot_t>& list = lists[w];
          for (std::size_t layer = 0; layer <= levels[j]; ++layer) {
            graph().relinked(s, layer, gone, scratch[w], list);
            std::uint32_t* count = layer == 0 ? reinterpret_cast<std::uint32_t*>(rec)  // node_header::count
                                              : upper.data() + upper_at[j] + (layer - 1) * (m + 1);
            std::uint32_t* ids = layer == 0 ? reinterpret_cast<std::uint32_t*>(rec + sizeof(hnsw_detail::node_header))
                                            : count + 1;
            *count = std::uint32_t(list.size());
            for (std::size_t i = 0; i < list.size(); ++i) ids[i] = renumbered[list[i]];
          }
        },
        64);
    // The entry point: the old one if live, else a live node on the highest layer.
    std::uint64_t entry = graph_type::no_entry;
    const std::uint64_t e = graph().entry();
    if (e != graph_type::no_entry && !gone(graph_type::entry_slot(e))) {
      entry = graph_type::pack(renumbered[graph_type::entry_slot(e)], graph_type::entry_level(e));
    } else if (live > 0) {
      const std::size_t top = std::size_t(std::max_element(levels.begin(), levels.end()) - levels.begin());
      entry = graph_type::pack(slot_t(top), levels[top]);
    }
    graph_type fresh(dim_, m, params_.ef_construction, params_.seed, params_.alpha,
                     code_bytes(dim_, state_->code_terms));
    fresh.store().reserve(std::max(live, room_for));
    fresh.store().restore(records, live, levels, upper);
    fresh.restore_entry(entry);
    // A later link can displace an earlier one's only way in: walk again, a few times at most.
    for (int pass = 0; pass < 3 && fresh.link_unreachable(live, scratch[0]) > 0; ++pass) {
    }
    slot_directory fresh_dir = slot_directory::renumbered(labels, dir.added());
    records = {};
    upper = {};
    // Swap with no search running (they hold `structure` shared).
    state& st = *state_;
    std::lock_guard queue(st.gate);
    st.overwriting.store(true, std::memory_order_seq_cst);
    std::unique_lock hold(st.structure);
    st.graph = std::move(fresh);
    st.slots = std::move(fresh_dir);
    st.tombstones.store(0, std::memory_order_release);
    st.overwriting.store(false, std::memory_order_release);
  }

  // ---- index_base's hooks: build, change, read ----

  // build()'s body (index/base.hpp validated the rows): room for every
  // row, one add, then reorder() if params.reorder.
  static hnsw_index build_validated(matrix_view<const float> data, std::span<const label_t> labels,
                                    const build_params& params, std::size_t threads) {
    hnsw_index idx(data.cols(), params);
    idx.reserve(data.rows());
    idx.add_validated(data, labels, threads);
    if (params.reorder) idx.reorder(threads, params.initial_capacity);
    return idx;
  }

  // Removed slots are reused first. Everything the linking needs, per-thread
  // scratch included, is allocated before the first change.
  void add_validated(matrix_view<const float> data, std::span<const label_t> labels, std::size_t threads) {
    std::lock_guard lock(state_->writer);
    state_->slots.check_new(data.rows(), labels);
    if (data.rows() == 0) return;
    // The codes' ranges come from the first vectors added, before any node
    // exists (no search reads them yet); later vectors outside them clamp.
    std::optional<sq8_quantizer> ranges;
    if (walks_codes && !state_->quantizer.trained()) {
      ranges.emplace(dim_);
      ranges->template train<Metric>(data);
    }
    link_plan plan;
    plan_slots(plan, data.rows());
    allocate(plan, threads);
    state_->slots.commit(data.rows(), labels);  // the last step that can throw (then it recorded nothing)
    if (ranges) state_->quantizer = std::move(*ranges);
    overwrite_reused(data, plan);
    link(data, plan, threads);
  }

  void remove_label(label_t label) {
    std::lock_guard lock(state_->writer);
    const slot_t slot = state_->slots.release(label, "hnsw_index::remove");  // on a throw, nothing changed
    store().set_state(slot, node_state::deleted);
    state_->tombstones.fetch_add(1, std::memory_order_release);
    state_->live.fetch_sub(1, std::memory_order_release);
  }

  // The new vector goes into the label's slot, relinked as an add that
  // reuses the slot would.
  void update_validated(label_t label, std::span<const float> vector) {
    std::lock_guard lock(state_->writer);
    const matrix_view<const float> row(vector.data(), 1, dim_);
    link_plan plan;
    plan.slots = {slot_of(label, "hnsw_index::update")};
    plan.reused = 1;  // not revived: the slot is live already
    allocate(plan, 1);
    overwrite_reused(row, plan);
    link(row, plan, 1);
  }

  const slot_directory& directory() const { return state_->slots; }
  void copy_vector(slot_t s, float* out) const { std::copy_n(store().vector(s), dim_, out); }
  // contains, get and labels read the directory and vectors beside writers.
  std::unique_lock<std::mutex> reading_lock() const { return std::unique_lock(state_->writer); }

  // health() (index/base.hpp) calls this under reading_lock(): no writer
  // runs, searches go on. The common fields are taken again here, under the
  // lock, so that they agree with the walk. Figures:
  //   entry_level            the entry point's top layer
  //   tombstones             removed nodes still in the graph (they route; an add reuses them)
  //   unreachable            nodes in use (live or tombstones) that no walk over
  //                          layer-0 links from the entry point reaches
  //   unreachable_live       of them, live ones: a search returns them only
  //                          through its exact-scan fallback
  //   unreachable_live_share unreachable_live / live
  //   degree_min, degree_mean, degree_median, degree_max
  //                          layer-0 out-degree over live nodes (at most 2m)
  //   tombstone_link_share   the share of layer-0 links (of every node in use)
  //                          that name a tombstone: search work spent on removed nodes
  // memory_needed: a build reserves exactly the live vectors (at least 64
  // slots): records of stride() bytes and an 8-byte block owner each, upper
  // links at their expected 1/(m - 1) layers a node of 4 (m + 1) bytes, and
  // the label map and free list scaled to the live share of the slots.
  void add_health(health_report& r) const {
    const std::size_t slots = state_->slots.slots();
    const hnsw_detail::layer0_survey g = graph().survey(slots);
    const double m = double(params_.m);
    r.live = size();
    r.removed_unreclaimed = state_->tombstones.load(std::memory_order_acquire);
    r.memory_held = store().bytes() + state_->slots.memory_bytes() + ranges_bytes();
    r.memory_needed =
        r.live == 0 ? 0
                    : std::size_t(double(std::max<std::size_t>(r.live, 64)) *
                                      double(store().stride() + sizeof(hnsw_detail::node_store::upper_block)) +
                                  double(r.live) * 4 * (m + 1) / (m - 1) +
                                  double(state_->slots.memory_bytes()) * double(r.live) / double(slots));
    const double unreachable_share = r.live ? double(g.unreachable_live) / double(r.live) : 0.0;
    r.add_figure("entry_level", double(g.entry_level), "(the entry point's top layer)");
    r.add_figure("tombstones", double(r.removed_unreclaimed), "removed nodes still routing");
    r.add_figure("unreachable", double(g.unreachable), "nodes (live or removed) not reached from the entry point on layer 0");
    r.add_figure("unreachable_live", double(g.unreachable_live), "live nodes among them (searches miss them)");
    r.add_figure("unreachable_live_share", unreachable_share, "of live nodes");
    r.add_figure("degree_min", double(g.degree_min), "layer-0 links of a live node, at most 2m = " + std::to_string(2 * params_.m));
    r.add_figure("degree_mean", g.degree_mean, "");
    r.add_figure("degree_median", g.degree_median, "");
    r.add_figure("degree_max", double(g.degree_max), "");
    const double tomb_share = g.links ? double(g.links_to_tombstones) / double(g.links) : 0.0;
    r.add_figure("tombstone_link_share", tomb_share, "of layer-0 links name a removed node");
    if (unreachable_share > health_limits::unreachable_share)
      r.flag(health_detail::percent(unreachable_share) + " of live nodes (" + std::to_string(g.unreachable_live) +
                 ") unreachable from the entry point",
             "compact() (relinks them) or rebuild");
  }

  // ---- the file (kind "hnsw"): record "hnsw" (parameters, entry point,
  // record stride), "hnsw.levels" (u8 a slot), "hnsw.upper" (each node's
  // upper-layer lists in slot order, (1 + m) words a layer), "hnsw.nodes"
  // (the node records as in memory: header, layer-0 links, vector; lock and
  // pointer zeroed), the slot directory. A view serves hnsw.nodes in place:
  // its layer-0 links are not checked at open, so searches skip any link to
  // a slot beyond the store (they already skip slots added after they began). ----

  void save_sections(serial::writer& w) const {  // the base holds reading_lock(): no writer runs
    const std::size_t n = state_->slots.slots();
    w.section("hnsw", serial::record()
                          .set("m", params_.m)
                          .set("ef_construction", params_.ef_construction)
                          .set_double("alpha", params_.alpha)
                          .set("seed", params_.seed)
                          .set("initial_capacity", params_.initial_capacity)
                          .set("entry", graph().entry())
                          .set("stride", store().stride()));
    if constexpr (walks_codes) {
      const sq8_quantizer& ranges = state_->quantizer;
      std::vector<float> both(ranges.min().begin(), ranges.min().end());
      both.insert(both.end(), ranges.scale().begin(), ranges.scale().end());
      w.section("hnsw.sq8", serial::record()
                                .set("trained", std::uint64_t{ranges.trained()})
                                .set("terms", std::uint64_t{state_->code_terms}));
      w.section("hnsw.sq8.ranges", std::span<const float>(both));
    }
    std::vector<std::uint8_t> levels(n);
    for (std::size_t s = 0; s < n; ++s) levels[s] = static_cast<std::uint8_t>(store().level(slot_t(s)));
    w.section("hnsw.levels", std::span<const std::uint8_t>(levels));
    w.begin("hnsw.upper");
    for (std::size_t s = 0; s < n; ++s)
      if (levels[s] > 0) w.append(store().upper_links(slot_t(s), levels[s]));
    w.end();
    w.begin("hnsw.nodes");
    std::vector<std::byte> record(store().stride());
    for (std::size_t s = 0; s < n; ++s) {
      store().saved_record(slot_t(s), record.data());
      w.append(std::span<const std::byte>(record));
    }
    w.end();
    state_->slots.save(w);
  }

  static hnsw_index load_sections(serial::reader& r) {
    const auto rec = r.fields("hnsw");
    build_params p;
    p.m = rec.u64_in("m", 2, 1024);
    p.ef_construction = rec.u64_in("ef_construction", p.m, max_ef_construction);
    // Files written before alpha was a parameter were built with the paper's rule.
    p.alpha = rec.has("alpha") ? rec.finite("alpha") : 1.0;
    if (!alpha_in_range(p.alpha)) r.fail("hnsw", "alpha " + std::to_string(p.alpha) + ", expected " + alpha_range());
    p.seed = rec.u64("seed");
    // The codes' ranges (2 dim floats) are checked against the file before
    // the index allocates room for them: a damaged dimension cannot ask for more.
    std::span<const float> both;
    if constexpr (walks_codes)
      both = r.structure_array<float>("hnsw.sq8.ranges", r.product("hnsw.sq8.ranges", 2, r.header().dim));
    // Under l2, files from before the integer walk have no code terms
    // ("terms" absent): such an index keeps their layout.
    bool terms = false;
    if constexpr (walks_codes) {
      const std::uint64_t flag = r.fields("hnsw.sq8").u64_or("terms", 0);
      if (flag > (Metric::kind == metric_kind::l2 ? 1u : 0u))
        r.fail("hnsw.sq8", "terms " + std::to_string(flag) + ", expected " +
                               (Metric::kind == metric_kind::l2 ? "0 or 1" : "0 (only l2 records carry code terms)"));
      terms = flag == 1;
    }
    hnsw_index idx(r.header().dim, p, terms);  // reserves nothing: initial_capacity is only recorded
    idx.params_.initial_capacity = rec.u64("initial_capacity");
    const hnsw_detail::node_store& store = idx.store();
    if (rec.u64("stride") != store.stride())
      r.fail("hnsw", "record stride " + std::to_string(rec.u64("stride")) + ", expected " +
                         std::to_string(store.stride()) + " for m " + std::to_string(p.m) + " and dimension " +
                         std::to_string(idx.dim_));
    slot_directory dir = slot_directory::load(r);
    const std::size_t n = dir.slots();
    if (dir.retired() != 0) r.fail("slots", "hnsw frees removed slots at once, but the file retires some");
    if constexpr (walks_codes) {
      const bool trained = r.fields("hnsw.sq8").u64_in("trained", 0, 1) == 1;
      if (!trained && n > 0) r.fail("hnsw.sq8", "codes without trained ranges for " + std::to_string(n) + " slots");
      if (trained) try {
          idx.state_->quantizer.restore(both.first(idx.dim_), both.last(idx.dim_));
        } catch (const invalid_argument& e) {
          r.fail("hnsw.sq8.ranges", e.what());
        }
    }
    const auto levels = r.structure_array<std::uint8_t>("hnsw.levels", n);
    std::uint64_t words = 0;
    for (std::size_t s = 0; s < n; ++s) {
      if (levels[s] > hnsw_detail::max_level)
        r.fail("hnsw.levels", "slot " + std::to_string(s) + " on level " + std::to_string(levels[s]));
      words += store.upper_words(levels[s]);
    }
    const auto upper = r.structure_array<std::uint32_t>("hnsw.upper", words);
    check_upper_links(r, levels, upper, p.m);
    const std::uint64_t entry = rec.u64("entry");
    const bool no_entry = entry == graph_type::no_entry;
    if (n == 0 ? !no_entry
               : (no_entry || graph_type::entry_slot(entry) >= n ||
                  graph_type::entry_level(entry) > levels[graph_type::entry_slot(entry)]))
      r.fail("hnsw", "entry point (slot " + std::to_string(entry & 0xffffffffu) + ", level " +
                         std::to_string(entry >> 32) + ") is not a node of " + std::to_string(n) + " slots");
    const auto nodes = r.payload_array<std::byte>("hnsw.nodes", r.product("hnsw.nodes", n, store.stride()));
    if (r.viewing()) {
      idx.graph().store().view(nodes, n, levels, upper);
    } else {
      check_records(r, nodes, dir, levels, store.stride(), p.m);
      idx.graph().store().restore(nodes, n, levels, upper);
      // The terms are recomputed, not checked: builds with and without FMA
      // may round the sum differently, and a damaged one is repaired.
      if (terms)
        for (std::size_t s = 0; s < n; ++s) idx.state_->quantizer.put_term(idx.store().code(slot_t(s)));
    }
    idx.graph().restore_entry(entry);
    idx.state_->live.store(dir.live());
    idx.state_->tombstones.store(n - dir.live());
    idx.state_->slots = std::move(dir);
    return idx;
  }

  // Every upper-layer list: at most m links, each to a slot on that layer or above.
  static void check_upper_links(serial::reader& r, std::span<const std::uint8_t> levels,
                                std::span<const std::uint32_t> upper, std::size_t m) {
    std::size_t at = 0;
    for (std::size_t s = 0; s < levels.size(); ++s)
      for (std::size_t layer = 1; layer <= levels[s]; ++layer, at += m + 1) {
        const std::uint32_t count = upper[at];
        if (count > m)
          r.fail("hnsw.upper", "slot " + std::to_string(s) + " has " + std::to_string(count) + " links on layer " +
                                   std::to_string(layer) + ", at most " + std::to_string(m));
        for (std::size_t i = 0; i < count; ++i) {
          const std::uint32_t t = upper[at + 1 + i];
          if (t >= levels.size() || levels[t] < layer)
            r.fail("hnsw.upper", "slot " + std::to_string(s) + " links on layer " + std::to_string(layer) +
                                     " to slot " + std::to_string(t) + ", which is not on that layer");
        }
      }
  }

  // Every record's header against the directory and the levels; every
  // layer-0 link to a slot that exists.
  static void check_records(serial::reader& r, std::span<const std::byte> nodes, const slot_directory& dir,
                            std::span<const std::uint8_t> levels, std::size_t stride, std::size_t m) {
    for (std::size_t s = 0; s < levels.size(); ++s) {
      const std::byte* at = nodes.data() + s * stride;
      hnsw_detail::node_header h;
      std::memcpy(&h, at, sizeof h);
      const bool live = dir.find(dir.label(slot_t(s))) == slot_t(s);
      const auto want = live ? node_state::live : node_state::deleted;
      const char* wrong = h.level != levels[s]                    ? "a level other than hnsw.levels'"
                          : h.lock != 0 || h.reserved != 0 || h.upper != nullptr ? "nonzero lock or pointer bytes"
                          : h.state != want                       ? "a state the slot directory contradicts"
                          : live && h.label != dir.label(slot_t(s)) ? "a label the slot directory contradicts"
                          : h.count > 2 * m                       ? "more layer-0 links than 2m"
                                                                  : nullptr;
      for (std::size_t i = 0; !wrong && i < h.count; ++i) {
        std::uint32_t t;
        std::memcpy(&t, at + sizeof h + i * sizeof t, sizeof t);
        if (t >= levels.size()) wrong = "a layer-0 link beyond the slots";
      }
      if (wrong) r.fail("hnsw.nodes", "slot " + std::to_string(s) + " has " + wrong);
    }
  }

  // ---- adding: plan slots, allocate, commit labels, overwrite reused, link ----

  // What linking rows into slots takes, all allocated before the first
  // change, so that nothing after the label commit can fail.
  struct link_plan {
    std::vector<slot_t> slots;  // `reused` slots that held a vector (relinked), then fresh ones
    std::size_t reused = 0;
    std::size_t revived = 0;    // of the reused, those that were removed (the rest are updates)
    std::vector<std::uint8_t> levels;                        // fresh slots' levels
    std::vector<hnsw_detail::node_store::upper_block> upper;  // fresh slots' upper-layer links
    std::vector<std::vector<std::vector<slot_t>>> former;     // reused slots' neighbours, per layer
    scratch_lease<hnsw_detail::scratch> scratch;              // the calling thread's
    std::vector<hnsw_detail::scratch> worker_scratch;         // the other workers'

    std::size_t fresh() const { return slots.size() - reused; }
  };

  // The slots of n new vectors, as the directory hands them out: removed
  // ones first (revived), then fresh ones from slots() on.
  void plan_slots(link_plan& p, std::size_t n) const {
    const slot_directory& dir = state_->slots;
    p.slots = dir.plan(n);
    const auto fresh = std::partition_point(p.slots.begin(), p.slots.end(),
                                            [&](slot_t s) { return s < dir.slots(); });
    p.reused = p.revived = std::size_t(fresh - p.slots.begin());
  }

  // Room in the store, the fresh nodes' levels and links, the reused slots'
  // former neighbours, every worker's scratch. Changes nothing but the
  // store's room; throws std::bad_alloc.
  void allocate(link_plan& p, std::size_t threads) {
    if (p.fresh() > 0) graph().store().reserve(std::size_t(p.slots.back()) + 1);  // fresh slots are consecutive
    p.levels.resize(p.fresh());
    p.upper.resize(p.fresh());
    for (std::size_t i = 0; i < p.fresh(); ++i) {
      p.levels[i] = static_cast<std::uint8_t>(graph().draw_level(p.slots[p.reused + i]));
      p.upper[i] = store().new_upper(p.levels[i]);
    }
    save_former_links(p);
    graph().reserve_scratch(*p.scratch);
    p.worker_scratch.resize(worker_count(p.slots.size(), threads) - 1);
    for (hnsw_detail::scratch& sc : p.worker_scratch) graph().reserve_scratch(sc);
  }

  // Each reused slot's links on every layer: its former neighbours, repaired
  // once the slot holds another vector.
  void save_former_links(link_plan& p) const {
    p.former.resize(p.reused);
    for (std::size_t i = 0; i < p.reused; ++i) {
      p.former[i].resize(std::size_t(store().header(p.slots[i]).level) + 1);
      for (std::size_t layer = 0; layer < p.former[i].size(); ++layer) {
        const hnsw_detail::link_list l = store().links(p.slots[i], layer);
        for (std::uint32_t j = 0, c = l.size(); j < c; ++j) p.former[i][layer].push_back(l[j]);
      }
    }
  }

  // Writes the reused slots' labels and vectors with no search running
  // (searches may be reading the old vectors). Their old links stay until
  // link() replaces them layer by layer: they still route, which matters
  // when the slot is the entry point. Cannot fail.
  void overwrite_reused(matrix_view<const float> data, const link_plan& p) {
    if (p.reused == 0) return;
    state& st = *state_;
    std::lock_guard queue(st.gate);
    st.overwriting.store(true, std::memory_order_seq_cst);
    std::unique_lock hold(st.structure);
    for (std::size_t i = 0; i < p.reused; ++i) write_node(p.slots[i], data.row_ptr(i));
    st.tombstones.fetch_sub(p.revived, std::memory_order_release);
    st.overwriting.store(false, std::memory_order_release);
  }

  // Links every planned slot on `threads` workers: a fresh one once its
  // header, links and vector are written, a reused one after its former
  // neighbours are repaired. Cannot fail: everything was allocated (a worker
  // thread that cannot start leaves its rows to the others).
  void link(matrix_view<const float> data, link_plan& p, std::size_t threads) {
    parallel_for(p.slots.size(), threads, [&](std::size_t i, std::size_t worker) {
      const slot_t s = p.slots[i];
      hnsw_detail::scratch& sc = worker == 0 ? *p.scratch : p.worker_scratch[worker - 1];
      if (i >= p.reused) {
        write_fresh(s, p.levels[i - p.reused], std::move(p.upper[i - p.reused]), data.row_ptr(i));
      } else {
        for (std::size_t layer = 0; layer < p.former[i].size(); ++layer)
          graph().repair(s, layer, p.former[i][layer], sc);
      }
      graph().insert(s, sc);
      if (i < p.revived || i >= p.reused) state_->live.fetch_add(1, std::memory_order_release);
    });
  }

  // A fresh slot's header, upper-layer links and vector, before any list names it.
  void write_fresh(slot_t s, std::size_t level, hnsw_detail::node_store::upper_block upper, const float* v) {
    hnsw_detail::node_header& h = store().header(s);
    h.count = 0;
    h.level = static_cast<std::uint8_t>(level);
    h.lock = 0;
    graph().store().adopt_upper(s, level, std::move(upper));
    write_node(s, v);
  }

  // Slot s's label (the directory's, committed) and vector; then s is live.
  void write_node(slot_t s, const float* v) {
    store().header(s).label = state_->slots.label(s);
    store_rows<Metric>(matrix_view<const float>(v, 1, dim_), store().vector(s));
    if constexpr (walks_codes) {
      state_->quantizer.encode(store().vector(s), store().code(s));
      if (state_->code_terms) state_->quantizer.put_term(store().code(s));
    }
    store().set_state(s, node_state::live);
  }

  // ---- searching ----

  // Holds the structure lock shared (behind a waiting overwrite) while it
  // reads vectors and maps slots to labels through the node headers.
  template <class Keep>
  std::size_t search_prepared(const float* q, std::size_t k, const search_params& params, std::span<neighbor> out,
                              const Keep& keep) const {
    if (state_->overwriting.load(std::memory_order_acquire)) {
      std::lock_guard wait(state_->gate);  // let the waiting overwrite go first
    }
    std::shared_lock hold(state_->structure);
    scratch_lease<hnsw_detail::scratch> sc;
    const std::size_t n = search_slots(q, k, params, out, keep, *sc);
    return this->finish_labels(out, n, [&](slot_t s) { return store().header(s).label; });
  }

  // The (at most) k closest slots that pass, closest first, into `out` (its
  // labels hold slots).
  template <class Keep>
  std::size_t search_slots(const float* q, std::size_t k, const search_params& params, std::span<neighbor> out,
                           const Keep& keep, hnsw_detail::scratch& sc) const {
    const std::size_t ef = std::max(params.ef, k);
    const hnsw_detail::node_store& nodes = store();
    if constexpr (std::is_same_v<Keep, accept_all>) {
      auto live = [&](slot_t s) { return nodes.state(s) == node_state::live; };
      const bool tombstones = state_->tombstones.load(std::memory_order_acquire) > 0;
      const std::size_t found = tombstones ? beam_search(q, k, ef, params.rerank, live, sc, out)
                                           : beam_search(q, k, ef, params.rerank, hnsw_detail::any_node{}, sc, out);
      // k results whenever k vectors are live: a beam that fell short (a
      // region it could not leave) is replaced by an exact scan.
      if (found == k) return found;
      return exact_scan(q, k, live, out);
    } else {
      auto passes = [&](slot_t s) { return nodes.state(s) == node_state::live && keep(nodes.header(s).label); };
      if (!few_pass(passes, ef, params.filter_scan_ratio)) {
        const std::size_t found = beam_search(q, k, ef, params.rerank, passes, sc, out);
        if (found == k) return found;
      }
      return exact_scan(q, k, passes, out);
    }
  }

  template <class Returnable>
  std::size_t beam_search(const float* q, std::size_t k, std::size_t ef, std::size_t rerank,
                          const Returnable& returnable, hnsw_detail::scratch& sc, std::span<neighbor> out) const {
    const graph_type& g = graph();
    std::size_t kept = 0;  // sc.best's first `kept` hold what the k closest are chosen from
    if constexpr (walks_codes) {
      const sq8_quantizer& ranges = state_->quantizer;
      ranges.template prepare<Metric>(q, sc.query, integer_walk());
      if (sc.query.integer) {
        const code_scorer<true> score{&store(), &ranges, &sc.query};
        g.beam_by(score, g.descend_by(score, 0, store().capacity()), ef, 0, returnable, sc);
      } else {
        const code_scorer<false> score{&store(), &ranges, &sc.query};
        g.beam_by(score, g.descend_by(score, 0, store().capacity()), ef, 0, returnable, sc);
      }
      // Re-rank the closest by code (sc.best comes sorted) on the vectors:
      // results carry exact distances. A longer prefetch window than the
      // next vector measured no faster (one-off A/B at 10^6, windows 4-32).
      kept = std::min(sc.best.size(), std::max(rerank == 0 ? std::max(auto_rerank_per_k * k, auto_rerank_min) : rerank, k));
      const std::size_t lines = store().vector_lines();
      for_each_prefetched(
          kept, 1, [&](std::size_t i) { store().prefetch_vector(sc.best[i].slot, lines); },
          [&](std::size_t i) { sc.best[i].distance = g.distance(q, sc.best[i].slot); });
    } else {
      (void)rerank;
      g.beam(q, g.descend(q, 0, store().capacity()), ef, 0, returnable, sc);
      kept = sc.best.size();
    }
    // The k closest: linear in ef, then k log k.
    const std::size_t n = std::min(k, kept);
    std::nth_element(sc.best.begin(), sc.best.begin() + n, sc.best.begin() + kept);
    std::sort(sc.best.begin(), sc.best.begin() + n);
    for (std::size_t i = 0; i < n; ++i) out[i] = {sc.best[i].slot, sc.best[i].distance};
    return n;
  }

  // A node's code against the prepared query (hnsw_detail::graph's scorer
  // form), in integers (walk_distance) or floats (distance).
  template <bool Integer>
  struct code_scorer {
    const hnsw_detail::node_store* nodes;
    const sq8_quantizer* ranges;
    const sq8_query* query;
    float operator()(slot_t s) const {
      if constexpr (Integer)
        return ranges->template walk_distance<Metric>(*query, nodes->code(s));
      else
        return ranges->template distance<Metric>(*query, nodes->code(s));
    }
    void prefetch(slot_t s, std::size_t lines) const { nodes->prefetch_code(s, lines); }
    std::size_t lines() const { return nodes->code_lines(); }
  };

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

  // search_params::rerank = 0: re-rank max(auto_rerank_per_k * k, auto_rerank_min).
  static constexpr std::size_t auto_rerank_per_k = 8, auto_rerank_min = 64;
  static constexpr std::size_t scan_prefetch = 16;  // headers fetched ahead by the exact scan

  template <class Passes>
  std::size_t exact_scan(const float* q, std::size_t k, const Passes& passes, std::span<neighbor> out) const {
    topk_heap heap(out, k);
    const std::size_t slots = store().capacity();
    float threshold = heap.threshold();
    // Headers are a record apart: too far for the hardware to guess.
    for_each_prefetched(
        slots, scan_prefetch, [&](std::size_t s) { __builtin_prefetch(store().record(slot_t(s)), 0, 0); },
        [&](std::size_t s) {
          if (!passes(slot_t(s))) return;
          const float d = graph().distance(q, slot_t(s));
          if (d <= threshold && heap.push(s, d)) threshold = heap.threshold();
        });
    return heap.sort();
  }

  std::size_t dim_;
  build_params params_;
  std::unique_ptr<state> state_;
};

/// hnsw_index walked on 8-bit codes with exact re-ranking: the same graph,
/// built on the vectors, and the same calls, threads and failure rules;
/// each node's record also holds its code (dim bytes, rounded up to 64),
/// the codes' ranges (2 dim floats) come from the first vectors added, and
/// later vectors outside those ranges clamp (only the walk, not the
/// results, is then less exact). A search descends and runs its beam of
/// width max(ef, k) comparing the query with codes (a quarter of the bytes a
/// node's vector takes, so more nodes fit each cache and memory read), then
/// computes the exact distance of the search_params::rerank closest by code
/// (max(8k, 64) by default; rerank_all: the whole beam), and returns the k
/// closest with those exact distances. The exact scan behind filters and
/// short beams reads the vectors. File kind "hnsw_sq8": a plain hnsw file
/// does not load as one, nor the other way round.
template <metric Metric>
using hnsw_sq8_index = hnsw_index<Metric, sq8_walk>;

static_assert(mutable_index<hnsw_index<l2>> && filterable_index<hnsw_index<cosine>, accept_all>);
static_assert(mutable_index<hnsw_sq8_index<l2>> && filterable_index<hnsw_sq8_index<cosine>, accept_all>);

}  // namespace annulus
