// ivf_pq_index: an inverted file over product-quantized residuals, for
// collections too large to keep as floats. A vector x in list l (centroid c)
// is stored as the PQ code of its residual r = x - c: m bytes instead of
// 4 dim. A query scans the nprobe best lists and ranks their codes by
// asymmetric distance; optionally the best k * refine_factor are re-ranked
// with exact distances to kept copies of the vectors.
//
//   ivf_pq_index<l2> idx = ivf_pq_index<l2>::build(data, {.nlist = 1024, .m = 56, .keep_vectors = true});
//   auto hits = idx.search(query, 10, {.nprobe = 16, .refine_factor = 4});
//   idx.remove(label);  idx.update(label, vector);  idx.get(label);
//
// The public calls come from index/base.hpp; the inverted file (training,
// lists, the list loop, add, remove, update) from index/ivf/engine.hpp,
// through index/ivf/ivf_index.hpp (train, memory, ...). This
// file is the encoding (ivf::pq_encoding: the entry, the per-query table, the
// per-list term) and the re-ranking. A query reads downhill:
// ivf_pq_index::search_prepared -> inverted_file::search -> pq_encoding's
// list scanner -> product_quantizer's table (quant/pq.hpp) and the lists.
//
// Distances from codes, with r^ the decoded residual (the query-dependent part
// is one table of <q_j, centroid> per query, shared by every list):
//   inner_product  -<q, c + r^> = -<q, c> - sum_j T[j][code_j]
//   cosine         1 - <q, c> - sum_j T[j][code_j]        (unit vectors)
//   l2             ||q - c||^2 + (||r^||^2 + 2<c, r^>) - 2 sum_j T[j][code_j]
// Under l2 the middle term depends on the stored vector only, so it is
// computed at add and kept beside the code (4 bytes). FAISS instead keeps a
// table of it per (list, sub-space, centroid): nlist * m * 256 floats, 58 MB at
// nlist = 1024, m = 56, whatever the collection size, and adds a slice of it
// into a per-list table for every probed list. The per-vector float costs
// 4 bytes a vector and no per-list work.
//
// get(label) returns the kept vector with keep_vectors, else the decoded
// approximation c + r^ (not the vector added: PQ is lossy; under cosine not
// of unit norm either). remove, update and get find a slot's entry by
// scanning the lists' slot arrays (about a millisecond per million vectors).
//
// Memory per vector: m code bytes (+ 4 under l2) + a 4-byte slot in the
// lists; with keep_vectors, 4 dim bytes more (memory() shows each part);
// labels other than row numbers, or any remove, add a hash table entry
// (about 40 bytes a vector). Per thread, a search keeps a table of m * 2^nbits
// floats (rounded up to a SIMD panel) and, when re-ranking, k * refine_factor
// candidates, reused by later searches (core/scratch.hpp).
// File (kind "ivf_pq"; save, load, view as every index): the inverted
// file's sections (index/ivf/engine.hpp: record "ivf", "ivf.centroids", the
// slot directory, "ivf.list_sizes", "ivf.list_slots", "ivf.entries": codes
// and l2 terms list by list), and the encoding's: record "ivf_pq"
// (keep_vectors, pq_iterations, seed), the PQ's record "pq" (m, nbits) and
// "pq.codebooks" once trained (quant/pq.hpp), "ivf_pq.vectors" with
// keep_vectors (dim floats a slot). A view reads codes and kept vectors in
// place; with nbits < 8 a code byte could index past its table, so the
// codes are then checked at open (every byte below 2^nbits), even on a view.
// health() (index/base.hpp) adds to the inverted file's figures
// (index/ivf/engine.hpp) the PQ reconstruction error of the residual,
// ||r - r^||^2: its mean over the training sample (measured by train, kept
// in the "ivf_pq" record as train_pq_error; unknown for files written
// before) against that of the vectors added since (measured by encode from
// the code it already decodes: O(d) a vector).
// Threads: as ivf_flat_index (searches concurrently; train, add, remove and
// update alone).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/kernels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/random.hpp"
#include "annulus/core/scratch.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/core/sizes.hpp"
#include "annulus/core/stored.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/base.hpp"
#include "annulus/index/concepts.hpp"
#include "annulus/index/ivf/engine.hpp"
#include "annulus/index/ivf/ivf_index.hpp"
#include "annulus/quant/coarse.hpp"
#include "annulus/quant/kmeans.hpp"
#include "annulus/quant/pq.hpp"

namespace annulus {

namespace ivf {

/// IVF-PQ's entries: the PQ code of the residual r = x - c (m bytes), then
/// under l2 the float ||r^||^2 + 2<c, r^>; with keep_vectors, the stored
/// vectors beside the lists, slot-indexed, for re-ranking and get (see
/// engine.hpp for the Encoding calls).
template <metric Metric>
class pq_encoding {
  static constexpr bool is_l2 = Metric::kind == metric_kind::l2;
  static constexpr std::size_t term_bytes = is_l2 ? sizeof(float) : 0;

 public:
  using entry_type = std::uint8_t;
  struct batch {
    std::vector<std::uint8_t> entries;  // width() bytes a row
    matrix_view<const float> rows;      // the stored-form rows, for keep_vectors
    std::vector<float> errors;          // per row: ||r - r^||^2, the residual's reconstruction error
  };

  /// health(): the reconstruction error of the residual, ||r - r^||^2, at
  /// training (mean over the training sample) and of each batch encoded.
  static constexpr std::string_view code_error_name = "pq_error";
  double training_code_error() const { return train_code_error_; }
  double code_error(const batch& b) const {
    double sum = 0;
    for (const float e : b.errors) sum += e;
    return sum;
  }

  /// Under l2, a vector's term of the ADC distance beside the query's table:
  /// ||r^||^2 + 2<c, r^> for its decoded residual r^ and its list's centroid c.
  static float l2_term(const float* decoded, const float* centroid, std::size_t d) {
    return kernels::norm_sq(decoded, d) + 2.f * kernels::dot(centroid, decoded, d);
  }
  /// Under l2, the term encode() stored for row i of a batch.
  float l2_term_of(const batch& b, std::size_t i) const {
    float term;
    std::memcpy(&term, b.entries.data() + i * width() + pq_.code_size(), sizeof term);
    return term;
  }

  /// One query's scorer: the query's inner-product table (in per-thread
  /// scratch), and the probed list's share of the distance.
  class list_scanner {
   public:
    list_scanner(const pq_encoding& enc, const float* q, const coarse_quantizer<Metric>& coarse)
        : coarse_(coarse), m_(enc.pq_.code_size()), stride_(enc.pq_.table_stride()) {
      if (buffer_->size() < enc.pq_.table_size()) buffer_->resize(enc.pq_.table_size());
      enc.pq_.inner_product_table(q, buffer_->data());
      table_ = buffer_->data();
      if constexpr (is_l2) q_norm_ = kernels::norm_sq(q, enc.pq_.dim());
    }
    /// Enters list l with probe key `key` (see the header comment).
    void enter(std::size_t l, float key) {
      if constexpr (is_l2) base_ = key + q_norm_;                                     // ||q - c||^2
      else if constexpr (Metric::kind == metric_kind::inner_product) base_ = key;      // -<q, c>
      else base_ = 1.f - coarse_.dot_from_key(l, key);                                // 1 - <q, c>
    }
    /// The estimated distance of the entry at e.
    float operator()(const std::uint8_t* e) const {
      const float ip = product_quantizer::lookup_add(table_, e, m_, stride_);
      if constexpr (is_l2) {
        float term;
        std::memcpy(&term, e + m_, sizeof term);
        return base_ + term - 2.f * ip;
      } else {
        return base_ - ip;
      }
    }

   private:
    scratch_lease<std::vector<float, aligned_allocator<float>>> buffer_;
    const coarse_quantizer<Metric>& coarse_;
    const float* table_ = nullptr;
    std::size_t m_, stride_;
    float q_norm_ = 0.f, base_ = 0.f;
  };

  /// Throws invalid_argument unless m divides dim and nbits is 1..8.
  pq_encoding(std::size_t dim, std::size_t m, std::size_t nbits, bool keep_vectors, std::size_t pq_iterations,
              std::uint64_t seed)
      : pq_(dim, m, nbits), keep_vectors_(keep_vectors), iterations_(pq_iterations), seed_(seed) {}

  const product_quantizer& quantizer() const { return pq_; }
  bool keeps_vectors() const { return keep_vectors_; }
  /// The kept vector of a live slot (keep_vectors only).
  const float* vector(slot_t s) const { return vectors_.data() + std::size_t(s) * pq_.dim(); }

  std::size_t width() const { return pq_.code_size() + term_bytes; }
  bool trained() const { return pq_.trained(); }

  /// A copy with the PQ trained on the sample's residuals to its lists.
  /// Throws invalid_argument on fewer rows than 2^nbits.
  pq_encoding trained_on(matrix_view<const float> sample, const coarse_quantizer<Metric>& coarse,
                         std::size_t threads) const {
    if (sample.rows() < pq_.ksub())
      throw invalid_argument("ivf_pq_index::train: " + std::to_string(sample.rows()) + " training vectors for " +
                             std::to_string(pq_.ksub()) + " PQ centroids per sub-space (nbits = " +
                             std::to_string(pq_.nbits()) + "); need at least " + std::to_string(pq_.ksub()));
    const std::vector<std::uint32_t> to = coarse.assign(sample, threads);
    matrix<float> residuals(sample.rows(), pq_.dim());
    residuals_of(coarse, sample, to, residuals.view().data());
    kmeans_params p;
    p.iterations = iterations_;
    p.seed = seed_ + 1;
    p.threads = threads;
    pq_encoding out(pq_.dim(), pq_.m(), pq_.nbits(), keep_vectors_, iterations_, seed_);
    out.pq_.train(residuals.view(), p);
    // The training error health() compares later adds with: one encode of
    // the sample (a PQ k-means iteration's work).
    std::vector<std::uint8_t> codes(sample.rows() * pq_.code_size());
    out.pq_.encode(residuals.view(), codes.data(), threads);
    std::vector<float> decoded(pq_.dim());
    double sum = 0;
    for (std::size_t i = 0; i < sample.rows(); ++i) {
      out.pq_.decode(codes.data() + i * pq_.code_size(), decoded.data());
      sum += kernels::l2sq(residuals.row_ptr(i), decoded.data(), pq_.dim());
    }
    out.train_code_error_ = sum / double(sample.rows());
    return out;
  }

  /// The entries of stored-form rows going to lists `to`: code, then under
  /// l2 the term ||r^||^2 + 2<c, r^> of the decoded residual r^.
  batch encode(matrix_view<const float> rows, std::span<const std::uint32_t> to,
               const coarse_quantizer<Metric>& coarse, std::size_t threads) const {
    const std::size_t n = rows.rows(), d = pq_.dim(), width = this->width(), m = pq_.code_size();
    matrix<float> residuals(n, d);
    residuals_of(coarse, rows, to, residuals.view().data());
    std::vector<std::uint8_t> codes(n * m);
    pq_.encode(residuals.view(), codes.data(), threads);
    batch out{std::vector<std::uint8_t>(n * width), rows, std::vector<float>(n)};
    constexpr std::size_t grain = 256;
    const std::size_t workers = worker_count(n, threads, grain);
    // Per worker: a decoded residual and a centroid.
    std::vector<float> room(workers * 2 * d);
    parallel_for(n, workers, [&](std::size_t i, std::size_t w) {
      std::uint8_t* e = out.entries.data() + i * width;
      std::copy_n(codes.data() + i * m, m, e);
      float* decoded = room.data() + w * 2 * d;
      pq_.decode(e, decoded);
      out.errors[i] = kernels::l2sq(residuals.view().row_ptr(i), decoded, d);  // for health(): O(d) a row
      if constexpr (is_l2) {
        float* centroid = decoded + d;
        coarse.centroid(to[i], centroid);
        const float term = l2_term(decoded, centroid, d);
        std::memcpy(e + m, &term, sizeof term);
      }
    }, grain);
    return out;
  }

  /// Room for kept vectors of slots [0, slots). Throws std::bad_alloc, capacity_error.
  void reserve(std::size_t slots) {
    if (keep_vectors_ && vectors_.size() < slots * pq_.dim())
      vectors_.resize(sizes::product(slots, pq_.dim(), "ivf_pq_index::add"));
  }

  void write(const batch& b, std::size_t i, slot_t s, std::uint8_t* entry) noexcept {
    std::copy_n(b.entries.data() + i * width(), width(), entry);
    keep_vector(b, i, s);
  }
  /// With keep_vectors, row i as slot s's kept vector (room reserved); else nothing.
  void keep_vector(const batch& b, std::size_t i, slot_t s) noexcept {
    if (keep_vectors_) std::copy_n(b.rows.row_ptr(i), pq_.dim(), vectors_.data() + std::size_t(s) * pq_.dim());
  }

  /// The kept vector, else centroid + decoded residual.
  void decode(const std::uint8_t* entry, std::size_t l, slot_t s, const coarse_quantizer<Metric>& coarse,
              float* out) const {
    const std::size_t d = pq_.dim();
    if (keep_vectors_) {
      std::copy_n(vector(s), d, out);
      return;
    }
    std::vector<float> c(d);
    coarse.centroid(l, c.data());
    pq_.decode(entry, out);
    for (std::size_t j = 0; j < d; ++j) out[j] += c[j];
  }

  list_scanner scanner(const float* q, const coarse_quantizer<Metric>& coarse) const {
    return list_scanner(*this, q, coarse);
  }

  std::size_t quantizer_bytes() const { return pq_.memory_bytes(); }
  std::size_t vector_bytes() const { return vectors_.memory_bytes(); }

  // ---- saved form: record "ivf_pq", the PQ's sections, "ivf_pq.vectors"
  // (keep_vectors: the kept vectors of slots [0, slots), stale rows of free
  // slots included) ----

  void save(serial::writer& w, std::size_t slots) const {
    w.section("ivf_pq", serial::record()
                            .set("keep_vectors", keep_vectors_ ? 1 : 0)
                            .set("pq_iterations", iterations_)
                            .set("seed", seed_)
                            .set_double("train_pq_error", train_code_error_));
    pq_.save(w);
    if (keep_vectors_) w.section("ivf_pq.vectors", std::span<const float>(vectors_.data(), slots * pq_.dim()));
  }

  /// The encoding a file saved for `slots` slots of `dim` floats, codebooks
  /// present exactly when `trained`. Throws format_error.
  static pq_encoding load(serial::reader& r, std::size_t dim, bool trained, std::size_t slots) {
    const auto rec = r.fields("ivf_pq");
    const bool keep = rec.u64_in("keep_vectors", 0, 1) == 1;
    pq_encoding e(product_quantizer::load(r, dim, trained), keep, rec.u64_in("pq_iterations", 0, std::uint64_t{1} << 20), rec.u64("seed"));
    // Absent from files written before health(): unknown. Only health() reads it.
    e.train_code_error_ = std::bit_cast<double>(rec.u64_or("train_pq_error", std::bit_cast<std::uint64_t>(unknown_error)));
    if (!(std::isnan(e.train_code_error_) || (e.train_code_error_ >= 0 && std::isfinite(e.train_code_error_))))
      r.fail("ivf_pq", "field 'train_pq_error' is not an error (a finite value >= 0)");
    if (keep) {
      const auto v = r.payload_array<float>("ivf_pq.vectors", r.product("ivf_pq.vectors", slots, dim));
      e.vectors_ = r.viewing() ? stored_array<float>::borrow(v) : stored_array<float>::copy_of(v);
    } else if (r.has("ivf_pq.vectors")) {
      r.fail("ivf_pq.vectors", "kept vectors in a file whose index does not keep them");
    }
    return e;
  }

  /// Codes index tables of 2^nbits floats per sub-space: below 8 bits a
  /// damaged byte could reach past them.
  bool entries_steer() const { return pq_.nbits() < 8; }
  std::optional<std::string> entry_error(std::span<const std::uint8_t> entries) const {
    if (!entries_steer()) return std::nullopt;
    const std::size_t w = width(), m = pq_.code_size(), ksub = pq_.ksub();
    for (std::size_t at = 0; at < entries.size(); at += w)
      for (std::size_t j = 0; j < m; ++j)
        if (entries[at + j] >= ksub)
          return "entry " + std::to_string(at / w) + " has code " + std::to_string(entries[at + j]) +
                 " in sub-space " + std::to_string(j) + ", beyond the " + std::to_string(ksub) + " centroids";
    return std::nullopt;
  }

 private:
  pq_encoding(product_quantizer pq, bool keep_vectors, std::size_t pq_iterations, std::uint64_t seed)
      : pq_(std::move(pq)), keep_vectors_(keep_vectors), iterations_(pq_iterations), seed_(seed) {}

  // out row i = rows row i - its list's centroid.
  static void residuals_of(const coarse_quantizer<Metric>& coarse, matrix_view<const float> rows,
                           std::span<const std::uint32_t> to, float* out) {
    const std::size_t d = rows.cols();
    std::vector<float> c(d);
    for (std::size_t i = 0; i < rows.rows(); ++i) {
      coarse.centroid(to[i], c.data());
      const float* x = rows.row_ptr(i);
      float* r = out + i * d;
      for (std::size_t j = 0; j < d; ++j) r[j] = x[j] - c[j];
    }
  }

  static constexpr double unknown_error = std::numeric_limits<double>::quiet_NaN();

  product_quantizer pq_;
  bool keep_vectors_;
  std::size_t iterations_;
  std::uint64_t seed_;
  stored_array<float> vectors_;  // slot-indexed, keep_vectors only (borrowed on a view)
  double train_code_error_ = unknown_error;  // mean ||r - r^||^2 over the training sample (health())
};

}  // namespace ivf

template <metric Metric>
class ivf_pq_index : public ivf::ivf_index<ivf_pq_index<Metric>, Metric, ivf::pq_encoding<Metric>> {
  using ivf_base = ivf::ivf_index<ivf_pq_index<Metric>, Metric, ivf::pq_encoding<Metric>>;
  friend index_base<ivf_pq_index<Metric>, Metric>;
  using ivf_base::engine_;

 public:
  static constexpr std::string_view index_name = "ivf_pq_index";
  static constexpr std::string_view file_kind = "ivf_pq";
  static constexpr bool viewable = true;
  struct build_params {
    std::size_t nlist = 1024;            ///< lists (coarse k-means centroids), >= 1
    std::size_t m = 0;                   ///< PQ sub-vectors, must divide dim; 0 = default_pq_m(dim)
    std::size_t nbits = 8;               ///< bits per sub-vector code, 1..8 (2^nbits centroids)
    bool keep_vectors = false;           ///< keep the float vectors too, for refine_factor (and exact get)
    std::size_t train_size = 0;          ///< vectors build trains on; 0 = min(rows, 256 * nlist)
    std::size_t kmeans_iterations = 10;  ///< coarse k-means iterations at most
    std::size_t pq_iterations = 25;      ///< k-means iterations per PQ sub-space at most
    std::uint64_t seed = default_seed;   ///< training sample and k-means seeds (PQ: seed + 1)
  };
  struct search_params {
    std::size_t nprobe = 8;         ///< lists scanned per query (>= 1; above nlist means all)
    std::size_t refine_factor = 0;  ///< re-rank k * refine_factor by exact distance (needs keep_vectors); 0 = off
  };

  /// Empty, untrained index. Throws invalid_argument on dim 0, nlist 0, an m
  /// that does not divide dim, or nbits outside 1..8. build(data, params,
  /// threads) (index/base.hpp) trains on a sample of data
  /// (build_params::train_size) and adds all of it; besides the base's
  /// checks it throws invalid_argument on fewer rows than nlist or than
  /// 2^nbits. train (coarse k-means, then the PQ on the residuals), trained,
  /// nlist, list_size and memory come from index/ivf/ivf_index.hpp.
  explicit ivf_pq_index(std::size_t dim, const build_params& params = {})
      : ivf_base(index_name, dim, params.nlist, {params.kmeans_iterations, params.seed},
                 ivf::pq_encoding<Metric>(dim, params.m == 0 ? default_pq_m(dim) : params.m, params.nbits,
                                          params.keep_vectors, params.pq_iterations, params.seed)) {}

  const product_quantizer& quantizer() const { return engine_.encoding().quantizer(); }
  /// Whether the float vectors are kept beside the codes (build_params::keep_vectors).
  bool keeps_vectors() const { return engine_.encoding().keeps_vectors(); }

 private:
  explicit ivf_pq_index(typename ivf_base::engine e) : ivf_base(std::move(e)) {}
  static ivf_pq_index load_sections(serial::reader& r) { return ivf_pq_index(ivf_base::engine::load(r, index_name)); }

  // Untrained, nprobe = 0, refine_factor without keep_vectors:
  // invalid_argument, before k is looked at.
  void check_searchable(const search_params& params) const {
    engine_.check_searchable(params.nprobe);
    if (params.refine_factor > 0 && !engine_.encoding().keeps_vectors())
      throw invalid_argument("ivf_pq_index: refine_factor = " + std::to_string(params.refine_factor) +
                             " needs the vectors; build with keep_vectors = true");
  }
};

static_assert(mutable_index<ivf_pq_index<l2>> && filterable_index<ivf_pq_index<cosine>, accept_all>);

}  // namespace annulus
