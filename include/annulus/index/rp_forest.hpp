// rp_forest_index: a forest of random-projection trees (Annoy's idea, our own
// code). Each tree splits the vectors recursively by a hyperplane between two
// points (two sampled vectors refined by a few 2-means steps) until a node
// holds at most leaf_size; a query walks all trees at once through one
// priority queue (nodes nearest the query's side of every split first) until
// search_k distinct vectors are collected, then ranks them exactly.
//
//   auto idx = rp_forest_index<l2>::build(data, {.n_trees = 16, .leaf_size = 32});
//   auto hits = idx.search(query, 10, {.search_k = 2000});
//   idx.add(more);  // descends every tree, splitting leaves that outgrow leaf_size
//   idx.remove(label);  idx.update(label, vector);  idx.get(label);
//
// The public calls (search forms, batch, range search, get, labels, k
// policy) come from index/base.hpp; this file is the forest.
//
// Splits: under l2 the perpendicular bisector of the two centroids (unit
// normal w = (a - b) / |a - b|, offset w.(a + b) / 2); under cosine and
// inner_product the angular split through the origin (w = a/|a| - b/|b|,
// normalised). Unit normals make margins distances, comparable across trees.
//
// Memory: the vectors (dim floats each, normalised under cosine), and per
// tree a 16-byte node and a dim-float plane per split (about 2n / leaf_size
// splits) plus a 4-byte leaf entry per vector; the label map as flat_index.
// Removed vectors are tombstones (core/tombstones.hpp): never returned, their
// entries skipped, and dropped from a leaf that fills up; once they are an
// eighth of the slots, the next add drops every one of their entries and
// reuses their slots. So memory stays bounded under remove/add churn (leaves
// that emptied are not merged: the trees keep the splits they made).
// update keeps the label's slot: its entry leaves the leaf the old vector
// reached in each tree (found by descending with the old vector) and the new
// vector is inserted as an add inserts it.
//
// Failure: every call either does all it says or throws and changes nothing
// (add and update undo their tree changes if they run out of memory midway).
//
// File (kind "rp_forest"): a record (n_trees, leaf_size); per tree 10 u64
// (nodes, planes, leaf entries, entries no leaf uses, the random stream's
// state); every tree's nodes (4 u32 each: first, count, capacity, the
// offset's bits), planes (dim floats each) and leaf entries (u32 slots),
// tree after tree; the vectors in slot order (a view reads them in place);
// the slot directory and the tombstones.
//
// Threads: build and add work on `threads` workers, one tree at a time each
// (tree t draws from random_generator(seed, t), so the forest does not depend
// on the thread count). const calls (search, search_batch, get, ...) are safe
// from any number of threads at once; add, remove and update are not safe
// alongside anything else.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <numeric>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/kernels.hpp"
#include "annulus/core/labels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/prefetch.hpp"
#include "annulus/core/prepare.hpp"
#include "annulus/core/random.hpp"
#include "annulus/core/scratch.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/core/sizes.hpp"
#include "annulus/core/slots.hpp"
#include "annulus/core/stored.hpp"
#include "annulus/core/tombstones.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/visited.hpp"
#include "annulus/index/concepts.hpp"

namespace annulus {

namespace rp_detail {

inline constexpr std::uint32_t internal_tag = 0xffffffffu;

// 16 bytes. A split's children are consecutive nodes: `first` (margin <= 0)
// and first + 1 (margin > 0).
struct node {
  std::uint32_t first = 0;     // leaf: first entry in the tree's slot array; split: left child
  std::uint32_t count = 0;     // leaf: entries; split: row of the tree's planes
  std::uint32_t capacity = 0;  // leaf: room at `first`; split: internal_tag
  float offset = 0;            // split: the plane's offset
  bool leaf() const { return capacity != internal_tag; }
};

struct tree {
  std::vector<node> nodes;                              // nodes[0] is the root
  std::vector<float, aligned_allocator<float>> planes;  // one unit normal (dim floats) per split
  std::vector<slot_t> slots;                            // leaf entries, a range per leaf
  std::size_t dead = 0;                                 // entries of `slots` no leaf uses
  random_generator rng;                                 // this tree's stream (build, then adds)
};

struct queue_entry {
  float priority;
  std::uint32_t tree, node;
};
constexpr bool lower_priority(const queue_entry& a, const queue_entry& b) { return a.priority < b.priority; }

struct search_scratch {
  std::vector<queue_entry> queue;
  std::vector<slot_t> fresh;
  visited_set visited;
};

// What an add or update changed in one tree, to undo it if the call fails: the sizes
// and the random stream before it, and each leaf it changed (as it was; an
// insert changes exactly one existing node).
struct tree_undo {
  std::size_t nodes = 0, planes = 0, slots = 0, dead = 0;
  random_generator rng;
  std::vector<std::pair<std::uint32_t, node>> changed;
};

// What building a subtree needs besides the tree: reused across its nodes.
struct build_scratch {
  std::vector<float> c0, c1, s0, s1, plane, best_plane;
  std::vector<float> margins, best_margins;
  std::vector<std::array<std::uint32_t, 3>> stack;  // (node, lo, hi)
};

}  // namespace rp_detail

template <metric Metric>
class rp_forest_index : public index_base<rp_forest_index<Metric>, Metric> {
  using base = index_base<rp_forest_index<Metric>, Metric>;
  friend base;

 public:
  static constexpr std::string_view index_name = "rp_forest_index";
  static constexpr std::string_view file_kind = "rp_forest";
  static constexpr bool viewable = true;
  struct build_params {
    std::size_t n_trees = 16;            ///< trees, 1..65536: more trees, better recall per candidate, more memory
    std::size_t leaf_size = 32;          ///< vectors a leaf holds at most before it is split, 1..2^20
    std::uint64_t seed = default_seed;   ///< tree t draws from random_generator(seed, t)
  };
  struct search_params {
    /// Distinct candidates (passing the filter) ranked exactly per query, at
    /// least k; 0 = default_search_k_factor * k * n_trees (5 * k * trees:
    /// 800 at k = 10 and 16 trees, recall@10 0.99 on Fashion-MNIST). A
    /// filter's rejects count neither against k nor against search_k (so a
    /// selective filter walks more of the trees).
    std::size_t search_k = 0;
  };
  static constexpr std::size_t default_search_k_factor = 5;

  /// Empty forest for vectors of `dim` floats. Throws invalid_argument on
  /// dim 0, or n_trees or leaf_size outside their ranges.
  explicit rp_forest_index(std::size_t dim, const build_params& params = {})
      : dim_(dim), leaf_size_(params.leaf_size) {
    if (dim == 0) throw invalid_argument("rp_forest_index: dimension must be at least 1, got 0");
    if (params.n_trees == 0) throw invalid_argument("rp_forest_index: n_trees must be at least 1, got 0");
    if (params.n_trees > max_trees)
      throw invalid_argument("rp_forest_index: n_trees must be at most " + std::to_string(max_trees) +
                             ", got " + std::to_string(params.n_trees));
    if (params.leaf_size == 0) throw invalid_argument("rp_forest_index: leaf_size must be at least 1, got 0");
    if (params.leaf_size > max_leaf_size)
      throw invalid_argument("rp_forest_index: leaf_size must be at most " + std::to_string(max_leaf_size) +
                             ", got " + std::to_string(params.leaf_size));
    trees_.resize(params.n_trees);
    for (std::size_t t = 0; t < trees_.size(); ++t) {
      trees_[t].nodes.assign(1, rp_detail::node{});  // an empty leaf
      trees_[t].rng = random_generator(params.seed, t);
    }
  }

  std::size_t dim() const { return dim_; }
  std::size_t size() const { return slots_.live(); }
  std::size_t n_trees() const { return trees_.size(); }

  /// Heap bytes: vectors, trees (nodes, planes, leaf entries), labels, tombstones.
  std::size_t memory_bytes() const {
    std::size_t bytes = vectors_.memory_bytes() + dead_.memory_bytes() + slots_.memory_bytes() +
                        trees_.capacity() * sizeof(rp_detail::tree);
    for (const rp_detail::tree& t : trees_)
      bytes += t.nodes.capacity() * sizeof(rp_detail::node) + t.planes.capacity() * sizeof(float) +
               t.slots.capacity() * sizeof(slot_t);
    return bytes;
  }

  /// Drops every entry of a removed vector now, rather than at the add
  /// that finds an eighth of the slots removed, and frees their slots for
  /// the next adds (health().removed_unreclaimed becomes 0; the vectors'
  /// room is kept for those adds, not returned). Answers do not change.
  /// O(entries). Not safe beside searches (as remove). Throws read_only_error
  /// on a view.
  void compact(std::size_t /*threads*/ = 0) {
    this->refuse_if_view("compact");
    if (dead_.removed() != 0) purge();
  }

 private:
  // Every tree built over all rows, one tree per parallel_for item.
  static rp_forest_index build_validated(matrix_view<const float> data, std::span<const label_t> labels,
                                         const build_params& params, std::size_t threads) {
    rp_forest_index idx(data.cols(), params);
    idx.slots_.check_new(data.rows(), labels);
    const std::size_t n = data.rows();
    idx.vectors_.resize(sizes::product(n, idx.dim_, "rp_forest_index::build"));
    store_rows<Metric>(data, idx.vectors_.data());
    idx.dead_.resize(n);
    parallel_for(idx.trees_.size(), threads, [&](std::size_t t, std::size_t) {
      rp_detail::tree& tr = idx.trees_[t];
      tr.slots.resize(n);
      std::iota(tr.slots.begin(), tr.slots.end(), slot_t{0});
      rp_detail::build_scratch sc;
      idx.grow(tr, 0, 0, std::uint32_t(n), sc);
    });
    idx.slots_.commit(n, labels);
    return idx;
  }

  // Reuses removed vectors' slots once they are reclaimed: each row descends
  // every tree to a leaf, and a leaf that outgrows leaf_size is split like
  // build splits. Trees are updated on `threads` workers (one thread for
  // small adds). On a throw the index is as it was.
  void add_validated(matrix_view<const float> data, std::span<const label_t> labels, std::size_t threads) {
    // Purging changes no answer and cannot throw.
    const std::vector<slot_t> slots =
        dead_.plan_add(slots_, vectors_, data.rows(), labels, dim_, "rp_forest_index::add", [&] { purge(); });
    if (slots.empty()) return;
    const std::size_t rows = data.rows();

    // Everything that can be allocated up front, before the first change.
    std::vector<rp_detail::tree_undo> undo = undo_records(rows);
    // The planned slots are free or beyond every slot in use: nothing reads them.
    for (std::size_t i = 0; i < rows; ++i)
      store_rows<Metric>(data.rows_slice(i, 1), vectors_.data() + std::size_t(slots[i]) * dim_);

    // The trees, then the labels; out of memory in either undoes the trees.
    const std::size_t revived = dead_.reuse(slots);
    try {
      const std::size_t workers = rows * trees_.size() >= 512 ? threads : 1;
      parallel_for(trees_.size(), workers, [&](std::size_t t, std::size_t) {
        rp_detail::build_scratch sc;
        for (std::size_t i = 0; i < rows; ++i) insert(trees_[t], slots[i], sc, undo[t]);
      });
      slots_.commit(rows, labels);
    } catch (...) {
      for (std::size_t t = 0; t < trees_.size(); ++t) roll_back(trees_[t], undo[t]);
      dead_.unreuse(std::span(slots).first(revived));
      throw;
    }
    // Room left behind by leaves that moved: compact where it is half the
    // slot array (out of memory just leaves it for later).
    for (rp_detail::tree& t : trees_)
      if (t.dead > t.slots.size() / 2) try {
          compact(t);
        } catch (const std::bad_alloc&) {
        }
  }

  // A tombstone, skipped by searches, whose entries and slot a later add reclaims.
  void remove_label(label_t label) { dead_.remove(slots_, label, "rp_forest_index::remove"); }

  // The slot keeps its label; in each tree its entry leaves the leaf the old
  // vector reached and the new vector is inserted as an add inserts it. Out
  // of memory midway puts the entries and the old vector back.
  void update_validated(label_t label, std::span<const float> vector) {
    const slot_t s = slots_.slot_of(label, "rp_forest_index::update");
    const std::vector<float> old(vec(s), vec(s) + dim_);
    std::vector<entry_at> at(trees_.size());
    for (std::size_t t = 0; t < trees_.size(); ++t) at[t] = locate(trees_[t], s);
    std::vector<rp_detail::tree_undo> undo = undo_records(1);
    rp_detail::build_scratch sc;

    for (std::size_t t = 0; t < trees_.size(); ++t) take_out(trees_[t], at[t]);
    store_rows<Metric>(matrix_view<const float>(vector.data(), 1, dim_), vectors_.data() + std::size_t(s) * dim_);
    try {
      for (std::size_t t = 0; t < trees_.size(); ++t) insert(trees_[t], s, sc, undo[t]);
    } catch (...) {
      for (std::size_t t = 0; t < trees_.size(); ++t) {
        roll_back(trees_[t], undo[t]);
        put_back(trees_[t], at[t], s);
      }
      std::copy(old.begin(), old.end(), vectors_.data() + std::size_t(s) * dim_);
      throw;
    }
  }

  const slot_directory& directory() const { return slots_; }
  void copy_vector(slot_t s, float* out) const { std::copy_n(vec(s), dim_, out); }

  // ---- saved form (see the file comment) ----

  static constexpr std::size_t tree_words = 10;  // u64s a tree in "rp_forest.trees"

  void save_sections(serial::writer& w) const {
    w.section("rp_forest", serial::record().set("n_trees", trees_.size()).set("leaf_size", leaf_size_));
    std::vector<std::uint64_t> shape;
    shape.reserve(trees_.size() * tree_words);
    for (const rp_detail::tree& t : trees_) {
      shape.insert(shape.end(), {t.nodes.size(), t.planes.size() / dim_, t.slots.size(), t.dead});
      const auto state = t.rng.state();
      shape.insert(shape.end(), state.begin(), state.end());
    }
    w.section("rp_forest.trees", std::span<const std::uint64_t>(shape));
    w.begin("rp_forest.nodes");
    for (const rp_detail::tree& t : trees_)
      for (const rp_detail::node& nd : t.nodes) {
        const std::array<std::uint32_t, 4> words{nd.first, nd.count, nd.capacity,
                                                 std::bit_cast<std::uint32_t>(nd.offset)};
        w.append(std::span<const std::uint32_t>(words));
      }
    w.end();
    w.begin("rp_forest.planes");
    for (const rp_detail::tree& t : trees_) w.append(std::span<const float>(t.planes));
    w.end();
    w.begin("rp_forest.entries");
    for (const rp_detail::tree& t : trees_) w.append(std::span<const slot_t>(t.slots));
    w.end();
    w.section("vectors", std::span<const float>(vectors_.data(), slots_.slots() * dim_));
    slots_.save(w);
    dead_.save(w);
  }

  static rp_forest_index load_sections(serial::reader& r) {
    const auto rec = r.fields("rp_forest");
    build_params p;
    p.n_trees = rec.u64_in("n_trees", 1, max_trees);
    p.leaf_size = rec.u64_in("leaf_size", 1, max_leaf_size);
    rp_forest_index idx(r.header().dim, p);
    const std::size_t dim = idx.dim_;
    idx.slots_ = slot_directory::load(r);
    idx.dead_ = tombstones::load(r, idx.slots_);
    const std::size_t n = idx.slots_.slots();
    // The directory's own per-slot states (checked by its load): 0 live, 1 free, 2 removed.
    const auto state = r.structure_array<std::uint8_t>("slots.state", n);

    const auto shape =
        r.structure_array<std::uint64_t>("rp_forest.trees", r.product("rp_forest.trees", p.n_trees, tree_words));
    constexpr std::uint64_t max32 = std::numeric_limits<std::uint32_t>::max();
    std::uint64_t nodes = 0, rows = 0, entries = 0;  // totals: below 2^16 trees x 2^32
    for (std::size_t t = 0; t < p.n_trees; ++t) {
      const std::uint64_t* sh = shape.data() + t * tree_words;
      if (sh[0] == 0 || sh[0] > max32 || sh[1] > max32 || sh[2] > max32 || sh[3] > sh[2])
        r.fail("rp_forest.trees", "tree " + std::to_string(t) + " has " + std::to_string(sh[0]) + " nodes, " +
                                      std::to_string(sh[1]) + " planes, " + std::to_string(sh[2]) + " entries (" +
                                      std::to_string(sh[3]) + " unused): expected 1 to 2^32 - 1 nodes, at most "
                                      "2^32 - 1 of the others, the unused ones among the entries");
      nodes += sh[0];
      rows += sh[1];
      entries += sh[2];
    }
    const auto words = r.structure_array<std::uint32_t>("rp_forest.nodes", r.product("rp_forest.nodes", nodes, 4));
    const auto planes = r.structure_array<float>("rp_forest.planes", r.product("rp_forest.planes", rows, dim));
    const auto slots = r.structure_array<slot_t>("rp_forest.entries", entries);

    std::vector<std::uint32_t> seen(n, 0);  // seen[s] = t + 1: slot s has an entry in tree t
    std::size_t node_at = 0, plane_at = 0, entry_at = 0;
    for (std::size_t t = 0; t < p.n_trees; ++t) {
      const std::uint64_t* sh = shape.data() + t * tree_words;
      rp_detail::tree& tr = idx.trees_[t];
      tr.nodes.resize(sh[0]);
      for (std::size_t i = 0; i < sh[0]; ++i, ++node_at)
        tr.nodes[i] = {words[4 * node_at], words[4 * node_at + 1], words[4 * node_at + 2],
                       std::bit_cast<float>(words[4 * node_at + 3])};
      tr.planes.assign(planes.begin() + std::ptrdiff_t(plane_at * dim),
                       planes.begin() + std::ptrdiff_t((plane_at + sh[1]) * dim));
      plane_at += sh[1];
      tr.slots.assign(slots.begin() + std::ptrdiff_t(entry_at), slots.begin() + std::ptrdiff_t(entry_at + sh[2]));
      entry_at += sh[2];
      tr.dead = sh[3];
      std::array<std::uint64_t, 6> rng;
      std::copy_n(sh + 4, 6, rng.begin());
      const auto stream = random_generator::from_state(rng);
      if (!stream) r.fail("rp_forest.trees", "tree " + std::to_string(t) + " has a random state no generator is in");
      tr.rng = *stream;
      check_tree(r, t, tr, sh[1], state, idx.slots_.live(), seen);
    }
    const auto vectors = r.payload_array<float>("vectors", r.product("vectors", n, dim));
    idx.vectors_ = r.viewing() ? stored_array<float>::borrow(vectors) : stored_array<float>::copy_of(vectors);
    return idx;
  }

  // Tree t is a tree: every split's children (a pair of consecutive nodes)
  // come after it, every node but the root is the child of exactly one split
  // (so every node is reached from the root, once, and no path loops), every
  // split has a plane of its own; the leaves' ranges lie in the entry array
  // without overlapping, and with the unused entries fill it; the entries
  // in use name slots that hold vectors or were removed (never free ones),
  // none twice, and every vector once.
  static void check_tree(serial::reader& r, std::size_t t, const rp_detail::tree& tr, std::uint64_t plane_rows,
                         std::span<const std::uint8_t> state, std::size_t live, std::vector<std::uint32_t>& seen) {
    const std::string tree = "tree " + std::to_string(t);
    const std::size_t count = tr.nodes.size(), entries = tr.slots.size();
    std::vector<std::uint8_t> parent(count, 0), used(entries, 0);
    std::uint64_t splits = 0, room = 0, in_leaves = 0;
    for (std::size_t i = 0; i < count; ++i) {
      const rp_detail::node& nd = tr.nodes[i];
      const std::string at = tree + ", node " + std::to_string(i);
      if (!nd.leaf()) {
        if (nd.first <= i || nd.first >= count - 1 || nd.count >= plane_rows || parent[nd.first] ||
            parent[nd.first + 1])
          r.fail("rp_forest.nodes", at + ": a split with children " + std::to_string(nd.first) + " and " +
                                        std::to_string(std::uint64_t(nd.first) + 1) + " and plane " +
                                        std::to_string(nd.count) + ", expected children after it that no other "
                                        "split has, below " + std::to_string(count) + ", and a plane below " +
                                        std::to_string(plane_rows));
        parent[nd.first] = parent[nd.first + 1] = 1;
        ++splits;
        continue;
      }
      if (nd.count > nd.capacity || nd.first > entries || nd.capacity > entries - nd.first ||
          std::bit_cast<std::uint32_t>(nd.offset) != 0)
        r.fail("rp_forest.nodes", at + ": a leaf of " + std::to_string(nd.count) + " entries in room for " +
                                      std::to_string(nd.capacity) + " at " + std::to_string(nd.first) +
                                      ", expected within " + std::to_string(entries) + " entries and a zero offset");
      room += nd.capacity;
      for (std::uint32_t e = nd.first; e < nd.first + nd.capacity; ++e) {
        if (used[e]) r.fail("rp_forest.nodes", at + ": its room overlaps another leaf's at entry " + std::to_string(e));
        used[e] = 1;
      }
      for (std::uint32_t e = nd.first; e < nd.first + nd.count; ++e) {
        const slot_t s = tr.slots[e];
        if (s >= state.size() || state[s] == 1 || seen[s] == t + 1)
          r.fail("rp_forest.entries", at + ": entry " + std::to_string(e) + " names slot " + std::to_string(s) +
                                          ", expected a slot holding a vector or removed, once in the tree");
        seen[s] = std::uint32_t(t + 1);
        in_leaves += state[s] == 0;
      }
    }
    for (std::size_t i = 1; i < count; ++i)
      if (!parent[i]) r.fail("rp_forest.nodes", tree + ", node " + std::to_string(i) + " is no split's child");
    if (splits != plane_rows || room + tr.dead != entries || in_leaves != live)
      r.fail("rp_forest.trees", tree + ": " + std::to_string(splits) + " splits for " + std::to_string(plane_rows) +
                                    " planes, " + std::to_string(room) + " entries of room and " +
                                    std::to_string(tr.dead) + " unused of " + std::to_string(entries) + ", " +
                                    std::to_string(in_leaves) + " vectors of " + std::to_string(live) +
                                    " in its leaves");
  }

  // Each tree's state before an add or update of `rows` vectors (changed
  // reserved: recording a change never allocates).
  std::vector<rp_detail::tree_undo> undo_records(std::size_t rows) const {
    std::vector<rp_detail::tree_undo> undo(trees_.size());
    for (std::size_t t = 0; t < trees_.size(); ++t) {
      const rp_detail::tree& tr = trees_[t];
      undo[t] = {tr.nodes.size(), tr.planes.size(), tr.slots.size(), tr.dead, tr.rng, {}};
      undo[t].changed.reserve(rows);
    }
    return undo;
  }

  // Where a tree holds a slot: its leaf and the entry's place in t.slots.
  struct entry_at {
    std::uint32_t node = nowhere, entry = 0;
  };
  static constexpr std::uint32_t nowhere = rp_detail::internal_tag;

  // The entry of live slot s: on the path its vector descends (margins
  // computed as build and insert computed them; both sides of a split no
  // plane separates, which build halves by position), else, should rounding
  // ever disagree, in whichever leaf holds it. Every tree holds every live
  // slot; were one missing, nowhere (and the update leaves that tree be).
  entry_at locate(const rp_detail::tree& t, slot_t s) const {
    const auto find_in = [&](std::uint32_t ni, entry_at& found) {
      const rp_detail::node& nd = t.nodes[ni];
      for (std::uint32_t i = nd.first; i < nd.first + nd.count; ++i)
        if (t.slots[i] == s) {
          found = {ni, i};
          return true;
        }
      return false;
    };
    entry_at found;
    std::vector<std::uint32_t> stack{0};
    while (!stack.empty()) {
      const std::uint32_t ni = stack.back();
      stack.pop_back();
      const rp_detail::node& nd = t.nodes[ni];
      if (nd.leaf()) {
        if (find_in(ni, found)) return found;
      } else if (std::isnan(nd.offset)) {
        stack.push_back(nd.first);
        stack.push_back(nd.first + 1);
      } else {
        const float m = kernels::dot(vec(s), t.planes.data() + std::size_t(nd.count) * dim_, dim_) - nd.offset;
        stack.push_back(nd.first + (m > 0));
      }
    }
    for (std::uint32_t ni = 0; ni < t.nodes.size(); ++ni)
      if (t.nodes[ni].leaf() && find_in(ni, found)) return found;
    return found;
  }

  // Removes the entry at `at` from its leaf, keeping the others' order (a
  // later split samples by position). Cannot throw.
  static void take_out(rp_detail::tree& t, entry_at at) noexcept {
    if (at.node == nowhere) return;
    rp_detail::node& nd = t.nodes[at.node];
    std::copy(t.slots.begin() + at.entry + 1, t.slots.begin() + nd.first + nd.count, t.slots.begin() + at.entry);
    --nd.count;
  }
  // Undoes take_out (after roll_back has undone what came later). Cannot throw.
  static void put_back(rp_detail::tree& t, entry_at at, slot_t s) noexcept {
    if (at.node == nowhere) return;
    rp_detail::node& nd = t.nodes[at.node];
    std::copy_backward(t.slots.begin() + at.entry, t.slots.begin() + nd.first + nd.count,
                       t.slots.begin() + nd.first + nd.count + 1);
    t.slots[at.entry] = s;
    ++nd.count;
  }

  static constexpr std::size_t max_trees = 1u << 16;
  static constexpr std::size_t max_leaf_size = 1u << 20;
  static constexpr std::size_t split_attempts = 3;   // fresh point pairs tried for a balanced split
  static constexpr std::size_t kmeans_steps = 3;     // 2-means refinement steps per split
  static constexpr std::size_t kmeans_sample = 64;   // vectors each step looks at

  const float* vec(slot_t s) const { return vectors_.data() + std::size_t(s) * dim_; }

  // Angular splits compare directions: inner_product points are normalised
  // where a direction is meant (cosine ones already are).
  static constexpr bool angular = Metric::kind != metric_kind::l2;

  // Two centroids for node [lo, hi) into sc.c0 and sc.c1: two random vectors
  // of different values, refined by a few 2-means steps over random samples
  // of the node. Different values, not just different entries: in a node
  // that is mostly copies of one vector, two random entries are usually two
  // copies, and a split of the few others would be left to chance.
  void two_means(rp_detail::tree& t, std::uint32_t lo, std::uint32_t hi, rp_detail::build_scratch& sc) const {
    const std::uint32_t n = hi - lo;
    const std::uint32_t i = std::uint32_t(t.rng.below(n));
    std::uint32_t j = std::uint32_t(t.rng.below(n - 1));
    if (j >= i) ++j;
    const auto same = [&](std::uint32_t a, std::uint32_t b) {
      return std::memcmp(vec(t.slots[lo + a]), vec(t.slots[lo + b]), dim_ * sizeof(float)) == 0;
    };
    for (std::uint32_t tried = 0; tried < n && same(i, j); ++tried) j = (j + 1) % n;
    std::copy_n(vec(t.slots[lo + i]), dim_, sc.c0.begin());
    std::copy_n(vec(t.slots[lo + j]), dim_, sc.c1.begin());
    if constexpr (angular) {
      normalise(sc.c0);
      normalise(sc.c1);
    }
    std::vector<float>& s0 = sc.s0;
    std::vector<float>& s1 = sc.s1;
    for (std::size_t step = 0; step < kmeans_steps; ++step) {
      std::fill(s0.begin(), s0.end(), 0.f);
      std::fill(s1.begin(), s1.end(), 0.f);
      std::size_t n0 = 0, n1 = 0;
      for (std::size_t r = 0; r < std::min<std::size_t>(kmeans_sample, n); ++r) {
        const float* x = vec(t.slots[lo + t.rng.below(n)]);
        bool second;
        float w = 1.f;
        if constexpr (angular) {
          second = kernels::dot(x, sc.c1.data(), dim_) > kernels::dot(x, sc.c0.data(), dim_);
          if constexpr (!Metric::normalizes) w = 1.f / std::max(kernels::norm(x, dim_), 1e-30f);
        } else {
          second = kernels::l2sq(x, sc.c1.data(), dim_) < kernels::l2sq(x, sc.c0.data(), dim_);
        }
        std::vector<float>& sum = second ? s1 : s0;
        for (std::size_t d = 0; d < dim_; ++d) sum[d] += w * x[d];
        ++(second ? n1 : n0);
      }
      if (n0 == 0 || n1 == 0) break;  // keep the last two distinct centroids
      for (std::size_t d = 0; d < dim_; ++d) {
        sc.c0[d] = s0[d] / float(n0);
        sc.c1[d] = s1[d] / float(n1);
      }
      if constexpr (angular) {
        normalise(sc.c0);
        normalise(sc.c1);
      }
    }
  }

  static float normalise(std::vector<float>& v) {
    const float n = kernels::norm(v.data(), v.size());
    if (n > 0)
      for (float& x : v) x /= n;
    return n;
  }

  // Chooses the plane of node [lo, hi) into sc.best_plane and partitions the
  // slots by it (margin <= 0 first); returns where the right side starts.
  std::uint32_t split(rp_detail::tree& t, std::uint32_t lo, std::uint32_t hi, float& offset,
                      rp_detail::build_scratch& sc) const {
    const std::uint32_t n = hi - lo;
    std::size_t best_balance = 0;
    offset = 0;
    for (std::size_t attempt = 0; attempt < split_attempts; ++attempt) {
      two_means(t, lo, hi, sc);
      float off = 0;
      for (std::size_t d = 0; d < dim_; ++d) sc.plane[d] = sc.c0[d] - sc.c1[d];
      if (!(normalise(sc.plane) > 0)) continue;  // the centroids coincide
      if constexpr (!angular) {
        for (std::size_t d = 0; d < dim_; ++d) off += sc.plane[d] * 0.5f * (sc.c0[d] + sc.c1[d]);
      }
      std::size_t right = 0;
      for (std::uint32_t r = 0; r < n; ++r) {
        sc.margins[r] = kernels::dot(vec(t.slots[lo + r]), sc.plane.data(), dim_) - off;
        right += sc.margins[r] > 0;
      }
      const std::size_t balance = std::min(right, n - right);
      if (balance > best_balance) {
        best_balance = balance;
        offset = off;
        std::swap(sc.plane, sc.best_plane);
        std::swap(sc.margins, sc.best_margins);
      }
      if (balance >= n / 8) break;
    }
    if (best_balance == 0) {  // (near) duplicates: no plane separates them; halve the range
      std::fill(sc.best_plane.begin(), sc.best_plane.end(), 0.f);
      offset = even_split;
      return lo + n / 2;
    }
    std::uint32_t a = 0, b = n;  // two-pointer partition of slots and margins together
    while (a < b) {
      if (sc.best_margins[a] <= 0) {
        ++a;
      } else {
        --b;
        std::swap(sc.best_margins[a], sc.best_margins[b]);
        std::swap(t.slots[lo + a], t.slots[lo + b]);
      }
    }
    return lo + a;
  }

  // Turns node `root` into a subtree over the entries [lo, hi) of t.slots.
  void grow(rp_detail::tree& t, std::uint32_t root, std::uint32_t lo, std::uint32_t hi,
            rp_detail::build_scratch& sc) const {
    for (std::vector<float>* v : {&sc.c0, &sc.c1, &sc.s0, &sc.s1, &sc.plane, &sc.best_plane}) v->resize(dim_);
    sc.margins.resize(hi - lo);  // the largest node of the subtree is its root
    sc.best_margins.resize(hi - lo);
    sc.stack.assign(1, {root, lo, hi});
    while (!sc.stack.empty()) {
      const auto [ni, a, b] = sc.stack.back();
      sc.stack.pop_back();
      if (b - a <= leaf_size_) {
        t.nodes[ni] = rp_detail::node{a, b - a, b - a, 0.f};
        continue;
      }
      float offset;
      const std::uint32_t mid = split(t, a, b, offset, sc);
      const std::uint32_t row = std::uint32_t(t.planes.size() / dim_);
      t.planes.insert(t.planes.end(), sc.best_plane.begin(), sc.best_plane.begin() + std::ptrdiff_t(dim_));
      const std::uint32_t child = std::uint32_t(t.nodes.size());
      t.nodes.resize(t.nodes.size() + 2);
      t.nodes[ni] = rp_detail::node{child, row, rp_detail::internal_tag, offset};
      sc.stack.push_back({child + 1, mid, b});
      sc.stack.push_back({child, a, mid});
    }
  }

  // A split of vectors no plane separates: a zero plane whose offset is NaN,
  // so its margin is NaN and a search queues both sides alike; inserts
  // alternate sides by slot (else duplicates added one by one would pile
  // into a chain of left children).
  static constexpr float even_split = std::numeric_limits<float>::quiet_NaN();

  // The leaf that slot s falls into.
  std::uint32_t descend(const rp_detail::tree& t, slot_t s) const {
    std::uint32_t ni = 0;
    for (std::size_t depth = 0; !t.nodes[ni].leaf(); ++depth) {
      const rp_detail::node& nd = t.nodes[ni];
      const bool right = std::isnan(nd.offset)
                             ? ((s >> (depth % 32)) & 1) != 0
                             : kernels::dot(vec(s), t.planes.data() + std::size_t(nd.count) * dim_, dim_) - nd.offset > 0;
      ni = nd.first + right;
    }
    return ni;
  }

  // Adds slot s to its leaf; a full leaf moves (its removed entries dropped)
  // to the end of the slot array with twice the room, or, past leaf_size, is
  // grown into a subtree there. Records the leaf as it was in undo.changed
  // (reserved: never allocates); what it appends to the tree's arrays
  // undo's sizes cut off. Out of memory leaves the leaf as it was.
  void insert(rp_detail::tree& t, slot_t s, rp_detail::build_scratch& sc, rp_detail::tree_undo& undo) {
    const std::uint32_t ni = descend(t, s);
    const rp_detail::node leaf = t.nodes[ni];
    if (leaf.count < leaf.capacity) {
      undo.changed.emplace_back(ni, leaf);
      t.slots[leaf.first + leaf.count] = s;
      ++t.nodes[ni].count;
      return;
    }
    std::size_t live = 0;
    for (std::uint32_t i = leaf.first; i < leaf.first + leaf.count; ++i) live += !dead_.dead(t.slots[i]);
    const std::uint32_t base = std::uint32_t(t.slots.size());
    const std::size_t need = live + 1;
    const std::size_t room = need > leaf_size_ ? need : std::clamp<std::size_t>(2 * live, need, leaf_size_);
    if (need > leaf_size_) {  // room for the whole subtree first: grow itself then cannot throw
      t.nodes.reserve(t.nodes.size() + 2 * need);
      t.planes.reserve(t.planes.size() + need * dim_);
      sc.stack.reserve(2 * need);
      for (std::vector<float>* v : {&sc.c0, &sc.c1, &sc.s0, &sc.s1, &sc.plane, &sc.best_plane}) v->resize(dim_);
      sc.margins.resize(need);
      sc.best_margins.resize(need);
    }
    t.slots.resize(base + room);
    undo.changed.emplace_back(ni, leaf);
    std::uint32_t at = base;
    for (std::uint32_t i = leaf.first; i < leaf.first + leaf.count; ++i)
      if (!dead_.dead(t.slots[i])) t.slots[at++] = t.slots[i];
    t.slots[at] = s;
    t.dead += leaf.capacity;
    if (need > leaf_size_)
      grow(t, ni, base, base + std::uint32_t(need), sc);
    else
      t.nodes[ni] = rp_detail::node{base, std::uint32_t(need), std::uint32_t(room), 0.f};
  }

  // Undoes an add's changes to tree t (latest first). Cannot throw: it only
  // restores values and shrinks vectors.
  static void roll_back(rp_detail::tree& t, rp_detail::tree_undo& undo) noexcept {
    for (auto it = undo.changed.rbegin(); it != undo.changed.rend(); ++it)
      if (it->first < undo.nodes) t.nodes[it->first] = it->second;
    t.nodes.resize(undo.nodes);
    t.planes.resize(undo.planes);
    t.slots.resize(undo.slots);
    t.dead = undo.dead;
    t.rng = undo.rng;
  }

  // Drops every entry of a removed vector from the leaves, in place, and
  // frees their slots for reuse. Leaves keep their room; answers do not change.
  void purge() noexcept {
    for (rp_detail::tree& t : trees_)
      for (rp_detail::node& nd : t.nodes) {
        if (!nd.leaf()) continue;
        std::uint32_t kept = nd.first;
        for (std::uint32_t i = nd.first; i < nd.first + nd.count; ++i)
          if (!dead_.dead(t.slots[i])) t.slots[kept++] = t.slots[i];
        nd.count = kept - nd.first;
      }
    dead_.reclaim(slots_);
  }

  // Rewrites the slot array with every leaf exactly sized, in node order.
  static void compact(rp_detail::tree& t) {
    std::vector<slot_t> slots;
    slots.reserve(t.slots.size() - t.dead);
    for (rp_detail::node& nd : t.nodes) {
      if (!nd.leaf()) continue;
      const std::uint32_t at = std::uint32_t(slots.size());
      slots.insert(slots.end(), t.slots.begin() + nd.first, t.slots.begin() + nd.first + nd.count);
      nd.first = at;
      nd.capacity = nd.count;
    }
    t.slots.swap(slots);
    t.dead = 0;
  }

  void prefetch(slot_t s) const { prefetch_lines(vec(s), lines_for(dim_ * sizeof(float))); }

  template <class Keep>
  std::size_t search_prepared(const float* q, std::size_t k, const search_params& params, std::span<neighbor> out,
                              const Keep& keep) const {
    scratch_lease<rp_detail::search_scratch> sc;
    const std::size_t budget =
        std::max(k, params.search_k != 0 ? params.search_k : default_search_k_factor * k * trees_.size());
    const std::size_t slots = slots_.slots();
    sc->visited.reset(slots);
    std::vector<rp_detail::queue_entry>& queue = sc->queue;
    queue.clear();
    for (std::size_t t = 0; t < trees_.size(); ++t)
      queue.push_back({std::numeric_limits<float>::infinity(), std::uint32_t(t), 0});

    topk_heap heap(out, k);
    float threshold = heap.threshold();
    std::size_t found = 0;
    while (found < budget && !queue.empty()) {
      std::pop_heap(queue.begin(), queue.end(), rp_detail::lower_priority);
      const rp_detail::queue_entry e = queue.back();
      queue.pop_back();
      const rp_detail::tree& t = trees_[e.tree];
      const rp_detail::node& nd = t.nodes[e.node];
      if (!nd.leaf()) {
        const float m = kernels::dot(q, t.planes.data() + std::size_t(nd.count) * dim_, dim_) - nd.offset;
        queue.push_back({std::min(e.priority, -m), e.tree, nd.first});
        std::push_heap(queue.begin(), queue.end(), rp_detail::lower_priority);
        queue.push_back({std::min(e.priority, m), e.tree, nd.first + 1});
        std::push_heap(queue.begin(), queue.end(), rp_detail::lower_priority);
        continue;
      }
      std::vector<slot_t>& fresh = sc->fresh;
      fresh.clear();
      for (const slot_t* p = t.slots.data() + nd.first, *end = p + nd.count; p != end; ++p) {
        const slot_t s = *p;
        if (s >= slots || sc->visited.test_and_set(s)) continue;
        if (dead_.dead(s)) continue;
        if constexpr (!std::is_same_v<Keep, accept_all>)
          if (!keep(slots_.label(s))) continue;
        fresh.push_back(s);
      }
      if (fresh.empty()) continue;
      for_each_prefetched(
          fresh.size(), 1, [&](std::size_t j) { prefetch(fresh[j]); },
          [&](std::size_t j) {
            const float d = Metric::distance(q, vec(fresh[j]), dim_);
            if (d <= threshold && heap.push(fresh[j], d)) threshold = heap.threshold();
          });
      found += fresh.size();
    }
    return this->finish_labels(out, heap.sort(), [&](slot_t s) { return slots_.label(s); });
  }

  std::size_t dim_;
  std::size_t leaf_size_;
  std::vector<rp_detail::tree> trees_;
  stored_array<float> vectors_;  // slot-major (normalised under cosine)
  tombstones dead_;       // removed vectors whose entries the trees may still hold
  slot_directory slots_;  // labels and free slots
};

static_assert(mutable_index<rp_forest_index<l2>> && filterable_index<rp_forest_index<cosine>, accept_all>);

}  // namespace annulus
