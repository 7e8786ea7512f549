// kd_tree_index: exact (or bounded approximate) k-NN for low dimensions.
//
//   kd_tree_index<l2> idx = kd_tree_index<l2>::build(points);   // d = 2 .. ~16
//   auto hits = idx.search(query, 10);                          // exact
//   auto fast = idx.search(query, 10, {.max_leaves = 32});      // approximate
//   idx.search(query, 10, {}, [&](label_t l) { return open(l); });  // exact filtered
//   idx.remove(label);  idx.update(label, vector);  idx.get(label);
//   auto cost = idx.explain(query, 10);                         // results, points scored, leaves
//
// The public calls (search forms, batch, range search, get, labels, k
// policy) come from index/base.hpp; this file is the tree.
//
// Each inner node cuts its points on the dimension where their bounding box is
// widest, at the box's midpoint (sliding to the nearest point when one side
// would be empty), until a node holds at most leaf_size points. The points are
// stored in tree order, so a leaf is one contiguous run of rows. A search goes
// depth first, nearer child first, and enters the far child only while the
// query's distance to that child's cell (kept incrementally, one dimension at a
// time) can beat the current k-th distance: exact. `eps` > 0 prunes cells that
// cannot beat it by a factor (1 + eps)^2 in squared distance; `max_leaves` > 0
// switches to best-bin-first and stops after that many leaves.
//
// Where it pays: below about 16 dimensions on this kind of data; by a few
// dozen dimensions every query visits most leaves and a flat scan is faster
// (docs/benchmarks.md measures where on clustered data).
//
// Metrics: l2, and cosine (vectors normalised, searched by l2, which orders
// unit vectors as cosine does). inner_product does not compile (the class
// requires another metric): see the comment at the class.
//
// Adds after a build go to a tail that every search scans; once the tail holds
// a 32nd of the tree (and at least 256 points) the tree is rebuilt over
// everything, so an add costs O(log n) amortised. remove frees the label's
// slot at once (the next add reuses it) and marks its row dead: a search
// tests the mark only for a point that beats the k-th distance, as it tests a
// filter. update overwrites a row in the tail in place; a row in the tree is
// marked dead and the new vector goes to the tail. Once dead rows pass an
// eighth of the rows, the next add or update rebuilds the tree without them.
// A rebuild writes the rows in their new order into a second copy and swaps
// it in: for its duration the vectors are held twice.
//
// Memory: the vectors (dim floats each, plus dead rows until a rebuild), a
// 4-byte slot per row and a 4-byte row per slot, 20 bytes a node (about
// 2n / leaf_size nodes), the label map; per searching thread a few dim-float
// buffers (best-bin-first: dim + 3 floats per waiting cell), kept for reuse.
// Failure: every mutating call either does all it says or throws and changes
// nothing, out of memory included (a rebuild that runs out of memory fails
// the add or update that needed it).
// File (kind "kd_tree"): a record (leaf_size, rows, rows in the tree, dead
// rows, nodes), the nodes in preorder (5 u32 each: split dimension or leaf
// mark, right child or first row, last row, the two bounds' bits), each
// row's slot, the rows' vectors in row order (a view reads them in place),
// and the slot directory; the slot -> row map is rebuilt on load.
// Threads: const calls (search, search_batch, explain, get, ...) are safe from
// any number of threads at once; add, remove and update are not safe
// alongside anything else.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/kernels.hpp"
#include "annulus/core/labels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/prepare.hpp"
#include "annulus/core/scratch.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/core/sizes.hpp"
#include "annulus/core/slots.hpp"
#include "annulus/core/stored.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/index/concepts.hpp"

namespace annulus {

// inner_product is not a distance (no triangle inequality), so a kd-tree
// cannot rule any cell out by its distance to the query: kd_tree_index
// <inner_product> does not compile. For maximum inner product use
// transform/mips.hpp (norm augmentation to l2), or an index that ranks by
// inner product (flat, hnsw, ivf_flat).
template <metric Metric>
  requires(Metric::kind != metric_kind::inner_product)
class kd_tree_index : public index_base<kd_tree_index<Metric>, Metric> {
  using base = index_base<kd_tree_index<Metric>, Metric>;
  friend base;

 public:
  static constexpr std::string_view index_name = "kd_tree_index";
  static constexpr std::string_view file_kind = "kd_tree";
  static constexpr bool viewable = true;
  struct build_params {
    std::size_t leaf_size = 16;  ///< points per leaf at most (>= 1); duplicates may exceed it
  };
  struct search_params {
    std::size_t max_leaves = 0;  ///< leaves visited at most (best-bin-first); 0 = no limit
                                 ///< (more are visited while fewer than k were found)
    /// >= 0 and finite: the k-th result is within (1 + eps) of the true k-th
    /// in Euclidean distance, so (1 + eps)^2 in the squared l2 returned.
    float eps = 0.f;
  };
  /// What one search found and what it cost (explain), for seeing where the
  /// tree stops paying off.
  struct search_stats {
    std::vector<neighbor> results;  ///< what search returns for the same call
    std::size_t points = 0;         ///< distances computed (flat search computes size())
    std::size_t leaves = 0;         ///< leaves scanned (the tail of adds counts as one)
  };

  /// Empty index for vectors of `dim` (>= 1) floats.
  /// Throws invalid_argument on dim 0 or leaf_size 0.
  explicit kd_tree_index(std::size_t dim, const build_params& params = {})
      : dim_(dim), leaf_size_(params.leaf_size) {
    if (dim == 0) throw invalid_argument("kd_tree_index: dimension must be at least 1, got 0");
    if (leaf_size_ == 0) throw invalid_argument("kd_tree_index: leaf_size must be at least 1, got 0");
  }

  std::size_t dim() const { return dim_; }
  std::size_t size() const { return slots_.live(); }

  /// One search as search(query, k, params) runs it, returning its results
  /// with its counts. Throws what search throws. Thread-safe as search.
  search_stats explain(std::span<const float> query, std::size_t k, const search_params& params = {}) const {
    search_stats stats;
    stats.results = this->search(query, k, params, counting{&stats});
    return stats;
  }

  /// Bytes of heap memory the index holds (vectors, rows and slots, nodes, labels).
  std::size_t memory_bytes() const {
    return points_.memory_bytes() + slot_at_.capacity() * sizeof(slot_t) +
           row_of_.capacity() * sizeof(std::uint32_t) + nodes_.capacity() * sizeof(node) + slots_.memory_bytes();
  }

  /// Nodes in the tree (leaves included); 0 before the first build.
  std::size_t node_count() const { return nodes_.size(); }

  /// Rebuilds the tree over the live rows now, rather than at the add that
  /// finds an eighth of them dead: removed rows and the unsorted tail go,
  /// and the vectors are held once, exactly sized. O(n log n), on `threads`
  /// workers (0 = all cores); for its duration the vectors are held twice.
  /// Not safe beside searches (as remove). Throws read_only_error on a view,
  /// std::bad_alloc (then the index is unchanged).
  void compact(std::size_t threads = 0) {
    this->refuse_if_view("compact");
    if (dead_ == 0 && rows() == built_) return;
    rebuild(matrix_view<const float>(nullptr, 0, dim_), {}, no_row, threads, [] {});
  }

 private:
  // Every search scans the tail, up to n/32 rows: at low d that is more work
  // than the tree search itself, the price of a rebuild only every n/32 adds
  // (tens of us an add, amortised, at n = 10^6).
  static constexpr std::size_t rebuild_min_tail = 256, rebuild_fraction = 32;
  static constexpr std::size_t dead_fraction = 8;  // dead rows past 1/8 of the rows: rebuild
  static constexpr std::uint32_t leaf_tag = std::numeric_limits<std::uint32_t>::max();
  static constexpr slot_t dead_row = std::numeric_limits<slot_t>::max();  // slot_at_ of a removed row
  static constexpr std::size_t no_row = std::numeric_limits<std::size_t>::max();

  // Preorder: an inner node's left child follows it; `a` is its right child.
  // A leaf's points are rows [a, b). low/high: the largest coordinate on the
  // left and the smallest on the right along `dim`, so the gap between them
  // counts towards the far child's cell distance.
  struct node {
    std::uint32_t dim;  // split dimension, or leaf_tag
    std::uint32_t a, b;
    float low, high;
  };

  struct search_scratch {
    std::vector<float> offsets, saved;  // saved: offsets of queued cells
    struct cell {
      float distance;
      std::uint32_t node;
      std::uint32_t offsets;  // index into saved
      bool operator>(const cell& o) const { return distance > o.distance; }
    };
    std::vector<cell> queue;
  };

  // explain()'s filter: keeps everything, and tells search_prepared where
  // this search's counts go.
  struct counting {
    search_stats* stats;
    constexpr bool operator()(label_t) const { return true; }
  };
  template <class Keep>
  static constexpr bool filters = !std::is_same_v<Keep, accept_all> && !std::is_same_v<Keep, counting>;
  struct cost {
    std::size_t points = 0, leaves = 0;
  };

  // One query's traversal: the tree, the query, the heap and the filter.
  template <class Keep>
  struct walk {
    const kd_tree_index& t;
    const float* q;
    topk_heap& heap;
    const Keep& keep;
    float slack;  // (1 + eps)^2, times the rounding allowance
    cost stats;

    // NaN (inf - inf with coordinates near the float limit) counts as worth it.
    bool worth(float cell_distance) const { return !(cell_distance * slack > heap.threshold()); }

    void scan(std::size_t begin, std::size_t end) {
      stats.points += end - begin;
      ++stats.leaves;
      const std::size_t d = t.dim_;
      const float* p = t.points_.data() + begin * d;
      float threshold = heap.threshold();
      for (std::size_t i = begin; i < end; ++i, p += d) {
        const float dist = kernels::l2sq(q, p, d);
        if (dist > threshold) continue;
        const slot_t s = t.slot_at_[i];
        if (s == dead_row) continue;
        const label_t label = t.slots_.label(s);
        if constexpr (filters<Keep>)
          if (!keep(label)) continue;
        if (heap.push(label, dist)) threshold = heap.threshold();
      }
    }

    // `distance`: the query's squared distance to this node's cell, summed
    // from offsets[j], its squared distance to the cell along dimension j.
    void depth_first(std::uint32_t id, float distance, float* offsets) {
      const node& nd = t.nodes_[id];
      if (nd.dim == leaf_tag) return scan(nd.a, nd.b);
      const float to_low = q[nd.dim] - nd.low, to_high = nd.high - q[nd.dim];
      const bool left_first = to_low < to_high;  // the query is nearer the left side
      const float cut = left_first ? to_high : to_low;
      depth_first(left_first ? id + 1 : nd.a, distance, offsets);
      // cut > 0: low < high, and cut is the larger of two numbers summing to high - low.
      const float saved = offsets[nd.dim];
      const float far = distance - saved + cut * cut;
      if (!worth(far)) return;
      offsets[nd.dim] = cut * cut;
      depth_first(left_first ? nd.a : id + 1, far, offsets);
      offsets[nd.dim] = saved;
    }

    // Cells in order of distance, each entered at its root and walked down the
    // nearer side while the farther sides wait in the queue; stops after
    // max_leaves leaves or when no waiting cell can improve the result.
    void best_bin_first(std::size_t max_leaves, search_scratch& sc) {
      const std::size_t d = t.dim_;
      auto& queue = sc.queue;
      queue.clear();
      sc.saved.clear();
      const auto push = [&](float distance, std::uint32_t id, const float* offsets) {
        queue.push_back({distance, id, std::uint32_t(sc.saved.size())});
        sc.saved.insert(sc.saved.end(), offsets, offsets + d);
        std::push_heap(queue.begin(), queue.end(), std::greater<>());
      };
      push(0.f, 0, sc.offsets.data());
      std::size_t leaves = 0;
      while (!queue.empty() && (leaves < max_leaves || !heap.full())) {
        std::pop_heap(queue.begin(), queue.end(), std::greater<>());
        const auto c = queue.back();
        queue.pop_back();
        if (!worth(c.distance)) break;  // the nearest waiting cell cannot help
        float* offsets = sc.offsets.data();
        std::copy_n(sc.saved.data() + c.offsets, d, offsets);
        std::uint32_t id = c.node;
        while (t.nodes_[id].dim != leaf_tag) {
          const node& nd = t.nodes_[id];
          const float to_low = q[nd.dim] - nd.low, to_high = nd.high - q[nd.dim];
          const bool left_first = to_low < to_high;
          const float cut = left_first ? to_high : to_low;
          const std::uint32_t near = left_first ? id + 1 : nd.a, far_id = left_first ? nd.a : id + 1;
          const float saved = offsets[nd.dim];
          const float far = c.distance + (cut * cut - saved);
          if (worth(far)) {
            offsets[nd.dim] = cut * cut;
            push(far, far_id, offsets);
            offsets[nd.dim] = saved;
          }
          id = near;
        }
        scan(t.nodes_[id].a, t.nodes_[id].b);
        ++leaves;
      }
    }
  };

  static kd_tree_index build_validated(matrix_view<const float> data, std::span<const label_t> labels,
                                       const build_params& params, std::size_t threads) {
    kd_tree_index idx(data.cols(), params);
    idx.slots_.check_new(data.rows(), labels);
    idx.stage(data, {});
    for (std::size_t r = 0; r < data.rows(); ++r) idx.slot_at_[r] = slot_t(r);
    idx.row_of_.resize(data.rows());
    idx.build_tree(threads);
    idx.index_rows(idx.row_of_);
    idx.slots_.commit(data.rows(), labels);
    return idx;
  }

  void add_validated(matrix_view<const float> data, std::span<const label_t> labels, std::size_t threads) {
    slots_.check_new(data.rows(), labels);
    if (data.rows() == 0) return;
    const std::vector<slot_t> slots = slots_.plan(data.rows());
    place(data, slots, no_row, threads, [&] { slots_.commit(data.rows(), labels); });
  }

  void remove_label(label_t label) {
    const slot_t s = slots_.release(label, "kd_tree_index::remove");  // nothing refers to the slot but its row
    kill(row_of_[s]);
  }

  // A row in the tail is overwritten; one in the tree dies and the vector
  // joins the tail under the same slot.
  void update_validated(label_t label, std::span<const float> vector) {
    const slot_t s = slots_.slot_of(label, "kd_tree_index::update");
    const matrix_view<const float> row(vector.data(), 1, dim_);
    if (row_of_[s] >= built_)
      store_rows<Metric>(row, points_.data() + std::size_t(row_of_[s]) * dim_);
    else
      place(row, std::span(&s, 1), row_of_[s], 0, [] {});
  }

  const slot_directory& directory() const { return slots_; }
  void copy_vector(slot_t s, float* out) const {
    std::copy_n(points_.data() + std::size_t(row_of_[s]) * dim_, dim_, out);
  }

  // health() (index/base.hpp): the dead rows are the removed vectors still
  // held (until the next rebuild); a fresh build holds what this one does
  // per row, for the live rows only.
  void add_health(health_report& r) const {
    r.removed_unreclaimed = dead_;
    if (rows() > 0) r.memory_needed = std::size_t(double(r.memory_held) * double(r.live) / double(rows()));
  }

  // ---- saved form (see the file comment) ----

  void save_sections(serial::writer& w) const {
    w.section("kd_tree", serial::record()
                             .set("leaf_size", leaf_size_)
                             .set("rows", rows())
                             .set("built", built_)
                             .set("dead", dead_)
                             .set("nodes", nodes_.size()));
    w.begin("kd_tree.nodes");
    for (const node& nd : nodes_) {
      const std::array<std::uint32_t, 5> words{nd.dim, nd.a, nd.b, std::bit_cast<std::uint32_t>(nd.low),
                                               std::bit_cast<std::uint32_t>(nd.high)};
      w.append(std::span<const std::uint32_t>(words));
    }
    w.end();
    w.section("kd_tree.rows", std::span<const slot_t>(slot_at_));
    w.section("kd_tree.points", std::span<const float>(points_.data(), rows() * dim_));
    slots_.save(w);
  }

  // Every count and link is checked against the others before it is used:
  // the rows name each live slot of the directory once (dead marks only in
  // the tree, as many as counted), the nodes form one tree in preorder no
  // deeper than a build makes (search recurses along it), splits cut an
  // existing dimension, and the leaves cover the tree's rows in order.
  static kd_tree_index load_sections(serial::reader& r) {
    const auto rec = r.fields("kd_tree");
    kd_tree_index idx(r.header().dim, {rec.u64_in("leaf_size", 1, std::numeric_limits<std::size_t>::max())});
    const std::size_t dim = idx.dim_;
    idx.slots_ = slot_directory::load(r);
    const slot_directory& dir = idx.slots_;
    if (dir.retired() != 0) r.fail("slots", "kd_tree frees removed slots at once, but the file retires some");
    const std::size_t rows = rec.u64_in("rows", 0, label_map::max_slots);
    const std::size_t built = rec.u64_in("built", 0, rows);
    const std::size_t dead = rec.u64_in("dead", 0, built);

    const auto slot_at = r.structure_array<slot_t>("kd_tree.rows", rows);
    std::vector<std::uint32_t> row_of(dir.slots(), 0);
    std::vector<bool> seen(dir.slots());
    std::size_t dead_rows = 0;
    for (std::size_t row = 0; row < rows; ++row) {
      const slot_t s = slot_at[row];
      if (s == dead_row) {
        if (row >= built) r.fail("kd_tree.rows", "row " + std::to_string(row) + " of the tail is marked dead");
        ++dead_rows;
        continue;
      }
      if (s >= dir.slots() || dir.find(dir.label(s)) != s || seen[s])
        r.fail("kd_tree.rows", "row " + std::to_string(row) + " names slot " + std::to_string(s) +
                                   ", not a live slot of the directory named once");
      seen[s] = true;
      row_of[s] = std::uint32_t(row);
    }
    if (dead_rows != dead || rows - dead_rows != dir.live())
      r.fail("kd_tree.rows", std::to_string(rows - dead_rows) + " live and " + std::to_string(dead_rows) +
                                 " dead rows, the directory holds " + std::to_string(dir.live()) +
                                 " vectors and the record counts " + std::to_string(dead) + " dead");

    const std::size_t count = rec.u64_in("nodes", 0, rows == 0 ? 0 : 2 * std::uint64_t(rows) + 1);
    const auto words = r.structure_array<std::uint32_t>("kd_tree.nodes", r.product("kd_tree.nodes", count, 5));
    std::vector<node> nodes(count);
    for (std::size_t i = 0; i < count; ++i)
      nodes[i] = {words[5 * i], words[5 * i + 1], words[5 * i + 2], std::bit_cast<float>(words[5 * i + 3]),
                  std::bit_cast<float>(words[5 * i + 4])};
    check_tree(r, nodes, built, dim);

    const auto points = r.payload_array<float>("kd_tree.points", r.product("kd_tree.points", rows, dim));
    idx.points_ = r.viewing() ? stored_array<float>::borrow(points) : stored_array<float>::copy_of(points);
    idx.slot_at_.assign(slot_at.begin(), slot_at.end());
    idx.row_of_ = std::move(row_of);
    idx.nodes_ = std::move(nodes);
    idx.built_ = built;
    idx.dead_ = dead;
    return idx;
  }

  // The nodes are one tree in preorder (each inner node's left child follows
  // it, its right child starts where the left subtree ends, every node used
  // once) no deeper than depth_limit, whose leaves cover rows [0, built) in
  // order; no nodes: no tree, no rows in it. Iterative, with a stack bounded
  // by the depth.
  static void check_tree(serial::reader& r, std::span<const node> nodes, std::size_t built, std::size_t dim) {
    constexpr std::string_view where = "kd_tree.nodes";
    if (nodes.empty()) {
      if (built != 0) r.fail(where, "no tree over " + std::to_string(built) + " rows");
      return;
    }
    const std::size_t max_depth = depth_limit(built);
    struct frame {
      std::size_t id, limit, depth;
    };
    std::vector<frame> stack{{0, nodes.size(), 1}};
    std::size_t next = 0, next_row = 0;
    while (!stack.empty()) {
      const frame f = stack.back();
      stack.pop_back();
      if (f.id != next)
        r.fail(where,
               "node " + std::to_string(f.id) + " is a child where preorder places node " + std::to_string(next));
      const node& nd = nodes[next];  // f.id < f.limit <= nodes.size()
      const std::string at = "node " + std::to_string(next);
      ++next;
      if (nd.dim == leaf_tag) {
        if (nd.a != next_row || nd.b < nd.a || nd.b > built || std::bit_cast<std::uint32_t>(nd.low) != 0 ||
            std::bit_cast<std::uint32_t>(nd.high) != 0)
          r.fail(where, at + ": a leaf of rows [" + std::to_string(nd.a) + ", " + std::to_string(nd.b) +
                            "), expected rows from " + std::to_string(next_row) + " within " + std::to_string(built) +
                            " and zero bounds");
        next_row = nd.b;
        continue;
      }
      if (nd.dim >= dim || nd.b != 0 || nd.a <= f.id + 1 || nd.a >= f.limit || f.depth >= max_depth)
        r.fail(where, at + ": a split on dimension " + std::to_string(nd.dim) + " with right child " +
                          std::to_string(nd.a) + ", expected a dimension below " + std::to_string(dim) +
                          " and a child in (" + std::to_string(f.id + 1) + ", " + std::to_string(f.limit) +
                          ") at depth below " + std::to_string(max_depth));
      stack.push_back({nd.a, f.limit, f.depth + 1});
      stack.push_back({f.id + 1, nd.a, f.depth + 1});
    }
    if (next != nodes.size() || next_row != built)
      r.fail(where, "the tree holds " + std::to_string(next) + " of " + std::to_string(nodes.size()) +
                        " nodes and rows up to " + std::to_string(next_row) + " of " + std::to_string(built));
  }

  void check_searchable(const search_params& params) const {
    if (!(params.eps >= 0.f) || !std::isfinite((1.f + params.eps) * (1.f + params.eps)))
      throw invalid_argument("kd_tree_index: eps must be finite and >= 0, got " + std::to_string(params.eps));
  }

  template <class Keep>
  std::size_t search_prepared(const float* q, std::size_t k, const search_params& params, std::span<neighbor> out,
                              const Keep& keep) const {
    scratch_lease<search_scratch> sc;
    topk_heap heap(out, k);
    // A cell's distance and a point's are rounded differently: shrinking the
    // cell's by a few ulps per dimension keeps every cell that might hold a
    // point at (or tied with) the k-th distance, so exact search is exact.
    const float slack = (1.f + params.eps) * (1.f + params.eps);
    const float rounding = 1.f - float(4 * dim_ + 16) * std::numeric_limits<float>::epsilon();
    walk<Keep> w{*this, q, heap, keep, slack * std::max(rounding, 0.5f), {}};
    if (!nodes_.empty()) {
      sc->offsets.assign(dim_, 0.f);
      if (params.max_leaves == 0)
        w.depth_first(0, 0.f, sc->offsets.data());
      else
        w.best_bin_first(params.max_leaves, *sc);
    }
    if (rows() > built_) w.scan(built_, rows());  // the tail of adds since the last build
    if constexpr (std::is_same_v<Keep, counting>) {
      keep.stats->points = w.stats.points;
      keep.stats->leaves = w.stats.leaves;
    }
    const std::size_t n = heap.sort();
    // Heap entries hold labels (so ties at the k-th distance are kept by
    // label, the order every result has) and squared l2. Under cosine the rows are unit
    // vectors, where ||q - v||^2 / 2 = 1 - cos(q, v), and halving keeps the
    // order exactly.
    if constexpr (Metric::kind == metric_kind::cosine)
      for (std::size_t i = 0; i < n; ++i) out[i].distance *= 0.5f;
    return n;
  }

  std::size_t rows() const { return slot_at_.size(); }

  // Stores `data` as the rows after rows() (slot_at_ is the caller's to
  // fill), with room in row_of_ for `slots`. Throws capacity_error or
  // std::bad_alloc, leaving rows() as it was.
  void stage(matrix_view<const float> data, std::span<const slot_t> slots) {
    const std::size_t old = rows(), n = data.rows();
    if (n > label_map::max_slots - old)  // node row ranges are 32-bit
      throw capacity_error("kd_tree_index: " + std::to_string(old + n) + " rows exceed the limit of " +
                           std::to_string(label_map::max_slots));
    try {
      if (slot_at_.capacity() < old + n) reserve_rows(old + n);
      points_.resize(sizes::product(old + n, dim_, "kd_tree_index::add"));
      slot_at_.resize(old + n);
      row_of_.resize(std::max(row_of_.size(), top_slot(slots)));
    } catch (...) {
      points_.resize(old * dim_);  // shrinking: cannot throw
      slot_at_.resize(old);
      throw;
    }
    store_rows<Metric>(data, points_.data() + old * dim_);
  }

  // Adds `data` (validated) under `slots`, `replaced` (a row in the tree, or
  // no_row) dying, and rebuilds the tree when the tail or the dead rows have
  // grown enough. `commit` (the label change, which may throw) runs after
  // everything that allocates and before anything visible changes.
  template <class Commit>
  void place(matrix_view<const float> data, std::span<const slot_t> slots, std::size_t replaced,
             std::size_t threads, const Commit& commit) {
    const std::size_t n = data.rows(), after = rows() + n;
    const std::size_t dead = dead_ + (replaced != no_row);
    if (after - built_ >= std::max(rebuild_min_tail, built_ / rebuild_fraction) || dead * dead_fraction > after) {
      rebuild(data, slots, replaced, threads, commit);
      return;
    }
    const std::size_t old = rows();
    stage(data, slots);
    try {
      commit();
    } catch (...) {
      points_.resize(old * dim_);
      slot_at_.resize(old);
      throw;
    }
    for (std::size_t i = 0; i < n; ++i) {
      slot_at_[old + i] = slots[i];
      row_of_[slots[i]] = std::uint32_t(old + i);
    }
    if (replaced != no_row) kill(replaced);
  }

  // A row whose slot was released (or is taken by a newer row): in the tail
  // the last row takes its place; in the tree it stays, marked dead, until a
  // rebuild. Cannot throw.
  void kill(std::size_t r) noexcept {
    if (r < built_) {
      slot_at_[r] = dead_row;
      ++dead_;
      return;
    }
    const std::size_t last = rows() - 1;
    if (r != last) {
      std::copy_n(points_.data() + last * dim_, dim_, points_.data() + r * dim_);
      slot_at_[r] = slot_at_[last];
      row_of_[slot_at_[r]] = std::uint32_t(r);
    }
    points_.resize(last * dim_);
    slot_at_.pop_back();
  }

  // Room for `rows` rows and the tail that may follow them before the next
  // rebuild, so that adds between rebuilds do not double the vectors' room.
  void reserve_rows(std::size_t rows) {
    const std::size_t room = rows + std::max(rebuild_min_tail, rows / rebuild_fraction);
    points_.reserve(sizes::product(room, dim_, "kd_tree_index::add"));
    slot_at_.reserve(room);
  }

  // Slots handed out once `slots` are: row_of_ must have room for them all.
  std::size_t top_slot(std::span<const slot_t> slots) const {
    std::size_t top = slots_.slots();
    for (const slot_t s : slots) top = std::max<std::size_t>(top, std::size_t(s) + 1);
    return top;
  }

  // Fills row_of (sized for every slot) with the row of each live row's slot. Cannot throw.
  void index_rows(std::vector<std::uint32_t>& row_of) const noexcept {
    for (std::size_t r = 0; r < rows(); ++r)
      if (slot_at_[r] != dead_row) row_of[slot_at_[r]] = std::uint32_t(r);
  }

  // place() with a rebuild: the live rows, then `data`, are copied into a
  // new index of the same shape whose tree is built over them all, and,
  // after commit, swapped in. Nothing here changes *this before the swap.
  template <class Commit>
  void rebuild(matrix_view<const float> data, std::span<const slot_t> slots, std::size_t replaced,
               std::size_t threads, const Commit& commit) {
    kd_tree_index fresh(dim_, {leaf_size_});
    const std::size_t live = rows() - dead_ - (replaced != no_row), total = live + data.rows();
    fresh.reserve_rows(total);
    fresh.points_.resize(total * dim_);
    fresh.slot_at_.resize(total);
    fresh.row_of_.resize(std::max(row_of_.size(), top_slot(slots)));
    std::size_t to = 0;
    for (std::size_t r = 0; r < rows(); ++r) {
      if (slot_at_[r] == dead_row || r == replaced) continue;
      std::copy_n(points_.data() + r * dim_, dim_, fresh.points_.data() + to * dim_);
      fresh.slot_at_[to++] = slot_at_[r];
    }
    store_rows<Metric>(data, fresh.points_.data() + live * dim_);
    std::copy(slots.begin(), slots.end(), fresh.slot_at_.begin() + std::ptrdiff_t(live));
    fresh.build_tree(threads);
    commit();
    std::swap(points_, fresh.points_);
    slot_at_.swap(fresh.slot_at_);
    nodes_.swap(fresh.nodes_);
    built_ = rows();
    dead_ = 0;
    index_rows(fresh.row_of_);
    row_of_.swap(fresh.row_of_);
  }

  // Builds the tree over every row, reordering rows (and slot_at_) in place
  // so each leaf's rows are contiguous. The top levels are cut on one thread
  // until the pieces are small enough to share out; the pieces (which own
  // disjoint rows) are built in parallel and spliced into preorder. The cuts
  // do not depend on who makes them, so neither does the tree. Used on an
  // index no one sees yet (build, or rebuild's fresh copy): out of memory
  // midway leaves it to be thrown away.
  void build_tree(std::size_t threads) {
    const std::size_t workers = resolve_threads(threads);
    const std::size_t piece = workers > 1 ? std::max<std::size_t>(rows() / 8 / workers, 4096) : rows();
    const std::size_t max_depth = midpoint_levels(rows());
    std::vector<node> top;
    std::vector<subtree> pieces;
    std::vector<float> low(dim_), high(dim_);
    build_node(top, 0, rows(), low, high, max_depth, piece, &pieces);
    parallel_for(pieces.size(), workers, [&](std::size_t i, std::size_t) {
      std::vector<float> lo(dim_), hi(dim_);
      build_node(pieces[i].nodes, pieces[i].begin, pieces[i].end, lo, hi, pieces[i].depth_left, rows(), nullptr);
    });
    std::vector<node> nodes;
    nodes.reserve(top.size() + 2 * (rows() / leaf_size_ + 1));
    splice(top, 0, pieces, nodes);
    nodes_.swap(nodes);
    built_ = rows();
  }

  struct subtree {
    std::size_t begin, end, depth_left;
    std::vector<node> nodes;
  };
  static constexpr std::uint32_t piece_tag = leaf_tag - 1;  // top-level stand-in; a = piece number

  // Copies the subtree of top[id] into `out` in preorder, pieces in place of
  // their stand-ins; returns the top index after that subtree.
  static std::uint32_t splice(const std::vector<node>& top, std::uint32_t id,
                              const std::vector<subtree>& pieces, std::vector<node>& out) {
    const node nd = top[id];
    if (nd.dim == piece_tag) {
      const std::uint32_t base = std::uint32_t(out.size());
      for (node m : pieces[nd.a].nodes) {
        if (m.dim != leaf_tag) m.a += base;
        out.push_back(m);
      }
      return id + 1;
    }
    out.push_back(nd);
    if (nd.dim == leaf_tag) return id + 1;
    const std::size_t at = out.size() - 1;
    const std::uint32_t right = splice(top, id + 1, pieces, out);
    out[at].a = std::uint32_t(out.size());
    return splice(top, right, pieces, out);
  }

  // Levels of midpoint cuts before build_node turns to medians: about 2 log2 n + 16.
  static std::size_t midpoint_levels(std::size_t rows) {
    std::size_t levels = 16;
    for (std::size_t n = rows; n > 1; n /= 2) levels += 2;
    return levels;
  }
  // The deepest tree a file may hold (the root is at depth 1): the midpoint
  // levels and 4096 more. A median cut halves its node unless ties crowd one
  // side, which then holds one value along that dimension, so real trees
  // stay far shallower; a deeper one is refused before a search recurses
  // down it (4096 + 80 frames of depth_first: well within any thread's stack).
  static std::size_t depth_limit(std::size_t rows) { return midpoint_levels(rows) + 4096; }

  // Midpoint cuts adapt to clusters but can peel one point at a time off
  // skewed data; past `depth_left` levels the cut moves to the median, which
  // bounds the depth (and the recursion) by about 2 log2 n + 16.
  // A range of at most `piece` rows (but not the whole) becomes a stand-in
  // node and an entry of `pieces`, to be built later.
  void build_node(std::vector<node>& nodes, std::size_t begin, std::size_t end,
                  std::vector<float>& low, std::vector<float>& high, std::size_t depth_left,
                  std::size_t piece, std::vector<subtree>* pieces) {
    const std::uint32_t id = std::uint32_t(nodes.size());
    if (pieces && end - begin <= piece && end - begin < rows()) {
      nodes.push_back({piece_tag, std::uint32_t(pieces->size()), 0, 0.f, 0.f});
      pieces->push_back({begin, end, depth_left, {}});
      return;
    }
    nodes.push_back({leaf_tag, std::uint32_t(begin), std::uint32_t(end), 0.f, 0.f});
    if (end - begin <= leaf_size_) return;
    bounding_box(begin, end, low, high);
    std::size_t cut_dim = 0;
    for (std::size_t j = 1; j < dim_; ++j)
      if (high[j] - low[j] > high[cut_dim] - low[cut_dim]) cut_dim = j;
    if (!(high[cut_dim] > low[cut_dim])) return;  // all points equal: one leaf
    const float lo = low[cut_dim];
    // 0.5 lo + 0.5 hi: hi - lo can overflow near the float limit.
    const float mid = depth_left > 0 ? 0.5f * lo + 0.5f * high[cut_dim] : median(begin, end, cut_dim);
    std::size_t split = partition(begin, end, cut_dim, [mid](float x) { return x < mid; });
    if (split == begin)  // mid rounded onto the minimum: slide to it
      split = partition(begin, end, cut_dim, [lo](float x) { return x <= lo; });
    float left_max = -std::numeric_limits<float>::infinity();
    float right_min = std::numeric_limits<float>::infinity();
    for (std::size_t i = begin; i < split; ++i) left_max = std::max(left_max, at(i, cut_dim));
    for (std::size_t i = split; i < end; ++i) right_min = std::min(right_min, at(i, cut_dim));
    const std::size_t below = depth_left > 0 ? depth_left - 1 : 0;
    build_node(nodes, begin, split, low, high, below, piece, pieces);
    const std::uint32_t right = std::uint32_t(nodes.size());
    build_node(nodes, split, end, low, high, below, piece, pieces);
    nodes[id] = {std::uint32_t(cut_dim), right, 0, left_max, right_min};
  }

  float at(std::size_t row, std::size_t j) const { return points_[row * dim_ + j]; }

  float median(std::size_t begin, std::size_t end, std::size_t j) const {
    std::vector<float> values(end - begin);
    for (std::size_t i = begin; i < end; ++i) values[i - begin] = at(i, j);
    const auto mid = values.begin() + std::ptrdiff_t(values.size() / 2);
    std::nth_element(values.begin(), mid, values.end());
    return *mid;
  }

  void bounding_box(std::size_t begin, std::size_t end, std::vector<float>& low,
                    std::vector<float>& high) const {
    const float* p = points_.data() + begin * dim_;
    std::copy_n(p, dim_, low.begin());
    std::copy_n(p, dim_, high.begin());
    for (std::size_t i = begin + 1; i < end; ++i) {
      p += dim_;
      for (std::size_t j = 0; j < dim_; ++j) {
        low[j] = std::min(low[j], p[j]);
        high[j] = std::max(high[j], p[j]);
      }
    }
  }

  // Moves rows whose coordinate `j` passes `left` before the others; returns
  // the first row of the right side.
  template <class Left>
  std::size_t partition(std::size_t begin, std::size_t end, std::size_t j, Left left) {
    std::size_t i = begin, r = end;
    for (;;) {
      while (i < r && left(at(i, j))) ++i;
      while (i < r && !left(at(r - 1, j))) --r;
      if (i >= r) return i;
      swap_rows(i, r - 1);
      ++i;
      --r;
    }
  }

  void swap_rows(std::size_t a, std::size_t b) {
    float* p = points_.data();
    std::swap_ranges(p + a * dim_, p + (a + 1) * dim_, p + b * dim_);
    std::swap(slot_at_[a], slot_at_[b]);
  }

  std::size_t dim_;
  std::size_t leaf_size_;
  std::size_t built_ = 0;              // rows [0, built_) are in the tree; the rest is the tail
  std::size_t dead_ = 0;               // rows of the tree marked dead_row
  stored_array<float> points_;         // rows in tree order, then the tail
  std::vector<slot_t> slot_at_;        // row -> slot, or dead_row
  std::vector<std::uint32_t> row_of_;  // slot -> row (stale for free slots)
  std::vector<node> nodes_;
  slot_directory slots_;               // labels, free slots
};

static_assert(mutable_index<kd_tree_index<l2>> && filterable_index<kd_tree_index<cosine>, accept_all>);

}  // namespace annulus
