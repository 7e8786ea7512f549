// Where hnsw_index keeps its nodes: one fixed-size record per slot holding the
// layer-0 links, the vector and a small header, so expanding a node and
// scoring it touch one contiguous block.
//
//   offset 0    node_header (24 bytes): layer-0 link count, level, lock byte,
//               state (empty / live / deleted), label, pointer to the
//               upper-layer links (read by searches; not an owner)
//   offset 24   2m layer-0 links (32-bit slots)
//   offset C    the node's code (code_bytes bytes, none unless the index
//               walks codes: hnsw_sq8_index, whose l2 records add a float
//               after the code's dim bytes where it fits the code's last
//               cache line, in files written since), C = the header and links
//               rounded up to 64 bytes so a code starts on a cache line
//   offset V    the vector (dim floats), V = C + code_bytes rounded up to 64
//   record      V + dim floats, rounded up to 64 bytes
//
// Records live in segments that never move (segment 0 holds the first
// `first` slots, segment b >= 1 holds first * 2^(b-1)), so the store grows
// while searches read it. Segments are large_blocks: huge-page backed on
// Linux, zero-filled, touched only when written.
//
// Upper-layer links live in one block per node that reaches layer 1, owned
// by the store: each segment has a unique_ptr per slot beside its records
// (8 bytes a slot), which only writers touch; the header keeps a plain
// pointer to the block, so a search reads upper links as before.
//
// A view (hnsw_index::view) serves records in place from a read-only file
// mapping: segment 0 is the mapped record block, and upper-layer links are
// found through an offset table into the mapped links (the headers' pointers
// are zero in a file). Nothing writes a viewed store.
//
// Concurrency: link counts and link entries are read and written through
// std::atomic_ref (acquire/release: plain moves on x86), so a search may
// read a list while an insert rewrites it and always sees valid slots. The
// per-node lock byte serialises writers of one node's lists.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/labels.hpp"
#include "annulus/core/large_block.hpp"
#include "annulus/core/prefetch.hpp"

namespace annulus::hnsw_detail {

/// What a slot holds. Zero-filled memory reads as `empty`.
enum node_state : std::uint8_t { empty = 0, live = 1, deleted = 2 };

struct node_header {
  std::uint32_t count;    // layer-0 links in use
  std::uint8_t level;     // highest layer the node is on
  std::uint8_t lock;      // spinlock over this node's link lists
  std::uint8_t state;     // node_state, through atomic_ref; deleted nodes route but are never returned
  std::uint8_t reserved;
  label_t label;          // copy of the label map's entry, readable by searches without a lock
  std::uint32_t* upper;   // layers 1..level, (1 + m) words each: count, then m links;
                          // the block is owned by the node_store
};
static_assert(sizeof(node_header) == 24);

/// One node's links on one layer.
struct link_list {
  std::uint32_t* count;
  std::uint32_t* ids;
  std::size_t max;  // room for this many links

  std::uint32_t size() const {
    return std::min<std::uint32_t>(std::atomic_ref(*count).load(std::memory_order_acquire),
                                   static_cast<std::uint32_t>(max));
  }
  slot_t operator[](std::size_t i) const {
    return std::atomic_ref(ids[i]).load(std::memory_order_acquire);
  }
  /// Writer side (under the node's lock): the new list, slot_of(x) for each
  /// x of `items`, published entry by entry.
  template <class Range, class Projection = std::identity>
  void assign(const Range& items, Projection slot_of = {}) const {
    std::uint32_t n = 0;
    for (const auto& x : items)
      std::atomic_ref(ids[n++]).store(slot_t(std::invoke(slot_of, x)), std::memory_order_release);
    std::atomic_ref(*count).store(n, std::memory_order_release);
  }
  void push_back(slot_t s) const {
    const std::uint32_t n = std::atomic_ref(*count).load(std::memory_order_relaxed);
    std::atomic_ref(ids[n]).store(s, std::memory_order_release);
    std::atomic_ref(*count).store(n + 1, std::memory_order_release);
  }
  bool contains(slot_t s) const {
    for (std::uint32_t i = 0, n = size(); i < n; ++i)
      if ((*this)[i] == s) return true;
    return false;
  }
};

class node_store {
 public:
  using upper_block = std::unique_ptr<std::uint32_t[]>;

  node_store(std::size_t dim, std::size_t m, std::size_t code_bytes = 0)
      : dim_(dim), m_(m), code_bytes_(code_bytes),
        code_offset_(round_up(sizeof(node_header) + 2 * m * sizeof(std::uint32_t), 64)),
        vector_offset_(code_offset_ + round_up(code_bytes, 64)),
        stride_(vector_offset_ + round_up(dim * sizeof(float), 64)),
        segments_(std::make_unique<segment_table>()) {}

  std::size_t dim() const { return dim_; }
  std::size_t m() const { return m_; }
  std::size_t stride() const { return stride_; }
  /// Slots with room allocated; may grow while a search runs.
  std::size_t capacity() const { return segments_->capacity.load(std::memory_order_acquire); }
  /// Bytes allocated: node records, their block owners, upper-layer links.
  std::size_t bytes() const {
    return capacity() * (stride_ + sizeof(upper_block)) +
           segments_->upper_words.load(std::memory_order_relaxed) * sizeof(std::uint32_t);
  }

  /// Makes room for slots [0, n). Writer only. Throws std::bad_alloc, leaving
  /// the store as it was; read_only_error on a view.
  void reserve(std::size_t n) {
    segment_table& t = *segments_;
    if (viewed()) throw read_only_error("hnsw_index: a view of a file cannot grow");
    std::size_t cap = capacity();
    if (n <= cap) return;
    if (cap == 0) {
      t.first = std::max<std::size_t>(n, min_first_segment);
      install(0, t.first);
      return;
    }
    for (std::size_t b = std::bit_width(cap / t.first); capacity() < n; ++b)
      install(b, t.first << (b - 1));
  }

  std::byte* record(slot_t s) const {
    const segment_table& t = *segments_;
    if (s < t.first) return t.base0 + std::size_t{s} * stride_;  // every slot of a built index
    const auto [b, offset] = place(s);
    return t.base[b].load(std::memory_order_acquire) + offset * stride_;
  }
  node_header& header(slot_t s) const { return *reinterpret_cast<node_header*>(record(s)); }
  float* vector(slot_t s) const { return reinterpret_cast<float*>(record(s) + vector_offset_); }
  /// Slot s's code (code_bytes() bytes; none in a store without codes).
  std::uint8_t* code(slot_t s) const { return reinterpret_cast<std::uint8_t*>(record(s) + code_offset_); }
  std::size_t code_bytes() const { return code_bytes_; }

  node_state state(slot_t s) const {
    return node_state(std::atomic_ref(header(s).state).load(std::memory_order_acquire));
  }
  void set_state(slot_t s, node_state v) const {
    std::atomic_ref(header(s).state).store(v, std::memory_order_release);
  }

  link_list links(slot_t s, std::size_t layer) const {
    node_header& h = header(s);
    if (layer == 0)
      return {&h.count, reinterpret_cast<std::uint32_t*>(record(s) + sizeof(node_header)), 2 * m_};
    std::uint32_t* block = (viewed_ ? view_upper_ + view_at_[s] : h.upper) + (layer - 1) * (m_ + 1);
    return {block, block + 1, m_};
  }
  /// Slot s's top layer (a view reads it from the checked levels section,
  /// not from the unchecked record).
  std::size_t level(slot_t s) const { return viewed_ ? view_levels_[s] : header(s).level; }
  /// Whether the records are a read-only view of a file.
  bool viewed() const { return viewed_; }
  /// Words of upper-layer links a node of `level` needs.
  std::size_t upper_words(std::size_t level) const { return level * (m_ + 1); }

  /// Zeroed upper-layer links for a node of `level` (none for level 0).
  /// Throws std::bad_alloc.
  upper_block new_upper(std::size_t level) const {
    return level == 0 ? upper_block{} : std::make_unique<std::uint32_t[]>(upper_words(level));
  }
  /// Writer side, for a fresh slot s (never given a block) that no list
  /// names yet: s's header points to `block`, from new_upper(level), which
  /// the store keeps until it is destroyed (a reused slot keeps its block).
  /// Safe from several writers at once on distinct slots.
  void adopt_upper(slot_t s, std::size_t level, upper_block block) noexcept {
    header(s).upper = block.get();
    owner_of(s) = std::move(block);
    segments_->upper_words.fetch_add(upper_words(level), std::memory_order_relaxed);
  }

  // ---- saved form (hnsw_index's file): records byte for byte, except the
  // header's lock (0) and upper pointer (0); upper links concatenated in
  // slot order, level x (1 + m) words a node ----

  /// Slot s's record as a file holds it, into `out` (stride() bytes).
  void saved_record(slot_t s, std::byte* out) const {
    std::memcpy(out, record(s), stride_);
    node_header h;
    std::memcpy(&h, out, sizeof h);
    h.lock = 0;
    h.upper = nullptr;
    std::memcpy(out, &h, sizeof h);
  }
  /// Slot s's upper-layer links as saved: `level` x (1 + m) words.
  std::span<const std::uint32_t> upper_links(slot_t s, std::size_t level) const {
    return {level == 0 ? nullptr : links(s, 1).count, upper_words(level)};
  }

  /// On an empty store: slots [0, n) from saved records (n x stride()
  /// bytes, checked by the caller), each node of level > 0 given a copy of
  /// its upper links from `upper` (in slot order). Throws std::bad_alloc.
  void restore(std::span<const std::byte> records, std::size_t n, std::span<const std::uint8_t> levels,
               std::span<const std::uint32_t> upper) {
    reserve(n);
    if (n == 0) return;
    std::memcpy(segments_->base0, records.data(), n * stride_);
    std::vector<upper_block> blocks(n);
    for (std::size_t s = 0; s < n; ++s) blocks[s] = new_upper(levels[s]);  // all, before the first is adopted
    std::size_t at = 0;
    for (std::size_t s = 0; s < n; ++s) {
      if (levels[s] == 0) continue;
      const std::size_t words = upper_words(levels[s]);
      std::memcpy(blocks[s].get(), upper.data() + at, words * sizeof(std::uint32_t));
      at += words;
      adopt_upper(slot_t(s), levels[s], std::move(blocks[s]));
    }
  }

  /// A read-only store over saved records in place: n slots, their upper
  /// links in `upper` (in slot order, as `levels` says). The caller keeps
  /// the memory alive and checked every upper link. Throws std::bad_alloc.
  void view(std::span<const std::byte> records, std::size_t n, std::span<const std::uint8_t> levels,
            std::span<const std::uint32_t> upper) {
    std::vector<std::size_t> at(n + 1);
    for (std::size_t s = 0; s < n; ++s) at[s + 1] = at[s] + upper_words(levels[s]);
    view_at_ = std::move(at);
    view_upper_ = const_cast<std::uint32_t*>(upper.data());  // never written: nothing writes a view
    view_levels_ = levels;
    viewed_ = true;
    segment_table& t = *segments_;
    t.first = std::max<std::size_t>(n, 1);
    t.base0 = const_cast<std::byte*>(records.data());
    t.base[0].store(t.base0, std::memory_order_release);
    t.capacity.store(n, std::memory_order_release);
    t.upper_words.store(upper.size(), std::memory_order_relaxed);
  }

  /// Starts fetching the first `lines` cache lines of slot s's vector.
  void prefetch_vector(slot_t s, std::size_t lines) const {
    prefetch_lines(record(s) + vector_offset_, lines);
  }
  /// Starts fetching the first `lines` cache lines of slot s's code.
  void prefetch_code(slot_t s, std::size_t lines) const {
    prefetch_lines(record(s) + code_offset_, lines);
  }
  /// Starts fetching slot s's header and layer-0 links.
  void prefetch_links(slot_t s) const {
    prefetch_lines(record(s), lines_for(code_offset_));
  }
  /// Cache lines one vector spans.
  std::size_t vector_lines() const { return (stride_ - vector_offset_) / cache_line_bytes; }
  /// Cache lines one code spans.
  std::size_t code_lines() const { return (vector_offset_ - code_offset_) / cache_line_bytes; }

 private:
  static constexpr std::size_t min_first_segment = 64;
  static constexpr std::size_t max_segments = 40;  // first * 2^39 exceeds any 32-bit slot
  static constexpr std::size_t round_up(std::size_t x, std::size_t a) { return (x + a - 1) / a * a; }

  struct segment_table {
    std::size_t first = 0;        // slots in segment 0
    std::byte* base0 = nullptr;   // segment 0, read on every access without an atomic
    std::array<std::atomic<std::byte*>, max_segments> base{};
    std::array<large_block, max_segments> blocks;
    std::array<std::unique_ptr<upper_block[]>, max_segments> upper;  // writers only
    std::atomic<std::size_t> capacity{0};
    std::atomic<std::size_t> upper_words{0};  // held by the upper blocks
  };

  // (segment, index in it) of slot s; segment 0 holds the first `first` slots.
  std::pair<std::size_t, std::size_t> place(slot_t s) const {
    const std::size_t first = segments_->first;
    if (s < first) return {0, s};
    const std::size_t b = std::bit_width(std::size_t{s} / first);
    return {b, s - (first << (b - 1))};
  }
  upper_block& owner_of(slot_t s) const {
    const auto [b, offset] = place(s);
    return segments_->upper[b][offset];
  }

  void install(std::size_t b, std::size_t slots) {
    segment_table& t = *segments_;
    large_block records(sizes::product(slots, stride_, "hnsw node block"));
    auto owners = std::make_unique<upper_block[]>(slots);  // on a throw, nothing installed
    t.blocks[b] = std::move(records);
    t.upper[b] = std::move(owners);
    if (b == 0) t.base0 = t.blocks[0].data();
    t.base[b].store(t.blocks[b].data(), std::memory_order_release);
    t.capacity.store(t.capacity.load(std::memory_order_relaxed) + slots, std::memory_order_release);
  }

  std::size_t dim_, m_, code_bytes_, code_offset_, vector_offset_, stride_;
  std::unique_ptr<segment_table> segments_;
  // A view's upper links: the mapped words and, per slot, where its block starts.
  bool viewed_ = false;
  std::uint32_t* view_upper_ = nullptr;
  std::vector<std::size_t> view_at_;
  std::span<const std::uint8_t> view_levels_;
};

/// Spinlock over one node's lists: held for a few hundred ns while a list is
/// rewritten, so spinning beats sleeping; one byte a node.
class node_lock {
 public:
  explicit node_lock(node_header& h) : flag_(h.lock) {
    while (flag_.exchange(1, std::memory_order_acquire) != 0)
      while (flag_.load(std::memory_order_relaxed) != 0) std::this_thread::yield();
  }
  ~node_lock() { flag_.store(0, std::memory_order_release); }
  node_lock(const node_lock&) = delete;
  node_lock& operator=(const node_lock&) = delete;

 private:
  std::atomic_ref<std::uint8_t> flag_;
};

}  // namespace annulus::hnsw_detail
