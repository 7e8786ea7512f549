// The layered graph of Malkov & Yashunin (HNSW, 2016/2018) over a node_store:
// greedy descent through the upper layers, beam search on a layer, the
// neighbour-selection heuristic, and insertion of one node. hnsw_index adds
// labels, validation, deletion bookkeeping and the public calls on top.
//
// Any number of threads may search and insert at once: lists change only
// under their node's lock and are read through atomics (node_store.hpp); a
// node's vector and header are written before any list names it.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <type_traits>
#include <vector>

#include "annulus/core/metric.hpp"
#include "annulus/core/random.hpp"
#include "annulus/core/visited.hpp"
#include "annulus/index/hnsw/node_store.hpp"
#include "annulus/quant/sq8.hpp"

namespace annulus::hnsw_detail {

struct candidate {
  float distance;
  slot_t slot;
  friend bool operator<(const candidate& a, const candidate& b) {
    return a.distance < b.distance || (a.distance == b.distance && a.slot < b.slot);
  }
  friend bool operator>(const candidate& a, const candidate& b) { return b < a; }
};

/// Per-thread buffers of one search or insertion, reused across calls.
struct scratch {
  visited_set visited;
  std::vector<candidate> frontier;  // filtered beams: min-heap of nodes still to expand
  std::vector<candidate> best;      // the ef closest returnable nodes
  std::vector<std::uint8_t> expanded;  // unfiltered beams: whether best[i] was expanded
  std::vector<slot_t> fresh;        // unvisited neighbours of the node being expanded
  std::vector<candidate> pool;      // neighbour selection input
  std::vector<candidate> kept;      // neighbour selection output
  std::vector<candidate> copies;    // pool entries holding the base's own vector
  std::vector<slot_t> linked;       // the new node's neighbours, top layer first
  std::vector<std::size_t> linked_end;  // where each layer's part of `linked` ends
  sq8_query query;                  // a quantised search's query terms (hnsw_sq8_index)
};

/// Every node may be returned (no filter, no tombstones).
struct any_node {
  constexpr bool operator()(slot_t) const { return true; }
};

/// Levels above this are never drawn (probability m^-31).
inline constexpr std::size_t max_level = 31;

/// Layer 0 as hnsw_index::health() reports it (graph::survey). "In use":
/// slots below the count surveyed, live or tombstones (both route).
struct layer0_survey {
  std::size_t entry_level = 0;       // the entry point's top layer (0 without one)
  std::size_t reached = 0;           // nodes in use reached from the entry point over layer-0 links
  std::size_t unreachable = 0;       // nodes in use not reached (live or tombstones)
  std::size_t unreachable_live = 0;  // of them, live ones: no search descends to them
  std::size_t live = 0;              // live nodes seen
  std::size_t degree_min = 0, degree_max = 0;  // layer-0 out-degree over live nodes
  double degree_mean = 0, degree_median = 0;
  std::size_t links = 0;             // layer-0 links held by nodes in use
  std::size_t links_to_tombstones = 0;  // of them, those naming a tombstone
};

template <metric Metric>
class graph {
 public:
  static constexpr std::uint64_t no_entry = ~std::uint64_t{0};

  /// alpha: hnsw_build_params::alpha (checked by hnsw_index). code_bytes:
  /// room for a code in each node record (0: none).
  graph(std::size_t dim, std::size_t m, std::size_t ef_construction, std::uint64_t seed, double alpha,
        std::size_t code_bytes = 0)
      : store_(dim, m, code_bytes), ef_construction_(ef_construction), seed_(seed),
        level_scale_(1.0 / std::log(double(m))), prune_scale_(prune_scale(alpha)),
        entry_(std::make_unique<entry_point>()) {}

  node_store& store() { return store_; }
  const node_store& store() const { return store_; }
  std::size_t dim() const { return store_.dim(); }

  float distance(const float* q, slot_t s) const { return Metric::distance(q, store_.vector(s), dim()); }

  /// What a search compares a query with at each node it reaches: here the
  /// stored vector (exact); hnsw_sq8_index passes one that reads the node's
  /// code. A scorer gives score(s), and prefetch(s, lines) / lines() over
  /// the bytes score(s) reads.
  struct exact_scorer {
    const graph* g;
    const float* q;
    float operator()(slot_t s) const { return g->distance(q, s); }
    void prefetch(slot_t s, std::size_t lines) const { g->store_.prefetch_vector(s, lines); }
    std::size_t lines() const { return g->store_.vector_lines(); }
  };
  exact_scorer exact(const float* q) const { return {this, q}; }

  /// The level of slot s: floor(-ln(U) * mL) with U drawn from (seed, slot),
  /// so it does not depend on insertion order or thread count.
  std::size_t draw_level(slot_t s) const {
    random_generator rng(seed_, s);
    const double u = 1.0 - rng.uniform();  // (0, 1]
    return std::min<std::size_t>(max_level, static_cast<std::size_t>(-std::log(u) * level_scale_));
  }

  /// (slot, top layer) of the entry point, or nullopt-like no_entry.
  std::uint64_t entry() const { return entry_->packed.load(std::memory_order_acquire); }
  static slot_t entry_slot(std::uint64_t e) { return static_cast<slot_t>(e & 0xffffffffu); }
  static std::size_t entry_level(std::uint64_t e) { return static_cast<std::size_t>(e >> 32); }

  /// Sets the entry point a file saved (checked by the caller).
  void restore_entry(std::uint64_t packed) { entry_->packed.store(packed, std::memory_order_release); }
  static std::uint64_t pack(slot_t s, std::size_t level) { return (std::uint64_t{level} << 32) | s; }

  /// Closest node to q on `layer` reachable greedily from `cur`.
  candidate greedy(const float* q, candidate cur, std::size_t layer, std::size_t known) const {
    return greedy_by(exact(q), cur, layer, known);
  }
  template <class Scorer>
  candidate greedy_by(const Scorer& score, candidate cur, std::size_t layer, std::size_t known) const {
    for (bool moved = true; moved;) {
      moved = false;
      const link_list l = store_.links(cur.slot, layer);
      for (std::uint32_t i = 0, n = l.size(); i < n; ++i) {
        const slot_t s = l[i];
        if (s >= known) continue;  // inserted after this search began
        const float d = score(s);
        if (d < cur.distance) cur = {d, s}, moved = true;
      }
    }
    return cur;
  }

  /// From the entry point down to layer 1: the closest node found for q.
  candidate descend(const float* q, std::size_t to_layer, std::size_t known) const {
    return descend_by(exact(q), to_layer, known);
  }
  template <class Scorer>
  candidate descend_by(const Scorer& score, std::size_t to_layer, std::size_t known) const {
    const std::uint64_t e = entry();
    candidate cur{score(entry_slot(e)), entry_slot(e)};
    for (std::size_t layer = entry_level(e); layer > to_layer; --layer) cur = greedy_by(score, cur, layer, known);
    return cur;
  }

  /// Beam search of width ef on `layer` from `start`; leaves the ef closest
  /// nodes that satisfy `returnable` in sc.best, closest first.
  /// Nodes that fail `returnable` are still expanded (they route).
  template <class Returnable>
  void beam(const float* q, candidate start, std::size_t ef, std::size_t layer,
            const Returnable& returnable, scratch& sc) const {
    beam_by(exact(q), start, ef, layer, returnable, sc);
  }
  template <class Scorer, class Returnable>
  void beam_by(const Scorer& score, candidate start, std::size_t ef, std::size_t layer,
               const Returnable& returnable, scratch& sc) const {
    if constexpr (std::is_same_v<Returnable, any_node>)
      beam_sorted(score, start, ef, layer, sc);
    else
      beam_heaps(score, start, ef, layer, returnable, sc);
  }

 private:
  // Every node returnable: the frontier is the part of the ef best not yet
  // expanded, so one array sorted by distance holds both (a node that falls
  // out of the best would never be expanded: it is farther than the worst).
  template <class Scorer>
  void beam_sorted(const Scorer& score, candidate start, std::size_t ef, std::size_t layer, scratch& sc) const {
    const std::size_t known = store_.capacity();
    sc.visited.reset(known);
    auto& pool = sc.best;
    auto& expanded = sc.expanded;
    sc.visited.test_and_set(start.slot);
    pool.assign(1, start);
    expanded.assign(1, 0);
    std::size_t next = 0, ties = 0;
    while (next < pool.size()) {
      const candidate c = pool[next];
      expanded[next] = 1;
      // The ties rule of beam_heaps; the worst entry itself is not counted,
      // so that a beam of ef = 1 keeps walking while it improves.
      if (c.distance == pool.back().distance && pool.size() == ef && next + 1 < pool.size() && ++ties > ef) break;
      std::size_t after = next + 1;
      while (after < pool.size() && expanded[after]) ++after;
      if (layer == 0 && after < pool.size()) store_.prefetch_links(pool[after].slot);
      score_neighbours(score, c.slot, layer, known, sc, [&](float d, slot_t s) {
        // As beam_heaps: below the worst once full, and never NaN or +inf
        // (an overflowed distance would break the order).
        const bool full = pool.size() == ef;
        if (!(d < (full ? pool.back().distance : std::numeric_limits<float>::infinity()))) return;
        if (full) {
          pool.pop_back();
          expanded.pop_back();
        }
        const candidate x{d, s};
        const std::size_t at = std::size_t(std::upper_bound(pool.begin(), pool.end(), x) - pool.begin());
        pool.insert(pool.begin() + std::ptrdiff_t(at), x);
        expanded.insert(expanded.begin() + std::ptrdiff_t(at), std::uint8_t{0});
        if (at <= after) {  // the next node to expand: fetch its links now
          after = at;
          if (layer == 0) store_.prefetch_links(s);
        }
      });
      next = after;
      while (next < pool.size() && expanded[next]) ++next;
    }
  }

  template <class Scorer, class Returnable>
  void beam_heaps(const Scorer& score, candidate start, std::size_t ef, std::size_t layer,
                  const Returnable& returnable, scratch& sc) const {
    const std::size_t known = store_.capacity();
    sc.visited.reset(known);
    auto& frontier = sc.frontier;
    auto& best = sc.best;
    frontier.clear();
    best.clear();
    sc.visited.test_and_set(start.slot);
    frontier.push_back(start);
    float worst = std::numeric_limits<float>::infinity();
    auto offer = [&](candidate c) {
      frontier.push_back(c);
      std::push_heap(frontier.begin(), frontier.end(), std::greater<>{});
      // The closest unexpanded node is likely the next one expanded: fetch its links now.
      if (layer == 0 && frontier.front().slot == c.slot) store_.prefetch_links(c.slot);
      if (!returnable(c.slot)) return;
      best.push_back(c);
      std::push_heap(best.begin(), best.end());
      if (best.size() > ef) {
        std::pop_heap(best.begin(), best.end());
        best.pop_back();
      }
      if (best.size() == ef) worst = best.front().distance;
    };
    if (returnable(start.slot)) {
      best.push_back(start);
      if (best.size() == ef) worst = start.distance;
    }
    std::size_t ties = 0;
    while (!frontier.empty()) {
      std::pop_heap(frontier.begin(), frontier.end(), std::greater<>{});
      const candidate c = frontier.back();
      frontier.pop_back();
      if (c.distance > worst) break;
      // Ties with the worst are still expanded (copies of one vector share a
      // distance, and their links are the way out of the group), but at most
      // ef of them besides the worst entry itself (so a beam of ef = 1 keeps
      // walking while it improves): a group of thousands of copies is not
      // walked to its end.
      if (c.distance == worst && best.size() == ef && best.front().slot != c.slot && ++ties > ef) break;
      if (layer == 0 && !frontier.empty()) store_.prefetch_links(frontier.front().slot);
      score_neighbours(score, c.slot, layer, known, sc, [&](float d, slot_t s) {
        if (d < worst) offer({d, s});
      });
    }
    std::sort_heap(best.begin(), best.end());
  }

  // Scores the neighbours of `node` on `layer` not visited yet (marking
  // them visited; slots from `known` on were added after the search began)
  // and hands each to take(distance, slot), in link order. Every fetch
  // starts first; the hardware streams the rest of each record once its
  // first lines arrive, and the next neighbour is fetched whole while the
  // current one is scored.
  template <class Scorer, class Take>
  void score_neighbours(const Scorer& score, slot_t node, std::size_t layer, std::size_t known, scratch& sc,
                        const Take& take) const {
    const link_list l = store_.links(node, layer);
    sc.fresh.clear();
    for (std::uint32_t i = 0, n = l.size(); i < n; ++i) {
      const slot_t s = l[i];
      if (s < known && !sc.visited.test_and_set(s)) sc.fresh.push_back(s);
    }
    for (const slot_t s : sc.fresh) score.prefetch(s, 1);
    const std::size_t lines = score.lines();
    for (std::size_t j = 0; j < sc.fresh.size(); ++j) {
      if (j + 1 < sc.fresh.size()) score.prefetch(sc.fresh[j + 1], lines);
      const slot_t s = sc.fresh[j];
      take(score(s), s);
    }
  }

 public:
  /// The heuristic of the paper (its Algorithm 4 without extensions): walk
  /// `pool` (sorted, closest first) and keep a candidate only if it is closer
  /// to the base than to every candidate already kept, up to `max` of them.
  /// This keeps links pointing in different directions, which is what lets
  /// greedy search leave a cluster. With alpha > 1 (DiskANN's relaxation) a
  /// candidate is dropped only when a kept one is closer to it than its
  /// distance to the base divided by alpha: more of the longer links stay,
  /// and a search needs fewer hops (design.md, "alpha").
  ///
  /// Exact copies of the base's vector are at distance 0 from it and from
  /// each other, so the rule above keeps every one of them: with many copies
  /// a node would link to nothing else, and every copy to the same lowest
  /// slots, a clique with no way out. So copies of the base take at most
  /// max_copies(max) links: the lowest slot among them (the group's hub:
  /// every copy links to it, and every outside node that reaches the group
  /// links to it too, since ties sort by slot, so its list gathers the
  /// group's ways out) and others chosen by a hash of the two slots (which
  /// keeps the group connected for searches that return many copies). The
  /// other candidates compete for the rest as usual. Copies of a vector other
  /// than the base need nothing: after the first, each is at distance 0 from
  /// a kept one and falls to the rule.
  void select(slot_t base, const std::vector<candidate>& pool, std::size_t max, scratch& sc) const {
    std::vector<candidate>& kept = sc.kept;
    kept.clear();
    const float* b = store_.vector(base);
    copies_of(base, pool, sc.copies);
    for (std::size_t i = 0; i < sc.copies.size() && kept.size() < max_copies(max); ++i) kept.push_back(sc.copies[i]);
    const std::size_t copies_kept = kept.size();
    const float self = self_distance(b);
    for (const candidate& c : pool) {
      if (kept.size() == max) break;
      const float* v = store_.vector(c.slot);
      if (c.distance == self && same_vector(v, b)) continue;  // a copy: handled above
      bool diverse = true;  // (a kept copy is as far from c as the base is: never closer)
      for (std::size_t k = copies_kept; k < kept.size(); ++k)
        if (prune_scale_ * Metric::distance(v, store_.vector(kept[k].slot), dim()) < c.distance) {
          diverse = false;
          break;
        }
      if (diverse) kept.push_back(c);
    }
  }

  /// What select() multiplies a candidate's distance to a kept neighbour by:
  /// alpha^2 under l2 and cosine, whose distances are squared lengths
  /// (1 - cos = |a - b|^2 / 2 for unit vectors), so alpha scales lengths as
  /// in DiskANN; 1 under inner product, whose distances can be negative.
  static float prune_scale(double alpha) {
    return Metric::kind == metric_kind::inner_product ? 1.f : static_cast<float>(alpha * alpha);
  }

  /// Links to exact copies of its own vector a node keeps at most.
  static std::size_t max_copies(std::size_t max) { return std::max<std::size_t>(2, max / 8); }

  /// Whether two vectors are the same, bit for bit.
  bool same_vector(const float* a, const float* b) const {
    return std::memcmp(a, b, dim() * sizeof(float)) == 0;
  }
  /// A vector's distance to itself: what every exact copy of it scores.
  float self_distance(const float* v) const { return Metric::distance(v, v, dim()); }

  /// The entries of `pool` that hold base's own vector: the lowest slot
  /// first, then the others in an order that differs from base to base (a
  /// hash of the two slots).
  void copies_of(slot_t base, const std::vector<candidate>& pool, std::vector<candidate>& out) const {
    out.clear();
    const float* b = store_.vector(base);
    const float self = self_distance(b);
    for (const candidate& c : pool)
      if (c.distance == self && c.slot != base && same_vector(store_.vector(c.slot), b)) out.push_back(c);
    if (out.size() < 3) return;
    const auto lowest = std::min_element(out.begin(), out.end(), [](const candidate& x, const candidate& y) { return x.slot < y.slot; });
    std::iter_swap(out.begin(), lowest);
    auto spread = [base](const candidate& c) { return mix64((std::uint64_t{base} << 32) | c.slot); };
    std::sort(out.begin() + 1, out.end(), [&](const candidate& x, const candidate& y) { return spread(x) < spread(y); });
  }

  /// A new node's beam can come back full of exact copies of one vector
  /// (its own, or a neighbour's duplicated thousands of times): a group of
  /// copies fills the beam at one distance and leaves room for few other
  /// candidates. When fewer than m distinct vectors remain, the links of each
  /// group's hub (its first entry: the lowest slot, which gathers the
  /// group's ways out, see select) join the pool.
  void widen_pool_past_copies(slot_t s, std::size_t layer, scratch& sc) const {
    // Copies sit next to each other in the sorted pool (same distance, then
    // slot): an entry equal to an earlier one of its run of equal distances
    // is a copy, and the run's first entry is a hub.
    std::vector<candidate>& hubs = sc.copies;
    hubs.clear();
    std::size_t redundant = 0;
    for (std::size_t i = 1, run = 0; i < sc.pool.size(); ++i) {
      if (sc.pool[i].distance != sc.pool[i - 1].distance) {
        run = i;
        continue;
      }
      const float* v = store_.vector(sc.pool[i].slot);
      for (std::size_t j = run; j < i; ++j)
        if (same_vector(v, store_.vector(sc.pool[j].slot))) {
          ++redundant;
          if (hubs.empty() || hubs.back().slot != sc.pool[j].slot) hubs.push_back(sc.pool[j]);
          break;
        }
    }
    if (sc.pool.size() - redundant >= store_.m()) return;
    const float* v = store_.vector(s);
    const std::size_t known = store_.capacity();
    for (std::size_t h = 0; h < hubs.size() && h < hubs_to_borrow; ++h) {
      const link_list l = store_.links(hubs[h].slot, layer);
      for (std::uint32_t j = 0, n = l.size(); j < n; ++j) {
        const slot_t x = l[j];
        if (x == s || x >= known) continue;
        if (std::any_of(sc.pool.begin(), sc.pool.end(), [x](const candidate& c) { return c.slot == x; })) continue;
        sc.pool.push_back({distance(v, x), x});
      }
    }
    std::sort(sc.pool.begin(), sc.pool.end());
  }
  static constexpr std::size_t hubs_to_borrow = 8;

  /// Layer 0 of slots [0, slots), walked breadth first from the entry point
  /// over layer-0 links, plus the out-degree distribution (a histogram of
  /// 2m + 1 counts) and the links that name tombstones. O(slots 2m) link
  /// reads; scratch: a queue of up to `slots` slots and a visited bitmap,
  /// nothing per node. The caller keeps writers out (hnsw_index holds its
  /// writer lock); searches may run. Links beyond `slots` (a view's are not
  /// checked at open) are skipped. Throws std::bad_alloc.
  layer0_survey survey(std::size_t slots) const {
    layer0_survey out;
    std::vector<std::size_t> degrees(2 * store_.m() + 1, 0);
    std::size_t degree_sum = 0;
    for (std::size_t s = 0; s < slots; ++s) {
      const node_state st = store_.state(slot_t(s));
      if (st == node_state::empty) continue;
      const link_list l = store_.links(slot_t(s), 0);
      const std::uint32_t n = l.size();
      out.links += n;
      for (std::uint32_t i = 0; i < n; ++i) {
        const slot_t t = l[i];
        out.links_to_tombstones += t < slots && store_.state(t) == node_state::deleted;
      }
      if (st != node_state::live) continue;
      ++out.live;
      ++degrees[std::min<std::size_t>(n, degrees.size() - 1)];
      degree_sum += n;
    }
    if (out.live > 0) {
      out.degree_mean = double(degree_sum) / double(out.live);
      // The median from the histogram: the values at ranks (live - 1) / 2 and live / 2.
      const auto at_rank = [&](std::size_t rank) {
        std::size_t seen = 0, d = 0;
        for (; d < degrees.size(); ++d)
          if ((seen += degrees[d]) > rank) break;
        return d;
      };
      out.degree_median = 0.5 * double(at_rank((out.live - 1) / 2) + at_rank(out.live / 2));
      out.degree_min = at_rank(0);
      out.degree_max = at_rank(out.live - 1);
    }
    const std::uint64_t e = entry();
    if (e != no_entry && entry_slot(e) < slots) out.entry_level = entry_level(e);
    const std::vector<slot_t> reached = breadth_first(slots);
    out.reached = reached.size();
    std::vector<bool> seen(slots, false);
    for (const slot_t s : reached) seen[s] = true;
    for (std::size_t s = 0; s < slots; ++s) {
      const node_state st = store_.state(slot_t(s));
      if (st == node_state::empty || seen[s]) continue;
      ++out.unreachable;
      out.unreachable_live += st == node_state::live;
    }
    return out;
  }

  /// The slots in use among [0, slots) (live or tombstones) that a walk over
  /// layer-0 links from the entry point reaches, in breadth-first order.
  /// Links beyond `slots` are skipped. Caller as survey(). Throws std::bad_alloc.
  std::vector<slot_t> breadth_first(std::size_t slots) const {
    std::vector<slot_t> queue;
    const std::uint64_t e = entry();
    if (e == no_entry || entry_slot(e) >= slots) return queue;
    std::vector<std::uint64_t> visited((slots + 63) / 64, 0);
    queue.reserve(slots);
    const auto visit = [&](slot_t s) {
      std::uint64_t& word = visited[s / 64];
      const std::uint64_t bit = std::uint64_t{1} << (s % 64);
      if (word & bit) return;
      word |= bit;
      queue.push_back(s);
    };
    visit(entry_slot(e));
    for (std::size_t head = 0; head < queue.size(); ++head) {
      const link_list l = store_.links(queue[head], 0);
      for (std::uint32_t i = 0, n = l.size(); i < n; ++i)
        if (l[i] < slots && store_.state(l[i]) != node_state::empty) visit(l[i]);
    }
    return queue;
  }

  /// The live slots among [0, slots) in the order hnsw_index::reorder lays
  /// them out: breadth first over layer 0 from the entry point (so the
  /// entry region comes first and a node's neighbours sit near it), then
  /// any live node no walk reaches, in slot order. Caller as survey().
  /// Throws std::bad_alloc.
  std::vector<slot_t> locality_order(std::size_t slots) const {
    std::vector<slot_t> order = breadth_first(slots);
    std::vector<bool> placed(slots, false);
    for (const slot_t s : order) placed[s] = true;
    for (std::size_t s = 0; s < slots; ++s)
      if (!placed[s] && store_.state(slot_t(s)) != node_state::empty) order.push_back(slot_t(s));
    std::erase_if(order, [&](slot_t s) { return store_.state(s) != node_state::live; });
    return order;
  }

  /// Gives `sc` room for everything insert, connect and repair put in it
  /// while the store keeps its capacity, so that they allocate nothing
  /// (hnsw_index allocates before its first change, then links). Their
  /// beams return every node (any_node), so they keep one sorted array of
  /// ef_construction and need no frontier. Throws std::bad_alloc.
  void reserve_scratch(scratch& sc) const {
    const std::size_t known = store_.capacity(), m = store_.m();
    sc.visited.reset(known);
    sc.best.reserve(ef_construction_ + 1);
    sc.expanded.reserve(ef_construction_ + 1);
    sc.fresh.reserve(2 * m);
    // pool: a beam's best, widened by up to hubs_to_borrow hubs' layer-0
    // lists (insert); a full list plus one (connect); a list and the hole's
    // layer-0 neighbours (repair).
    const std::size_t pool = std::max(ef_construction_ + hubs_to_borrow * 2 * m, 4 * m + 1);
    sc.pool.reserve(pool);
    sc.copies.reserve(pool);
    sc.kept.reserve(2 * m);
    sc.linked.reserve(2 * m + max_level * m);
    sc.linked_end.reserve(max_level + 1);
  }

  /// Links slot s (vector, header and upper lists written; not yet linked)
  /// into the graph at every layer up to its level.
  void insert(slot_t s, scratch& sc) {
    const std::size_t level = store_.header(s).level;
    std::uint64_t e = entry();
    if (e == no_entry) {
      std::lock_guard lock(entry_->mutex);
      e = entry();
      if (e == no_entry) {
        entry_->packed.store(pack(s, level), std::memory_order_release);
        return;
      }
    }
    const float* v = store_.vector(s);
    const std::size_t known = store_.capacity();
    const std::size_t top = entry_level(e);
    candidate cur{distance(v, entry_slot(e)), entry_slot(e)};
    for (std::size_t layer = top; layer > level; --layer) cur = greedy(v, cur, layer, known);
    // Own lists first, on every layer, then the links back: whoever reaches s
    // through a link back then finds it linked all the way down to layer 0.
    // An exact copy of a vector already on its top layer lives on layer 0
    // only: the upper layers keep one node per distinct vector, so neither
    // the entry point nor a descent ends inside a group of copies (where a
    // beam would fill with copies and stop).
    sc.linked.clear();
    sc.linked_end.clear();
    std::size_t level_used = level;
    for (std::size_t layer = std::min(level, top) + 1; layer-- > 0;) {
      beam(v, cur, ef_construction_, layer, any_node{}, sc);
      sc.pool.clear();
      for (const candidate& c : sc.best)
        if (c.slot != s) sc.pool.push_back(c);
      if (layer > 0 && layer == std::min(level, top) && !sc.pool.empty()) {
        copies_of(s, sc.pool, sc.copies);
        if (!sc.copies.empty()) {
          level_used = 0;
          store_.header(s).level = 0;  // s is not linked anywhere yet: nobody reads it
        }
      }
      if (layer > level_used) {  // a copy's upper layers: descend only
        if (!sc.pool.empty()) cur = sc.pool.front();
        sc.linked_end.push_back(sc.linked.size());
        continue;
      }
      if (!sc.pool.empty()) {
        cur = sc.pool.front();
        widen_pool_past_copies(s, layer, sc);
        select(s, sc.pool, store_.m(), sc);
        node_lock lock(store_.header(s));
        store_.links(s, layer).assign(sc.kept, &candidate::slot);
      } else {
        sc.kept.clear();
      }
      for (const candidate& c : sc.kept) sc.linked.push_back(c.slot);
      sc.linked_end.push_back(sc.linked.size());
    }
    for (std::size_t i = 0, begin = 0; i < sc.linked_end.size(); begin = sc.linked_end[i++]) {
      const std::size_t layer = sc.linked_end.size() - 1 - i;
      for (std::size_t j = begin; j < sc.linked_end[i]; ++j) connect(sc.linked[j], s, layer, sc);
    }
    if (level_used > top) {
      std::lock_guard lock(entry_->mutex);
      if (level_used > entry_level(entry())) entry_->packed.store(pack(s, level_used), std::memory_order_release);
    }
  }

  /// Adds a link from `from` to `to` on `layer`; a full list is re-selected
  /// with the heuristic over its links plus the new one.
  void connect(slot_t from, slot_t to, std::size_t layer, scratch& sc) {
    node_lock lock(store_.header(from));
    const link_list l = store_.links(from, layer);
    if (l.contains(to)) return;
    if (l.size() < l.max) {
      l.push_back(to);
      return;
    }
    const float* v = store_.vector(from);
    sc.pool.clear();
    for (std::uint32_t i = 0, n = l.size(); i < n; ++i) sc.pool.push_back({distance(v, l[i]), l[i]});
    sc.pool.push_back({distance(v, to), to});
    std::sort(sc.pool.begin(), sc.pool.end());
    select(from, sc.pool, l.max, sc);
    l.assign(sc.kept, &candidate::slot);
  }

  /// The links slot s keeps on `layer` once the nodes `gone` names leave
  /// the graph (compaction), into `out` (old slots): its list as it is when
  /// it names none of them; else re-selected by the heuristic among its other
  /// links and the links of the gone ones it named (and, when those give
  /// fewer than a full list, of the gone ones they named), the nearest
  /// ef_construction of them, and topped up to a full list with the nearest
  /// the heuristic passed over: s lost in-links with the gone nodes, and a
  /// short list would lose it more. The relinking of FreshDiskANN's delete
  /// consolidation, rather than a new search per node. Reads only: safe
  /// beside searches.
  template <class Gone>
  void relinked(slot_t s, std::size_t layer, const Gone& gone, scratch& sc, std::vector<slot_t>& out) const {
    out.clear();
    const link_list l = store_.links(s, layer);
    bool names_gone = false;
    for (std::uint32_t i = 0, n = l.size(); i < n; ++i) {
      if (gone(l[i])) names_gone = true;
      else out.push_back(l[i]);
    }
    if (!names_gone) return;
    // sc.fresh: the gone nodes to expand; sc.linked: every candidate slot.
    sc.fresh.clear();
    sc.linked.clear();
    auto consider = [&](slot_t x) {
      if (x == s) return;
      if (gone(x)) sc.fresh.push_back(x);
      else sc.linked.push_back(x);
    };
    for (std::uint32_t i = 0, n = l.size(); i < n; ++i) consider(l[i]);
    for (std::size_t hop = 0, from = 0; hop < 2 && (hop == 0 || sc.linked.size() < l.max); ++hop) {
      const std::size_t to = sc.fresh.size();
      for (std::size_t i = from; i < to; ++i) {
        const link_list g = store_.links(sc.fresh[i], layer);
        for (std::uint32_t j = 0, n = g.size(); j < n; ++j) consider(g[j]);
      }
      from = to;
    }
    std::sort(sc.linked.begin(), sc.linked.end());
    sc.linked.erase(std::unique(sc.linked.begin(), sc.linked.end()), sc.linked.end());
    const float* v = store_.vector(s);
    sc.pool.clear();
    for (const slot_t x : sc.linked) sc.pool.push_back({distance(v, x), x});
    std::sort(sc.pool.begin(), sc.pool.end());
    if (sc.pool.size() > ef_construction_) sc.pool.resize(ef_construction_);
    select(s, sc.pool, l.max, sc);
    out.clear();
    for (const candidate& c : sc.kept) out.push_back(c.slot);
    for (std::size_t i = 0; i < sc.pool.size() && out.size() < l.max; ++i)
      if (std::find(out.begin(), out.end(), sc.pool[i].slot) == out.end()) out.push_back(sc.pool[i].slot);
  }

  /// Links every live node among slots [0, slots) that no walk over layer-0
  /// links from the entry point reaches (after compaction: nodes that only
  /// removed ones linked to) from its nearest reachable nodes, as an insert
  /// would (connect); where the heuristic drops it everywhere, in place of
  /// the nearest one's farthest link. Returns how many it linked. For a
  /// graph no search or writer uses yet. Throws std::bad_alloc.
  std::size_t link_unreachable(std::size_t slots, scratch& sc) {
    const std::uint64_t e = entry();
    if (e == no_entry) return 0;
    std::vector<char> seen(slots, 0);
    std::vector<slot_t> queue;
    auto walk = [&](slot_t from) {
      seen[from] = 1;
      queue.assign(1, from);
      while (!queue.empty()) {
        const link_list l = store_.links(queue.back(), 0);
        queue.pop_back();
        for (std::uint32_t i = 0, n = l.size(); i < n; ++i)
          if (!seen[l[i]]) {
            seen[l[i]] = 1;
            queue.push_back(l[i]);
          }
      }
    };
    walk(entry_slot(e));
    std::size_t linked = 0;
    std::vector<candidate> near;
    std::vector<slot_t> list;
    for (std::size_t u = 0; u < slots; ++u) {
      if (seen[u] || store_.state(slot_t(u)) != node_state::live) continue;
      const float* v = store_.vector(slot_t(u));
      beam(v, descend(v, 0, store_.capacity()), ef_construction_, 0, any_node{}, sc);
      near.assign(sc.best.begin(), sc.best.begin() + std::ptrdiff_t(std::min(sc.best.size(), store_.m())));
      bool named = false;
      for (const candidate& c : near) {
        connect(c.slot, slot_t(u), 0, sc);
        named = named || store_.links(c.slot, 0).contains(slot_t(u));
      }
      if (!named && !near.empty()) {
        const link_list l = store_.links(near.front().slot, 0);
        list.clear();
        for (std::uint32_t i = 0, n = l.size(); i < n; ++i) list.push_back(l[i]);
        if (list.size() < l.max) list.push_back(slot_t(u));
        else list.back() = slot_t(u);
        l.assign(list);
      }
      walk(slot_t(u));
      ++linked;
    }
    return linked;
  }

  /// After slot `hole` lost its vector: each former neighbour that linked to
  /// it drops the link and re-selects among its other links and the hole's
  /// former neighbours. Nodes that linked to the hole without being its
  /// neighbours keep a link to whatever the slot holds next: a long edge,
  /// harmless to correctness, slightly wasteful after heavy churn.
  void repair(slot_t hole, std::size_t layer, const std::vector<slot_t>& former, scratch& sc) {
    for (const slot_t u : former) {
      node_lock lock(store_.header(u));
      const link_list l = store_.links(u, layer);
      if (!l.contains(hole)) continue;
      const float* v = store_.vector(u);
      sc.pool.clear();
      auto add = [&](slot_t x) {
        if (x == u || x == hole) return;
        for (const candidate& c : sc.pool)
          if (c.slot == x) return;
        sc.pool.push_back({distance(v, x), x});
      };
      for (std::uint32_t i = 0, n = l.size(); i < n; ++i) add(l[i]);
      for (const slot_t x : former) add(x);
      std::sort(sc.pool.begin(), sc.pool.end());
      select(u, sc.pool, l.max, sc);
      l.assign(sc.kept, &candidate::slot);
    }
  }

 private:
  struct entry_point {
    std::atomic<std::uint64_t> packed{no_entry};
    std::mutex mutex;  // taken only to set the first entry or raise the top level
  };

  node_store store_;
  std::size_t ef_construction_;
  std::uint64_t seed_;
  double level_scale_;
  float prune_scale_;
  std::unique_ptr<entry_point> entry_;
};

}  // namespace annulus::hnsw_detail
