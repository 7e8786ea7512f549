// lsh_index: locality-sensitive hashing with multi-probe. L tables each hash
// a vector by K random projections: under cosine and inner_product the signs
// (random-hyperplane SimHash: K bits), under l2 p-stable buckets (E2LSH:
// h = floor((a.v + b) / w) per projection, K of them combined into one key).
// A query looks in its own bucket of every table and in `probes` more per
// table (query-directed multi-probe, after Lv et al. 2007), then ranks the
// distinct vectors found exactly. A filter is tested before a candidate is
// scored or counted against max_candidates. When the probed buckets hold
// fewer than k vectors (that pass the filter), up to three rounds of more
// probes follow, then an exact scan of the rest, so k still come back.
//
//   auto idx = lsh_index<cosine>::build(data, {.tables = 16, .bits = 12});
//   auto hits = idx.search(query, 10, {.probes = 32});
//   idx.add(more);  // hashed into a small sorted side table per table
//   idx.remove(label);  idx.update(label, vector);  idx.get(label);
//
// The public calls (search forms, batch, range search, get, labels, k
// policy) come from index/base.hpp; this file is the hashing and probing.
//
// inner_product uses SimHash too, which estimates the angle, not the inner
// product: a long vector at a wider angle can beat a short one in the same
// bucket, so recall drops as norms spread. For maximum inner product,
// mips_index<lsh_index<l2>> (index/mips.hpp) augments the vectors so
// that inner products become l2 distances.
//
// Memory: the vectors (dim floats each), per table a 4-byte slot per vector
// plus per bucket an 8-byte key, a 4-byte offset and 8 bytes of hash map,
// and 16 bytes per entry added since the table's last merge; L*K hyperplanes
// of dim floats; the label map as flat_index; per searching thread, a
// scratch (core/scratch.hpp) of L*K projections, the candidates and a
// visited set of 2 bytes a slot. Removed vectors are tombstones
// (core/tombstones.hpp): never returned, their entries skipped; once they are
// an eighth of the slots, the next add drops their entries from every table
// and reuses their slots, so memory stays bounded under remove/add churn.
// An update moves the vector's entries to its new buckets: the old CSR entry
// is overwritten with a vacant mark (skipped by the slot bound a candidate
// is tested against anyway) until the next merge, the new one goes to the
// side array.
//
// Failure: every call either does all it says or throws and changes nothing
// (out of memory included).
//
// File (kind "lsh"): a record (tables, bits, seed, bucket width's bits); the
// L*K hyperplanes (dim floats each, table-major), under l2 the offsets (L*K
// floats) and key multipliers (L*K u64); per table 4 u64 (merged yet,
// buckets, CSR entries, side entries), then every table's bucket keys (u64),
// offsets (u32, buckets + 1 once merged), CSR entries (u32 slots) and side
// entries (u64 keys, u32 slots), table after table; the vectors in slot
// order (a view reads them in place); the slot directory and the
// tombstones. Each bucket map is rebuilt from the keys on load.
//
// Threads: build and add hash on `threads` workers; const calls (search,
// search_batch, get, ...) are safe from any number of threads at once; add,
// remove and update are not safe alongside anything else.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
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
#include "annulus/core/gemm.hpp"
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
#include "annulus/core/validate.hpp"
#include "annulus/core/visited.hpp"
#include "annulus/index/concepts.hpp"

namespace annulus {

namespace lsh_detail {

// One hash table: buckets in CSR form (built by rebuild), found through an
// open-addressing map from key to bucket, plus the adds since the last
// rebuild as a sorted (key, slot) array.
struct table {
  // A CSR entry whose vector moved (update): no slot reaches it, so a
  // search's slot bound skips it; the next rebuild or drop removes it.
  static constexpr slot_t vacant = slot_t(-1);

  std::vector<std::uint64_t> keys;     // bucket b's key
  std::vector<std::uint32_t> offsets;  // bucket b holds slots[offsets[b], offsets[b + 1])
  std::vector<slot_t> slots;
  std::vector<std::uint32_t> map;      // bucket + 1 (0 = empty), linear probing; a power of two
  std::vector<std::pair<std::uint64_t, slot_t>> pending;

  std::size_t entries() const { return slots.size() + pending.size(); }

  std::span<const slot_t> bucket(std::uint64_t key) const {
    if (map.empty()) return {};
    const std::size_t mask = map.size() - 1;
    for (std::size_t h = mix64(key) & mask;; h = (h + 1) & mask) {
      const std::uint32_t b = map[h];
      if (b == 0) return {};
      if (keys[b - 1] == key) return {slots.data() + offsets[b - 1], offsets[b] - offsets[b - 1]};
    }
  }

  // Rebuilds the CSR part from everything (CSR and pending entries).
  void rebuild() {
    std::vector<std::pair<std::uint64_t, slot_t>> all;
    all.reserve(entries());
    for (std::size_t b = 0; b < keys.size(); ++b)
      for (std::uint32_t i = offsets[b]; i < offsets[b + 1]; ++i)
        if (slots[i] != vacant) all.emplace_back(keys[b], slots[i]);
    all.insert(all.end(), pending.begin(), pending.end());
    std::sort(all.begin(), all.end());
    std::vector<std::uint64_t> new_keys;
    std::vector<std::uint32_t> new_offsets;
    std::vector<slot_t> new_slots(all.size());
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (i == 0 || all[i].first != all[i - 1].first) {
        new_keys.push_back(all[i].first);
        new_offsets.push_back(std::uint32_t(i));
      }
      new_slots[i] = all[i].second;
    }
    new_offsets.push_back(std::uint32_t(all.size()));
    std::vector<std::uint32_t> new_map = make_map(new_keys);
    keys.swap(new_keys);
    offsets.swap(new_offsets);
    slots.swap(new_slots);
    map.swap(new_map);
    pending.clear();
    pending.shrink_to_fit();
  }

  // The map of distinct `keys` (bucket b's key is keys[b]): at most half
  // full, so every probe sequence ends.
  static std::vector<std::uint32_t> make_map(std::span<const std::uint64_t> keys) {
    std::vector<std::uint32_t> map(std::bit_ceil(std::max<std::size_t>(2 * keys.size(), 16)), 0);
    const std::size_t mask = map.size() - 1;
    for (std::size_t b = 0; b < keys.size(); ++b) {
      std::size_t h = mix64(keys[b]) & mask;
      while (map[h] != 0) h = (h + 1) & mask;
      map[h] = std::uint32_t(b + 1);
    }
    return map;
  }

  // Drops the entries `gone` says, and vacant ones, in place (the buckets
  // keep their keys, maybe empty, until the next rebuild). Cannot throw.
  template <class Gone>
  void drop(const Gone& gone) noexcept {
    std::uint32_t kept = 0;
    for (std::size_t b = 0; b < keys.size(); ++b) {
      const std::uint32_t begin = offsets[b], end = offsets[b + 1];
      offsets[b] = kept;
      for (std::uint32_t i = begin; i < end; ++i)
        if (slots[i] != vacant && !gone(slots[i])) slots[kept++] = slots[i];
    }
    if (!offsets.empty()) offsets[keys.size()] = kept;
    slots.resize(kept);
    std::erase_if(pending, [&](const std::pair<std::uint64_t, slot_t>& e) { return gone(e.second); });
  }

  // Moves slot s's entry from bucket `from` to bucket `to` (pending has room
  // for one more). Cannot throw.
  void move(slot_t s, std::uint64_t from, std::uint64_t to) noexcept {
    if (from == to) return;
    const auto at = std::lower_bound(pending.begin(), pending.end(), std::pair(from, s));
    if (at != pending.end() && *at == std::pair(from, s)) {
      pending.erase(at);
    } else {
      const std::span<const slot_t> b = bucket(from);
      const std::size_t i = std::size_t(std::find(b.begin(), b.end(), s) - b.begin());
      if (i < b.size()) slots[std::size_t(b.data() - slots.data()) + i] = vacant;
    }
    pending.insert(std::lower_bound(pending.begin(), pending.end(), std::pair(to, s)), std::pair(to, s));
  }

  // Merges the side array into the CSR part once it holds more than
  // max(1024, 1/8 of the table). The merge builds the table anew and swaps
  // it in: out of memory, the entries just wait in the side array.
  void merge_if_due() noexcept {
    if (pending.size() > std::max<std::size_t>(1024, slots.size() / 8)) try {
        rebuild();
      } catch (const std::bad_alloc&) {
      }
  }

  std::size_t memory_bytes() const {
    return keys.capacity() * 8 + offsets.capacity() * 4 + slots.capacity() * sizeof(slot_t) + map.capacity() * 4 +
           pending.capacity() * sizeof(pending[0]);
  }
};

// A perturbation of one hash coordinate and what it costs (Lv et al.: the
// squared distance of the projection to the boundary it crosses).
struct perturbation {
  float cost;
  std::uint32_t coordinate;
  std::int32_t delta;  // E2LSH: -1 or +1; SimHash: flip
};

struct probe_set {
  float cost;
  std::uint64_t members;  // bits over the sorted perturbations
  std::uint32_t last;     // highest member
};
constexpr bool costlier(const probe_set& a, const probe_set& b) { return a.cost > b.cost; }

struct scratch {
  std::vector<float, aligned_allocator<float>> proj;  // L*K projections, padded
  std::vector<perturbation> perturbations;
  std::vector<probe_set> heap;
  std::vector<slot_t> candidates;
  visited_set visited;
};

}  // namespace lsh_detail

template <metric Metric>
class lsh_index : public index_base<lsh_index<Metric>, Metric> {
  using base = index_base<lsh_index<Metric>, Metric>;
  friend base;

 public:
  static constexpr std::string_view index_name = "lsh_index";
  static constexpr std::string_view file_kind = "lsh";
  static constexpr bool viewable = true;
  /// SimHash (sign bits) under cosine and inner_product, E2LSH under l2.
  static constexpr bool simhash = Metric::kind != metric_kind::l2;
  struct build_params {
    std::size_t tables = 16;  ///< L, hash tables, 1..4096
    std::size_t bits = 12;    ///< K, projections per table, 1..64
    /// E2LSH bucket width w (l2 only; ignored otherwise), > 0; 0 = from the
    /// first add: the w at which a vector shares its home bucket with about
    /// bucket_mates (128) others per table on average (exact duplicates
    /// aside), estimated on up to 2,048 of its rows
    /// (a first add of one row: that row's norm).
    float bucket_width = 0;
    std::uint64_t seed = default_seed;  ///< hyperplanes, offsets, key multipliers and the width sample
  };
  struct search_params {
    std::size_t probes = 0;          ///< buckets probed per table beyond the query's own
    std::size_t max_candidates = 0;  ///< stop collecting after this many distinct candidates; 0 = no cap
  };
  /// Bucket mates per table the automatic E2LSH width aims at (see bucket_width).
  static constexpr std::size_t bucket_mates = 128;

  /// Empty index for vectors of `dim` floats. Throws invalid_argument on dim
  /// 0, tables 0 or above 4096, bits 0 or above 64, or a negative or
  /// non-finite width.
  explicit lsh_index(std::size_t dim, const build_params& params = {}) : lsh_index(dim, params, unhashed{}) {
    random_generator rng(seed_, 0);
    matrix<float> planes(tables_ * bits_, dim_);
    for (std::size_t i = 0; i < planes.size(); ++i) planes.data()[i] = float(rng.normal());
    hyper_ = gemm::packed_matrix(planes.view());
    if constexpr (!simhash) {
      shift_.resize(tables_ * bits_);
      mult_.resize(tables_ * bits_);
      for (float& u : shift_) u = float(rng.uniform());
      for (std::uint64_t& m : mult_) m = rng() | 1;
    }
  }

  std::size_t dim() const { return dim_; }
  std::size_t size() const { return slots_.live(); }
  /// The E2LSH bucket width in use (0 under SimHash, or before the first add).
  float bucket_width() const { return width_; }

  /// Heap bytes: vectors, hyperplanes, tables, labels, tombstones.
  std::size_t memory_bytes() const {
    std::size_t bytes = vectors_.memory_bytes() + hyper_.memory_bytes() + shift_.capacity() * 4 +
                        mult_.capacity() * 8 + dead_.memory_bytes() + slots_.memory_bytes();
    for (const lsh_detail::table& t : tables_data_) bytes += sizeof(t) + t.memory_bytes();
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
  // The parameters checked and the tables made, without hash functions yet
  // (the public constructor draws them; load reads them).
  struct unhashed {};
  lsh_index(std::size_t dim, const build_params& params, unhashed)
      : dim_(dim), tables_(params.tables), bits_(params.bits), seed_(params.seed) {
    if (dim == 0) throw invalid_argument("lsh_index: dimension must be at least 1, got 0");
    if (params.tables == 0) throw invalid_argument("lsh_index: tables must be at least 1, got 0");
    if (params.tables > 4096)
      throw invalid_argument("lsh_index: tables must be at most 4096, got " + std::to_string(params.tables));
    if (params.bits == 0 || params.bits > 64)
      throw invalid_argument("lsh_index: bits must be in 1..64, got " + std::to_string(params.bits));
    if (!std::isfinite(params.bucket_width) || params.bucket_width < 0)
      throw invalid_argument("lsh_index: bucket_width must be finite and >= 0 (0 = from the data), got " +
                             std::to_string(params.bucket_width));
    width_ = params.bucket_width;
    tables_data_.resize(tables_);
  }

  static constexpr std::size_t max_perturbations = 64;  // cheapest ones a probe set draws from

  // Rows validated (base::add). Reuses removed vectors' slots once they are
  // reclaimed. The entries go to each table's sorted side array, merged into
  // the CSR buckets (one sort per table) once it holds more than max(1024,
  // 1/8 of the table). All-or-nothing.
  void add_validated(matrix_view<const float> data, std::span<const label_t> labels, std::size_t threads) {
    // Purging changes no answer and cannot throw.
    const std::vector<slot_t> slots =
        dead_.plan_add(slots_, vectors_, data.rows(), labels, dim_, "lsh_index::add", [&] { purge(); });
    if (slots.empty()) return;
    const std::size_t rows = data.rows();

    // Everything that allocates, before the first change.
    matrix<float> stored_rows(rows, dim_);
    store_rows<Metric>(data, stored_rows.view().data());
    const matrix_view<const float> stored = stored_rows.view();
    const float width = width_ != 0 || simhash ? width_ : pick_width(stored);

    // Keys of every new row in every table: projections block by block (GEMM).
    std::vector<std::uint64_t> keys(rows * tables_);
    constexpr std::size_t block = 256;
    const std::size_t blocks = (rows + block - 1) / block;
    const std::size_t lk = tables_ * bits_;
    parallel_for(blocks, threads, [&](std::size_t b, std::size_t) {
      const std::size_t first = b * block, n = std::min(block, rows - first);
      std::vector<float> proj(n * lk);
      gemm::inner_products(stored.rows_slice(first, n), hyper_, proj.data(), lk);
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t t = 0; t < tables_; ++t)
          keys[(first + i) * tables_ + t] = home_key(proj.data() + i * lk, t, width, nullptr);
    });
    for (lsh_detail::table& tb : tables_data_) tb.pending.reserve(tb.pending.size() + rows);
    slots_.commit(rows, labels);  // the last step that can throw

    // Cannot throw from here (std::inplace_merge does without its buffer if
    // it gets none).
    dead_.reuse(slots);
    for (std::size_t i = 0; i < rows; ++i)
      std::copy_n(stored.row_ptr(i), dim_, vectors_.data() + std::size_t(slots[i]) * dim_);
    width_ = width;
    parallel_for(tables_, threads, [&](std::size_t t, std::size_t) {
      lsh_detail::table& tb = tables_data_[t];
      const std::size_t before = tb.pending.size();
      for (std::size_t i = 0; i < rows; ++i) tb.pending.emplace_back(keys[i * tables_ + t], slots[i]);
      std::sort(tb.pending.begin() + std::ptrdiff_t(before), tb.pending.end());
      std::inplace_merge(tb.pending.begin(), tb.pending.begin() + std::ptrdiff_t(before), tb.pending.end());
      tb.merge_if_due();
    });
  }

  // A tombstone, skipped by searches, whose entries and slot a later add reclaims.
  void remove_label(label_t label) { dead_.remove(slots_, label, "lsh_index::remove"); }

  // The slot keeps its label; its entry moves, table by table, from the old
  // vector's bucket to the new one's. Everything that allocates (the stored
  // form, the projections, a side array's room) comes first.
  void update_validated(label_t label, std::span<const float> vector) {
    const slot_t s = slots_.slot_of(label, "lsh_index::update");
    std::vector<float> stored(dim_);
    store_rows<Metric>(matrix_view<const float>(vector.data(), 1, dim_), stored.data());
    std::vector<float, aligned_allocator<float>> proj(hyper_.padded_rows());
    std::vector<std::uint64_t> from(tables_), to(tables_);
    // one_row_products equals add's GEMM bit for bit: the keys the entries were filed under.
    gemm::one_row_products(vec(s), hyper_, proj.data());
    for (std::size_t t = 0; t < tables_; ++t) from[t] = home_key(proj.data(), t, width_, nullptr);
    gemm::one_row_products(stored.data(), hyper_, proj.data());
    for (std::size_t t = 0; t < tables_; ++t) to[t] = home_key(proj.data(), t, width_, nullptr);
    for (lsh_detail::table& tb : tables_data_) tb.pending.reserve(tb.pending.size() + 1);

    // Cannot throw from here.
    std::copy_n(stored.data(), dim_, vectors_.data() + std::size_t(s) * dim_);
    for (std::size_t t = 0; t < tables_; ++t) {
      tables_data_[t].move(s, from[t], to[t]);
      tables_data_[t].merge_if_due();
    }
  }

  const slot_directory& directory() const { return slots_; }
  void copy_vector(slot_t s, float* out) const { std::copy_n(vec(s), dim_, out); }

  // ---- saved form (see the file comment) ----

  static constexpr std::size_t table_words = 4;  // u64s a table in "lsh.tables"

  void save_sections(serial::writer& w) const {
    w.section("lsh", serial::record()
                         .set("tables", tables_)
                         .set("bits", bits_)
                         .set("seed", seed_)
                         .set("bucket_width", std::bit_cast<std::uint32_t>(width_)));
    w.begin("lsh.planes");
    std::vector<float> row(dim_);
    for (std::size_t i = 0; i < hyper_.rows(); ++i) {
      hyper_.row(i, row.data());
      w.append(std::span<const float>(row));
    }
    w.end();
    w.section("lsh.shift", std::span<const float>(shift_));
    w.section("lsh.mult", std::span<const std::uint64_t>(mult_));
    std::vector<std::uint64_t> shape;
    shape.reserve(tables_ * table_words);
    for (const lsh_detail::table& tb : tables_data_)
      shape.insert(shape.end(), {tb.offsets.empty() ? 0u : 1u, tb.keys.size(), tb.slots.size(), tb.pending.size()});
    w.section("lsh.tables", std::span<const std::uint64_t>(shape));
    w.begin("lsh.keys");
    for (const lsh_detail::table& tb : tables_data_) w.append(std::span<const std::uint64_t>(tb.keys));
    w.end();
    w.begin("lsh.offsets");
    for (const lsh_detail::table& tb : tables_data_) w.append(std::span<const std::uint32_t>(tb.offsets));
    w.end();
    w.begin("lsh.entries");
    for (const lsh_detail::table& tb : tables_data_) w.append(std::span<const slot_t>(tb.slots));
    w.end();
    w.begin("lsh.pending.keys");
    for (const lsh_detail::table& tb : tables_data_)
      for (const auto& e : tb.pending) w.append(std::span<const std::uint64_t>(&e.first, 1));
    w.end();
    w.begin("lsh.pending.slots");
    for (const lsh_detail::table& tb : tables_data_)
      for (const auto& e : tb.pending) w.append(std::span<const slot_t>(&e.second, 1));
    w.end();
    w.section("vectors", std::span<const float>(vectors_.data(), slots_.slots() * dim_));
    slots_.save(w);
    dead_.save(w);
  }

  // Every parameter is checked before anything is drawn or allocated, every
  // table against the directory: keys distinct and sorted, offsets rising
  // from 0 to the entries, entries naming slots that hold vectors or were
  // removed (never free ones) or vacant, side entries sorted.
  static lsh_index load_sections(serial::reader& r) {
    const auto rec = r.fields("lsh");
    build_params p;
    p.tables = rec.u64_in("tables", 1, 4096);
    p.bits = rec.u64_in("bits", 1, 64);
    p.seed = rec.u64("seed");
    p.bucket_width = std::bit_cast<float>(std::uint32_t(rec.u64_in("bucket_width", 0, 0xffffffffu)));
    if (!std::isfinite(p.bucket_width) || p.bucket_width < 0)
      r.fail("lsh", "bucket width " + std::to_string(p.bucket_width) + ", expected a finite width >= 0");
    const std::size_t dim = r.header().dim, lk = p.tables * p.bits;
    const auto planes = r.structure_array<float>("lsh.planes", r.product("lsh.planes", lk, dim));
    // Normal draws stay within +-8.6 (Box-Muller with u1 >= 2^-53): a larger
    // coordinate could make a projection overflow, and E2LSH turns
    // projections into integers.
    if (!std::all_of(planes.begin(), planes.end(), [](float x) { return std::fabs(x) <= 64.f; }))
      r.fail("lsh.planes", "a hyperplane coordinate is not finite or beyond +-64");
    const auto shift = r.structure_array<float>("lsh.shift", simhash ? 0 : lk);
    const auto mult = r.structure_array<std::uint64_t>("lsh.mult", simhash ? 0 : lk);
    if (!std::all_of(shift.begin(), shift.end(), [](float u) { return u >= 0 && u < 1; }))
      r.fail("lsh.shift", "an offset outside [0, 1)");
    if (!std::all_of(mult.begin(), mult.end(), [](std::uint64_t m) { return (m & 1) != 0; }))
      r.fail("lsh.mult", "an even key multiplier");

    lsh_index idx(dim, p, unhashed{});
    idx.hyper_ = gemm::packed_matrix(matrix_view<const float>(planes.data(), lk, dim));
    idx.shift_.assign(shift.begin(), shift.end());
    idx.mult_.assign(mult.begin(), mult.end());
    idx.slots_ = slot_directory::load(r);
    idx.dead_ = tombstones::load(r, idx.slots_);
    const std::size_t n = idx.slots_.slots();
    if (!simhash && n != 0 && !(p.bucket_width > 0))
      r.fail("lsh", "bucket width 0 after vectors were added (the first add sets it)");
    // The directory's own per-slot states (checked by its load): 0 live, 1 free, 2 removed.
    const auto state = r.structure_array<std::uint8_t>("slots.state", n);

    const auto shape = r.structure_array<std::uint64_t>("lsh.tables", r.product("lsh.tables", p.tables, table_words));
    constexpr std::uint64_t max32 = std::numeric_limits<std::uint32_t>::max();
    std::uint64_t keys = 0, offsets = 0, entries = 0, pending = 0;  // totals: below 2^12 tables x 2^32
    for (std::size_t t = 0; t < p.tables; ++t) {
      const std::uint64_t* sh = shape.data() + t * table_words;
      if (sh[0] > 1 || (sh[0] == 0 && (sh[1] != 0 || sh[2] != 0)) || sh[1] >= max32 || sh[2] > max32 || sh[3] > max32)
        r.fail("lsh.tables", "table " + std::to_string(t) + ": merged " + std::to_string(sh[0]) + ", " +
                                 std::to_string(sh[1]) + " buckets, " + std::to_string(sh[2]) + " entries, " +
                                 std::to_string(sh[3]) + " side entries: expected 0 or 1, nothing merged before "
                                 "the first merge, fewer than 2^32 of each");
      keys += sh[1];
      offsets += sh[0] == 1 ? sh[1] + 1 : 0;
      entries += sh[2];
      pending += sh[3];
    }
    const auto all_keys = r.structure_array<std::uint64_t>("lsh.keys", keys);
    const auto all_offsets = r.structure_array<std::uint32_t>("lsh.offsets", offsets);
    const auto all_entries = r.structure_array<slot_t>("lsh.entries", entries);
    const auto pending_keys = r.structure_array<std::uint64_t>("lsh.pending.keys", pending);
    const auto pending_slots = r.structure_array<slot_t>("lsh.pending.slots", pending);
    // A slot an entry may name: one holding a vector or removed (a free slot's entries were dropped).
    const auto named = [&](slot_t s) { return s < n && state[s] != 1; };

    std::size_t key_at = 0, offset_at = 0, entry_at = 0, pending_at = 0;
    for (std::size_t t = 0; t < p.tables; ++t) {
      const std::uint64_t* sh = shape.data() + t * table_words;
      const std::string table = "table " + std::to_string(t);
      lsh_detail::table& tb = idx.tables_data_[t];
      const auto k = all_keys.subspan(key_at, sh[1]);
      key_at += sh[1];
      for (std::size_t b = 1; b < k.size(); ++b)
        if (!(k[b - 1] < k[b]))
          r.fail("lsh.keys", table + ": bucket keys not distinct and rising at bucket " + std::to_string(b));
      tb.keys.assign(k.begin(), k.end());
      const auto e = all_entries.subspan(entry_at, sh[2]);
      entry_at += sh[2];
      for (std::size_t i = 0; i < e.size(); ++i)
        if (e[i] != lsh_detail::table::vacant && !named(e[i]))
          r.fail("lsh.entries", table + ": entry " + std::to_string(i) + " names slot " + std::to_string(e[i]) +
                                    ", which holds no vector and was not removed");
      tb.slots.assign(e.begin(), e.end());
      if (sh[0] == 1) {
        const auto o = all_offsets.subspan(offset_at, sh[1] + 1);
        offset_at += sh[1] + 1;
        if (o.front() != 0 || o.back() != sh[2] || !std::is_sorted(o.begin(), o.end()))
          r.fail("lsh.offsets", table + ": bucket offsets from " + std::to_string(o.front()) + " to " +
                                    std::to_string(o.back()) + ", expected rising from 0 to " + std::to_string(sh[2]));
        tb.offsets.assign(o.begin(), o.end());
        tb.map = lsh_detail::table::make_map(tb.keys);
      }
      tb.pending.resize(sh[3]);
      for (std::size_t i = 0; i < sh[3]; ++i, ++pending_at) {
        tb.pending[i] = {pending_keys[pending_at], pending_slots[pending_at]};
        if (!named(tb.pending[i].second) || (i > 0 && tb.pending[i] < tb.pending[i - 1]))
          r.fail("lsh.pending.slots", table + ": side entry " + std::to_string(i) + " names slot " +
                                          std::to_string(tb.pending[i].second) +
                                          ", expected a slot holding a vector or removed, in key order");
      }
    }
    const auto vectors = r.payload_array<float>("vectors", r.product("vectors", n, dim));
    idx.vectors_ = r.viewing() ? stored_array<float>::borrow(vectors) : stored_array<float>::copy_of(vectors);
    return idx;
  }

  const float* vec(slot_t s) const { return vectors_.data() + std::size_t(s) * dim_; }

  // Drops every entry of a removed vector from the tables, in place, and
  // frees their slots for reuse. Answers do not change.
  void purge() noexcept {
    for (lsh_detail::table& tb : tables_data_) tb.drop([&](slot_t s) { return dead_.dead(s); });
    dead_.reclaim(slots_);
  }

  // E2LSH coordinate j of table t: floor(p / w + u), and its position in the bucket.
  std::int64_t coordinate(float p, std::size_t j, float width, float& frac) const {
    const float x = std::clamp(p / width + shift_[j], -1e15f, 1e15f);
    const float f = std::floor(x);
    frac = x - f;
    return std::int64_t(f);
  }

  // The key of table t from the L*K projections `proj`; with `pert`, also the
  // table's perturbations and their costs (unsorted).
  std::uint64_t home_key(const float* proj, std::size_t t, float width,
                         std::vector<lsh_detail::perturbation>* pert) const {
    std::uint64_t key = 0;
    const float* p = proj + t * bits_;
    for (std::size_t j = 0; j < bits_; ++j) {
      if constexpr (simhash) {
        key |= std::uint64_t(p[j] > 0) << j;
        if (pert) pert->push_back({p[j] * p[j], std::uint32_t(j), 0});
      } else {
        float frac;
        key += std::uint64_t(coordinate(p[j], t * bits_ + j, width, frac)) * mult_[t * bits_ + j];
        if (pert) {
          pert->push_back({frac * frac, std::uint32_t(j), -1});
          pert->push_back({(1 - frac) * (1 - frac), std::uint32_t(j), +1});
        }
      }
    }
    return key;
  }

  // Width rule for build_params::bucket_width = 0 (stored rows of the first
  // add): the w at which a sampled row shares its home bucket with about
  // bucket_mates others per table on average (what a query pays for in
  // candidates), estimated on up to 2,048 sampled rows hashed by every table,
  // by bisection on log w. Rows whose projections are all equal share every
  // bucket at any w: those mates are left out, else a pile of duplicates
  // would shrink w until every other vector sat alone. w stays within
  // 2^+-30 of the mean |projection| (1 when every projection is 0).
  float pick_width(matrix_view<const float> rows) const {
    const std::size_t n = rows.rows();
    if (n < 2) return std::max(kernels::norm(rows.row_ptr(0), dim_), 1e-6f);
    random_generator rng(seed_, 1);
    const std::size_t s = std::min<std::size_t>(n, 2048), lk = tables_ * bits_;
    const std::vector<std::size_t> rows_taken = random_subset(n, s, rng);
    matrix<float> sample(s, dim_);
    for (std::size_t i = 0; i < s; ++i) std::copy_n(rows.row_ptr(rows_taken[i]), dim_, sample.row_ptr(i));
    std::vector<float> proj(s * lk);
    gemm::inner_products(sample.view(), hyper_, proj.data(), lk);
    const double want = double(bucket_mates) * double(s - 1) / double(n - 1);  // mates within the sample

    // Pairs of sampled rows with identical projections, per table (they are
    // mates in every table at every width).
    std::vector<std::size_t> order(s);
    std::iota(order.begin(), order.end(), std::size_t{0});
    const auto row = [&](std::size_t i) { return proj.data() + i * lk; };
    const auto less = [&](std::size_t a, std::size_t b) {
      return std::lexicographical_compare(row(a), row(a) + lk, row(b), row(b) + lk);
    };
    std::sort(order.begin(), order.end(), less);
    double inseparable = 0;
    for (std::size_t i = 0, j; i < s; i = j) {
      for (j = i + 1; j < s && std::equal(row(order[i]), row(order[i]) + lk, row(order[j])); ++j) {}
      inseparable += double(j - i) * double(j - i - 1);
    }

    std::vector<std::uint64_t> keys(s);
    const auto mates = [&](double w) {  // mean separable bucket mates of a sampled row, per table
      double pairs = 0;
      for (std::size_t t = 0; t < tables_; ++t) {
        for (std::size_t i = 0; i < s; ++i) keys[i] = home_key(row(i), t, float(w), nullptr);
        std::sort(keys.begin(), keys.end());
        for (std::size_t i = 0, j; i < s; i = j) {
          for (j = i; j < s && keys[j] == keys[i]; ++j) {}
          pairs += double(j - i) * double(j - i - 1);
        }
      }
      return (pairs / double(tables_) - inseparable) / double(s);
    };
    double mean_abs = 0;
    for (const float p : proj) mean_abs += std::fabs(p);
    mean_abs /= double(proj.size());
    if (!(mean_abs > 0)) return 1.f;
    const double floor = std::ldexp(mean_abs, -30), ceiling = std::ldexp(mean_abs, 30);
    double lo = mean_abs, hi = mean_abs;
    while (lo > floor && mates(lo) > want) lo /= 2;
    while (hi < ceiling && mates(hi) < want) hi *= 2;
    for (int i = 0; i < 12; ++i) {
      const double mid = std::sqrt(lo * hi);
      (mates(mid) < want ? lo : hi) = mid;
    }
    return float(std::clamp(std::sqrt(lo * hi), floor, ceiling));
  }

  void prefetch(slot_t s) const {
    prefetch_lines(vec(s), lines_for(dim_ * sizeof(float)));
  }

  template <class Keep>
  bool take(slot_t s, lsh_detail::scratch& sc, const Keep* keep) const {
    if (s >= slots_.slots() || sc.visited.test_and_set(s)) return false;
    if (dead_.dead(s)) return false;
    if constexpr (!std::is_same_v<Keep, accept_all>)
      if (!(*keep)(slots_.label(s))) return false;
    sc.candidates.push_back(s);
    return true;
  }

  template <class Keep>
  void collect(const lsh_detail::table& tb, std::uint64_t key, lsh_detail::scratch& sc, const Keep* keep) const {
    for (const slot_t s : tb.bucket(key)) take(s, sc, keep);
    if (tb.pending.empty()) return;
    auto it = std::lower_bound(tb.pending.begin(), tb.pending.end(), std::pair<std::uint64_t, slot_t>(key, 0));
    for (; it != tb.pending.end() && it->first == key; ++it) take(it->second, sc, keep);
  }

  // The key after applying probe set `ps` (bits over sc.perturbations) to
  // `key`; false if the set moves one coordinate both ways (E2LSH).
  bool perturbed_key(std::uint64_t key, std::size_t t, const lsh_detail::probe_set& ps,
                     const std::vector<lsh_detail::perturbation>& pert, std::uint64_t& out) const {
    std::uint64_t touched = 0;
    for (std::uint64_t m = ps.members; m != 0; m &= m - 1) {
      const lsh_detail::perturbation& p = pert[std::size_t(std::countr_zero(m))];
      const std::uint64_t bit = std::uint64_t{1} << p.coordinate;
      if (touched & bit) return false;
      touched |= bit;
      if constexpr (simhash)
        key ^= bit;
      else
        key += std::uint64_t(std::int64_t(p.delta)) * mult_[t * bits_ + p.coordinate];
    }
    out = key;
    return true;
  }

  // Collects the candidates of every table's home bucket and `probes` more
  // per table, up to `cap`.
  template <class Keep>
  void gather(std::size_t probes, std::size_t cap, lsh_detail::scratch& sc, const Keep* keep) const {
    for (std::size_t t = 0; t < tables_ && sc.candidates.size() < cap; ++t) {
      const lsh_detail::table& tb = tables_data_[t];
      sc.perturbations.clear();
      const std::uint64_t home = home_key(sc.proj.data(), t, width_, probes ? &sc.perturbations : nullptr);
      collect(tb, home, sc, keep);
      if (probes == 0) continue;
      // Probe sets in increasing cost: a min-heap grown by "shift" (replace
      // the last member by the next perturbation) and "expand" (add it).
      std::vector<lsh_detail::perturbation>& pert = sc.perturbations;
      const std::size_t m = std::min(pert.size(), max_perturbations);
      std::partial_sort(pert.begin(), pert.begin() + std::ptrdiff_t(m), pert.end(),
                        [](const auto& a, const auto& b) { return a.cost < b.cost; });
      sc.heap.assign(1, {pert[0].cost, 1, 0});
      std::size_t probed = 0;
      for (std::size_t steps = 0; probed < probes && !sc.heap.empty() && steps < 4 * probes + 64;
           ++steps) {
        std::pop_heap(sc.heap.begin(), sc.heap.end(), lsh_detail::costlier);
        const lsh_detail::probe_set ps = sc.heap.back();
        sc.heap.pop_back();
        if (ps.last + 1 < m) {
          const std::uint64_t next = std::uint64_t{1} << (ps.last + 1);
          sc.heap.push_back({ps.cost - pert[ps.last].cost + pert[ps.last + 1].cost,
                             (ps.members & ~(std::uint64_t{1} << ps.last)) | next, ps.last + 1});
          std::push_heap(sc.heap.begin(), sc.heap.end(), lsh_detail::costlier);
          sc.heap.push_back({ps.cost + pert[ps.last + 1].cost, ps.members | next, ps.last + 1});
          std::push_heap(sc.heap.begin(), sc.heap.end(), lsh_detail::costlier);
        }
        std::uint64_t key;
        if (!perturbed_key(home, t, ps, pert, key)) continue;
        collect(tb, key, sc, keep);
        ++probed;
        if (sc.candidates.size() >= cap) break;
      }
    }
  }

  // The k closest among the vectors in the probed buckets (whose label
  // passes `keep`, tested before a candidate is scored or counted against
  // max_candidates). If the probed buckets hold fewer than k vectors, up to
  // three rounds of more probes follow (2p + 8, then 4x), then an exact scan
  // of the rest, so k still come back (unless the filter passes fewer).
  // Allocates nothing once the thread is warm.
  template <class Keep>
  std::size_t search_prepared(const float* q, std::size_t k, const search_params& params, std::span<neighbor> out,
                              const Keep& filter) const {
    const Keep* keep = &filter;
    scratch_lease<lsh_detail::scratch> lease;
    lsh_detail::scratch& sc = *lease;
    if (sc.proj.size() < hyper_.padded_rows()) sc.proj.resize(hyper_.padded_rows());
    gemm::one_row_products(q, hyper_, sc.proj.data());
    sc.visited.reset(slots_.slots());
    sc.candidates.clear();
    const std::size_t cap = params.max_candidates != 0 ? std::max(params.max_candidates, k) : std::size_t(-1);

    gather(params.probes, cap, sc, keep);
    // Too few in the buckets: more probes (the visited set skips what was
    // seen), and as a last resort the rest of the index, exactly.
    for (std::size_t round = 0, probes = 2 * params.probes + 8; sc.candidates.size() < k && round < 3;
         ++round, probes *= 4)
      gather(probes, cap, sc, keep);
    if (sc.candidates.size() < k)
      for (std::size_t s = 0; s < slots_.slots(); ++s) take(slot_t(s), sc, keep);

    topk_heap heap(out, k);
    float threshold = heap.threshold();
    const std::size_t n = std::min(sc.candidates.size(), cap);
    for_each_prefetched(
        n, 1, [&](std::size_t j) { prefetch(sc.candidates[j]); },
        [&](std::size_t j) {
          const float d = Metric::distance(q, vec(sc.candidates[j]), dim_);
          if (d <= threshold && heap.push(sc.candidates[j], d)) threshold = heap.threshold();
        });
    return this->finish_labels(out, heap.sort(), [&](slot_t s) { return slots_.label(s); });
  }

  std::size_t dim_, tables_, bits_;
  std::uint64_t seed_;
  float width_ = 0;
  gemm::packed_matrix hyper_;          // L*K hyperplanes, table-major
  std::vector<float> shift_;           // E2LSH offsets b / w, uniform in [0, 1)
  std::vector<std::uint64_t> mult_;    // E2LSH: key = sum of coordinate * multiplier (mod 2^64)
  std::vector<lsh_detail::table> tables_data_;
  stored_array<float> vectors_;        // slot-major (normalised under cosine)
  tombstones dead_;       // removed vectors whose entries the tables may still hold
  slot_directory slots_;  // labels and free slots
};

static_assert(mutable_index<lsh_index<l2>> && filterable_index<lsh_index<cosine>, accept_all>);

}  // namespace annulus
