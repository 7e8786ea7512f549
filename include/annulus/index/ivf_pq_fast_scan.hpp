// ivf_pq_fs_index: IVF-PQ with 4-bit codes scanned by "fast scan". A vector
// x in list l (centroid c) is stored as the 4-bit PQ code of its residual
// r = x - c (m nibbles, m / 2 bytes) and as its float copy; a query estimates
// distances to the codes of the nprobe best lists with byte-shuffle table
// lookups (quant/fast_scan.hpp: 32 codes at a time, u8 tables, u16 sums),
// then re-ranks the best k * refine_factor by exact distance to the kept
// vectors.
//
//   auto idx = ivf_pq_fs_index<l2>::build(data, {.nlist = 1024, .m = 64});
//   auto hits = idx.search(query, 10, {.nprobe = 16, .refine_factor = 10});
//   idx.remove(label);  idx.update(label, vector);  idx.get(label);
//
// The public calls come from index/base.hpp; the inverted file (training,
// lists, the list loop, add, remove, update) from index/ivf/engine.hpp,
// through index/ivf/ivf_index.hpp (train, memory, the re-ranking). The
// encoding (ivf::fast_scan_encoding) wraps ivf_pq's (index/ivf_pq.hpp:
// ivf::pq_encoding with nbits = 4 and the vectors kept), which trains,
// encodes, keeps the vectors, saves and loads; this file adds the packing,
// the per-query tables and the list scan. A query reads downhill:
// ivf_pq_fs_index::search_prepared -> inverted_file::search -> the encoding's
// list scanner -> fast_scan::quantize_lut_into and fast_scan::scan_blocks.
//
// Lists. The engine keeps each list interleaved in blocks of 32 entries
// (index/ivf/lists.hpp, interleave = 32), an entry being pairs(m) bytes of
// nibble-packed codes (sub-space 2q low, 2q + 1 high): a list is exactly a
// fast_scan packed buffer, scanned in place (also on a view). remove moves
// the list's last entry into the hole, nibble by byte, across the blocks.
//
// Distances, with r^ the decoded residual and T the float table the codes
// are summed over, one per query (smaller = closer):
//   inner_product  -<q, c> + sum_j T[j][code_j],      T[j][i] = -<q_j, C_ji>
//   cosine         1 - <q, c> + sum_j T[j][code_j]    (the same T, unit vectors)
//   l2             ||q - c||^2 + sum_j T2[j][code_j] + t(x),  T2 = 2 T,
//                  t(x) = ||r^||^2 + 2<c, r^>, a float per slot
// which is ivf_pq's decomposition of the ADC distance ||q - c - r^||^2: the
// table is built and quantized once per query, not once per probed list
// (a table of the residual query q - c is 16 dim flops and a quantization
// per list: at m = 392 that cost 0.4x ivf_pq's QPS). The terms live beside
// the kept vectors, by slot; a list's scan adds them by its slot array. The
// u16 sums are turned to floats (bias + sum / scale, + the list's base, +
// the term) before they meet in the heap. The estimate is within m / (2 scale)
// of the float ADC distance (fast_scan.hpp); re-ranking repairs the order.
//
// get(label) returns the kept vector (stored form: unit length under
// cosine). remove, update and get find a slot's entry by scanning the lists'
// slot arrays, as ivf_pq.
//
// Memory per vector: m / 2 code bytes (rounded up to whole blocks of 32 per
// list) + a 4-byte slot + 4 dim bytes of kept vector (+ a 4-byte term under
// l2); labels other than row
// numbers, or any remove, add a hash table entry. Per thread, a search keeps
// the scaled query (dim floats), the float table (m x 16, rounded up to a
// SIMD panel), its quantized form,
// a u16 and a float per entry of the longest list scanned, and k *
// refine_factor candidates, reused by later searches (core/scratch.hpp).
//
// File (kind "ivf_pq_fs"; save, load, view as every index): the inverted
// file's sections (index/ivf/engine.hpp; "ivf.entries" holds each list's
// whole blocks in the fast-scan layout, unused lanes zero) and ivf_pq's
// encoding sections: record "ivf_pq" (keep_vectors = 1, pq_iterations, seed,
// train_pq_error), "pq" (m, nbits = 4), "pq.codebooks", "ivf_pq.vectors".
// A file with other nbits or without vectors is refused (format_error).
// Codes need no check at open: a nibble cannot reach past a 16-entry table.
// The l2 terms are not in the file: load (and view) derives them from the
// codes, O(n dim) at open.
//
// health() (index/base.hpp): as ivf_pq (list balance, drift, "pq_error").
// Threads: as ivf_pq_index (searches concurrently; train, add, remove and
// update alone).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/kernels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/scratch.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/index/base.hpp"
#include "annulus/index/concepts.hpp"
#include "annulus/index/ivf/engine.hpp"
#include "annulus/index/ivf/ivf_index.hpp"
#include "annulus/index/ivf/lists.hpp"
#include "annulus/index/ivf_pq.hpp"
#include "annulus/quant/coarse.hpp"
#include "annulus/quant/fast_scan.hpp"
#include "annulus/quant/pq.hpp"

namespace annulus {

/// A default sub-quantizer count for 4-bit fast scan: the fewest
/// sub-vectors of at most 2 dimensions (the smallest divisor m of dim with
/// dim <= 2 m): 128 -> 64, 784 -> 392, 24 -> 12. Codes of dim / 4 bytes.
inline std::size_t default_fast_scan_m(std::size_t dim) {
  for (std::size_t m = 1; m < dim; ++m)
    if (dim % m == 0 && dim <= 2 * m) return m;
  return dim;
}

namespace ivf {

/// IVF-PQ fast scan's entries: pairs(m) bytes of nibble-packed 4-bit codes
/// of the residual, in lists interleaved by 32; the float vectors beside
/// them, slot-indexed (ivf_pq's encoding, which this one wraps, keeps them).
template <metric Metric>
class fast_scan_encoding {
  static constexpr bool is_l2 = Metric::kind == metric_kind::l2;
  using pq_codes = pq_encoding<Metric>;

 public:
  using entry_type = std::uint8_t;
  static constexpr std::size_t interleave = fast_scan::block_size;
  static constexpr std::size_t nbits = 4, ksub = 16;

  struct batch {
    typename pq_codes::batch codes;    // ivf_pq's: m code bytes (+ an l2 term, unused here) a row
    std::vector<std::uint8_t> entries;  // width() nibble-packed bytes a row
  };

  /// health(): the residual's reconstruction error, as ivf_pq.
  static constexpr std::string_view code_error_name = pq_codes::code_error_name;
  double training_code_error() const { return codes_.training_code_error(); }
  double code_error(const batch& b) const { return codes_.code_error(b.codes); }

  /// One query's scorer: its table quantized to bytes, the probed list's
  /// base, and the list scan. Everything lives in per-thread scratch.
  class list_scanner {
   public:
    list_scanner(const fast_scan_encoding& enc, const float* q, const coarse_quantizer<Metric>& coarse)
        : enc_(enc), coarse_(coarse) {
      const product_quantizer& pq = enc.quantizer();
      room& r = *room_;
      if (r.table.size() < pq.table_size()) r.table.resize(pq.table_size());
      // -2<q_j, C_ji> under l2, else -<q_j, C_ji>: the table of the scaled
      // query, the same bits as scaling the table (a power of two and a sign
      // are exact) for a quarter of the multiplies at 4 dimensions a
      // sub-space (scaling the table was 5% of a query at nprobe 1).
      const float factor = is_l2 ? -2.f : -1.f;
      if (r.scaled_query.size() < pq.dim()) r.scaled_query.resize(pq.dim());
      for (std::size_t d = 0; d < pq.dim(); ++d) r.scaled_query[d] = factor * q[d];
      pq.inner_product_table(r.scaled_query.data(), r.table.data());
      fast_scan::quantize_lut_into(r.table.data(), pq.m(), pq.table_stride(), r.lut);
      if constexpr (is_l2) q_norm_ = kernels::norm_sq(q, pq.dim());
    }

    /// Enters list l with probe key `key`: its base.
    void enter(std::size_t l, float key) {
      if constexpr (is_l2) {
        base_ = key + q_norm_;  // ||q - c||^2
      } else if constexpr (Metric::kind == metric_kind::inner_product) {
        base_ = key;  // -<q, c>
      } else {
        base_ = 1.f - coarse_.dot_from_key(l, key);  // 1 - <q, c>
      }
    }

    /// The estimated distances of a list's n >= 1 entries (its packed
    /// blocks at `entries`, their slots at `slots`), valid until the next call.
    const float* list(const std::uint8_t* entries, const slot_t* slots, std::size_t n) {
      room& r = *room_;
      const std::size_t blocks = fast_scan::blocks(n);
      if (r.sums.size() < blocks * fast_scan::block_size) r.sums.resize(blocks * fast_scan::block_size);
      if (r.distances.size() < n) r.distances.resize(n);
      fast_scan::scan_blocks(entries, blocks, r.lut, r.sums.data());
      const float bias = r.lut.bias() + base_, inverse = 1.f / r.lut.scale();
      if constexpr (is_l2) {
        const float* terms = enc_.terms_.data();
        for (std::size_t i = 0; i < n; ++i) r.distances[i] = bias + float(r.sums[i]) * inverse + terms[slots[i]];
      } else {
        (void)slots;
        for (std::size_t i = 0; i < n; ++i) r.distances[i] = bias + float(r.sums[i]) * inverse;
      }
      return r.distances.data();
    }

   private:
    struct room {
      std::vector<float> scaled_query;                      // dim floats
      std::vector<float, aligned_allocator<float>> table;  // m x table_stride floats
      fast_scan::quantized_lut lut;
      std::vector<std::uint16_t> sums;
      std::vector<float> distances;
    };
    scratch_lease<room> room_;
    const fast_scan_encoding& enc_;
    const coarse_quantizer<Metric>& coarse_;
    float q_norm_ = 0.f, base_ = 0.f;
  };

  /// Throws invalid_argument unless m divides dim and is at most fast_scan::max_m.
  fast_scan_encoding(std::size_t dim, std::size_t m, std::size_t pq_iterations, std::uint64_t seed)
      : codes_(dim, m, nbits, true, pq_iterations, seed) {
    if (m > fast_scan::max_m)
      throw invalid_argument("ivf_pq_fs_index: m = " + std::to_string(m) + " sub-vectors; fast scan takes at most " +
                             std::to_string(fast_scan::max_m));
  }

  const product_quantizer& quantizer() const { return codes_.quantizer(); }
  /// The kept vector of a live slot.
  const float* vector(slot_t s) const { return codes_.vector(s); }

  std::size_t width() const { return fast_scan::pairs(quantizer().m()); }
  bool trained() const { return codes_.trained(); }

  /// A copy with the PQ trained on the sample's residuals (ivf_pq's
  /// training). Throws invalid_argument on fewer than 16 rows.
  fast_scan_encoding trained_on(matrix_view<const float> sample, const coarse_quantizer<Metric>& coarse,
                                std::size_t threads) const {
    if (sample.rows() < ksub)
      throw invalid_argument("ivf_pq_fs_index::train: " + std::to_string(sample.rows()) +
                             " training vectors for the 16 PQ centroids per sub-space; need at least 16");
    return fast_scan_encoding(codes_.trained_on(sample, coarse, threads));
  }

  /// ivf_pq's entries of the rows, and each code nibble-packed.
  batch encode(matrix_view<const float> rows, std::span<const std::uint32_t> to, const coarse_quantizer<Metric>& coarse,
               std::size_t threads) const {
    batch out{codes_.encode(rows, to, coarse, threads), {}};
    const std::size_t n = rows.rows(), m = quantizer().m(), w = width(), from = codes_.width();
    out.entries.assign(n * w, 0);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint8_t* code = out.codes.entries.data() + i * from;
      std::uint8_t* e = out.entries.data() + i * w;
      for (std::size_t j = 0; j < m; ++j) e[j / 2] |= std::uint8_t(code[j] << (4 * (j % 2)));
    }
    return out;
  }

  /// Room for kept vectors (and l2 terms) of slots [0, slots). Throws
  /// std::bad_alloc, capacity_error; then the slots' data is as it was.
  void reserve(std::size_t slots) {
    if (is_l2 && terms_.size() < slots) terms_.resize(slots);
    codes_.reserve(slots);
  }

  void write(const batch& b, std::size_t i, slot_t s, std::uint8_t* entry) noexcept {
    std::copy_n(b.entries.data() + i * width(), width(), entry);
    codes_.keep_vector(b.codes, i, s);
    if constexpr (is_l2) terms_[s] = codes_.l2_term_of(b.codes, i);
  }

  /// After load: each slot's l2 term, from its code and its list's centroid.
  void loaded(const inverted_lists<std::uint8_t>& lists, const coarse_quantizer<Metric>& coarse) {
    if constexpr (is_l2) {
      if (!trained()) return;
      const product_quantizer& pq = quantizer();
      const std::size_t d = pq.dim(), m = pq.m();
      std::size_t slots = 0;
      for (std::size_t l = 0; l < lists.nlist(); ++l)
        for (std::size_t i = 0; i < lists.size(l); ++i) slots = std::max<std::size_t>(slots, lists.slots(l)[i] + 1);
      std::vector<float> terms(slots), centroid(d), decoded(d);
      std::vector<std::uint8_t> packed(width()), code(m);
      for (std::size_t l = 0; l < lists.nlist(); ++l) {
        if (lists.size(l) == 0) continue;
        coarse.centroid(l, centroid.data());
        for (std::size_t i = 0; i < lists.size(l); ++i) {
          lists.copy_entry(l, i, packed.data());
          for (std::size_t j = 0; j < m; ++j) code[j] = std::uint8_t((packed[j / 2] >> (4 * (j % 2))) & 0xF);
          pq.decode(code.data(), decoded.data());
          terms[lists.slots(l)[i]] = pq_codes::l2_term(decoded.data(), centroid.data(), d);
        }
      }
      terms_ = std::move(terms);
    }
  }

  /// The kept vector.
  void decode(const std::uint8_t*, std::size_t, slot_t s, const coarse_quantizer<Metric>&, float* out) const {
    std::copy_n(vector(s), quantizer().dim(), out);
  }

  list_scanner scanner(const float* q, const coarse_quantizer<Metric>& coarse) const {
    return list_scanner(*this, q, coarse);
  }

  std::size_t quantizer_bytes() const { return codes_.quantizer_bytes(); }
  std::size_t vector_bytes() const { return codes_.vector_bytes() + terms_.capacity() * sizeof(float); }

  // ---- saved form: ivf_pq's encoding sections (see the header comment) ----

  void save(serial::writer& w, std::size_t slots) const { codes_.save(w, slots); }

  /// The encoding a file saved. Throws format_error, also on nbits other
  /// than 4 or on an index that does not keep its vectors.
  static fast_scan_encoding load(serial::reader& r, std::size_t dim, bool trained, std::size_t slots) {
    pq_codes codes = pq_codes::load(r, dim, trained, slots);
    if (codes.quantizer().nbits() != nbits)
      r.fail("pq", "nbits = " + std::to_string(codes.quantizer().nbits()) + "; fast scan codes have 4 bits");
    if (codes.quantizer().m() > fast_scan::max_m)
      r.fail("pq", "m = " + std::to_string(codes.quantizer().m()) + " is beyond fast scan's " +
                       std::to_string(fast_scan::max_m));
    if (!codes.keeps_vectors()) r.fail("ivf_pq", "a fast-scan index keeps its vectors; the file has none");
    return fast_scan_encoding(std::move(codes));
  }

  /// A nibble cannot index past a 16-entry table: nothing to check.
  bool entries_steer() const { return false; }
  std::optional<std::string> entry_error(std::span<const std::uint8_t>) const { return std::nullopt; }

 private:
  explicit fast_scan_encoding(pq_codes codes) : codes_(std::move(codes)) {}

  pq_codes codes_;
  std::vector<float> terms_;  // l2: ||r^||^2 + 2<c, r^> by slot
};

}  // namespace ivf

template <metric Metric>
class ivf_pq_fs_index : public ivf::ivf_index<ivf_pq_fs_index<Metric>, Metric, ivf::fast_scan_encoding<Metric>> {
  using ivf_base = ivf::ivf_index<ivf_pq_fs_index<Metric>, Metric, ivf::fast_scan_encoding<Metric>>;
  friend index_base<ivf_pq_fs_index<Metric>, Metric>;
  using ivf_base::engine_;

 public:
  static constexpr std::string_view index_name = "ivf_pq_fs_index";
  static constexpr std::string_view file_kind = "ivf_pq_fs";
  static constexpr bool viewable = true;
  struct build_params {
    std::size_t nlist = 1024;            ///< lists (coarse k-means centroids), >= 1
    std::size_t m = 0;                   ///< 4-bit PQ sub-vectors, must divide dim; 0 = default_fast_scan_m(dim)
    std::size_t train_size = 0;          ///< vectors build trains on; 0 = min(rows, 256 * nlist)
    std::size_t kmeans_iterations = 10;  ///< coarse k-means iterations at most
    std::size_t pq_iterations = 25;      ///< k-means iterations per PQ sub-space at most
    std::uint64_t seed = default_seed;   ///< training sample and k-means seeds (PQ: seed + 1)
  };
  struct search_params {
    std::size_t nprobe = 8;          ///< lists scanned per query (>= 1; above nlist means all)
    std::size_t refine_factor = 20;  ///< re-rank k * refine_factor by exact distance; 0 = the estimates alone
  };

  /// Empty, untrained index. Throws invalid_argument on dim 0, nlist 0 or an
  /// m that does not divide dim. build(data, params, threads)
  /// (index/base.hpp) trains on a sample of data (build_params::train_size)
  /// and adds all of it; besides the base's checks it throws
  /// invalid_argument on fewer rows than nlist or than 16. train, trained,
  /// nlist, list_size and memory come from index/ivf/ivf_index.hpp.
  explicit ivf_pq_fs_index(std::size_t dim, const build_params& params = {})
      : ivf_base(index_name, dim, params.nlist, {params.kmeans_iterations, params.seed},
                 ivf::fast_scan_encoding<Metric>(dim, params.m == 0 ? default_fast_scan_m(dim) : params.m,
                                                 params.pq_iterations, params.seed)) {}

  const product_quantizer& quantizer() const { return engine_.encoding().quantizer(); }

 private:
  explicit ivf_pq_fs_index(typename ivf_base::engine e) : ivf_base(std::move(e)) {}
  static ivf_pq_fs_index load_sections(serial::reader& r) {
    return ivf_pq_fs_index(ivf_base::engine::load(r, index_name));
  }

  // Untrained or nprobe = 0: invalid_argument, before k is looked at.
  void check_searchable(const search_params& params) const { engine_.check_searchable(params.nprobe); }
};

static_assert(mutable_index<ivf_pq_fs_index<l2>> && filterable_index<ivf_pq_fs_index<cosine>, accept_all>);

}  // namespace annulus
