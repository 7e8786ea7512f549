// ivf_flat_index: an inverted file over full vectors. k-means splits the
// space into nlist cells; a vector is stored in its cell's list; a query scans
// the nprobe lists whose centroids suit it best and ranks their vectors
// exactly. nprobe trades recall for speed; nprobe = nlist is exact search.
//
//   ivf_flat_index<l2> idx = ivf_flat_index<l2>::build(data, {.nlist = 1024});
//   auto hits = idx.search(query, 10, {.nprobe = 16});
//   idx.search(query, 10, {.nprobe = 16}, [&](label_t l) { return in_stock(l); });  // filtered
//   idx.remove(label);  idx.update(label, vector);  idx.get(label);
//
// Or in steps: ivf_flat_index<l2> idx(dim, {.nlist = 1024}); idx.train(sample);
// idx.add(data). Coarse assignment of an add, and the probes of a batch
// search, are one GEMM pass over the batch (core/gemm.hpp).
//
// The public calls (search forms, batch, range search, get, labels, k
// policy) come from index/base.hpp; the inverted file (training, lists, the
// list loop, add, remove, update) from index/ivf/engine.hpp, through
// index/ivf/ivf_index.hpp (train, memory, ...). This file is the encoding:
// an entry is the stored vector, scored exactly.
//
// A filter is tested in the list scan, before any distance. remove frees the
// slot for the next add; update moves the entry to its new list; get copies
// the stored vector (normalised under cosine). remove, update and get find a
// slot's entry by scanning the lists' slot arrays: about a millisecond per
// million vectors (no slot-to-list map: 4 bytes a vector saved).
//
// Ownership: the index copies what it is given (normalised under cosine).
// Memory (memory() by part): dim floats and a 4-byte slot per vector in the
// lists, the label map (nothing while labels are row numbers and nothing was
// removed; else about 40 bytes a vector), and nlist centroids (bfloat16).
// File (kind "ivf_flat"; idx.save(path), ivf_flat_index<l2>::load(path),
// ::view(path)): the inverted file's sections (index/ivf/engine.hpp: record
// "ivf", "ivf.centroids", the slot directory, "ivf.list_sizes",
// "ivf.list_slots", "ivf.entries": the vectors list by list); the encoding
// adds none. A view reads the vectors in place; untrained and trained but
// empty indexes save and load too.
// Threads: const calls (search, search_batch, get, ...) are safe from any
// number of threads at once. train, add, remove and update are not safe
// alongside anything else; guard them with your own lock if searches run
// meanwhile.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/random.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/base.hpp"
#include "annulus/index/concepts.hpp"
#include "annulus/index/ivf/engine.hpp"
#include "annulus/index/ivf/ivf_index.hpp"
#include "annulus/quant/coarse.hpp"

namespace annulus {

namespace ivf {

/// IVF-Flat's entries: the stored vector itself (dim floats), scored with
/// the metric's exact distance (see engine.hpp for the Encoding calls).
template <metric Metric>
struct flat_encoding {
  using entry_type = float;
  using batch = matrix_view<const float>;  // the stored-form rows themselves

  struct list_scanner {
    const float* q;
    std::size_t dim;
    void enter(std::size_t, float) {}
    float operator()(const float* v) const { return Metric::distance(q, v, dim); }
  };

  std::size_t dim;

  std::size_t width() const { return dim; }
  bool trained() const { return true; }
  flat_encoding trained_on(matrix_view<const float>, const coarse_quantizer<Metric>&, std::size_t) const {
    return *this;
  }
  batch encode(matrix_view<const float> rows, std::span<const std::uint32_t>, const coarse_quantizer<Metric>&,
               std::size_t) const {
    return rows;
  }
  void reserve(std::size_t) {}
  void write(const batch& rows, std::size_t i, slot_t, float* entry) const noexcept {
    std::copy_n(rows.row_ptr(i), dim, entry);
  }
  void decode(const float* entry, std::size_t, slot_t, const coarse_quantizer<Metric>&, float* out) const {
    std::copy_n(entry, dim, out);
  }
  list_scanner scanner(const float* q, const coarse_quantizer<Metric>&) const { return {q, dim}; }
  std::size_t quantizer_bytes() const { return 0; }
  std::size_t vector_bytes() const { return 0; }  // the vectors are the lists' entries

  // Nothing to save beyond the entries: dim is the file's.
  void save(serial::writer&, std::size_t) const {}
  static flat_encoding load(serial::reader&, std::size_t dim, bool, std::size_t) { return {dim}; }
  // Vector values change distances, never addresses.
  bool entries_steer() const { return false; }
  std::optional<std::string> entry_error(std::span<const float>) const { return std::nullopt; }
};

}  // namespace ivf

template <metric Metric>
class ivf_flat_index : public ivf::ivf_index<ivf_flat_index<Metric>, Metric, ivf::flat_encoding<Metric>> {
  using ivf_base = ivf::ivf_index<ivf_flat_index<Metric>, Metric, ivf::flat_encoding<Metric>>;
  friend index_base<ivf_flat_index<Metric>, Metric>;
  using ivf_base::engine_;

 public:
  static constexpr std::string_view index_name = "ivf_flat_index";
  static constexpr std::string_view file_kind = "ivf_flat";
  static constexpr bool viewable = true;
  struct build_params {
    std::size_t nlist = 1024;            ///< lists (k-means centroids), >= 1
    std::size_t train_size = 0;          ///< vectors build trains on; 0 = min(rows, 256 * nlist)
    std::size_t kmeans_iterations = 10;  ///< Lloyd iterations at most
    std::uint64_t seed = default_seed;   ///< training sample and k-means seeds
  };
  struct search_params {
    std::size_t nprobe = 8;  ///< lists scanned per query (>= 1; above nlist means all: exact)
  };

  /// Empty, untrained index. Throws invalid_argument on dim 0 or nlist 0.
  /// build(data, params, threads) (index/base.hpp) trains on a sample of
  /// data (build_params::train_size) and adds all of it; besides the base's
  /// checks it throws invalid_argument on fewer rows than nlist. train,
  /// trained, nlist, list_size and memory (lists: the vectors and their
  /// slots; vectors: 0) come from index/ivf/ivf_index.hpp.
  explicit ivf_flat_index(std::size_t dim, const build_params& params = {})
      : ivf_base(index_name, dim, params.nlist, {params.kmeans_iterations, params.seed},
                 ivf::flat_encoding<Metric>{dim}) {}

 private:
  explicit ivf_flat_index(typename ivf_base::engine e) : ivf_base(std::move(e)) {}
  static ivf_flat_index load_sections(serial::reader& r) {
    return ivf_flat_index(ivf_base::engine::load(r, index_name));
  }

  // Untrained or nprobe = 0: invalid_argument, before k is looked at.
  void check_searchable(const search_params& params) const { engine_.check_searchable(params.nprobe); }

  template <class Keep>
  std::size_t search_prepared(const float* q, std::size_t k, const search_params& params, std::span<neighbor> out,
                              const Keep& keep) const {
    return this->labelled(out, engine_.search(q, params.nprobe, out.first(k), keep));
  }

  // Probes for every query in one GEMM pass, then the lists on `threads` workers.
  result_matrix search_batch_prepared(matrix_view<const float> queries, std::size_t k, const search_params& params,
                                      std::size_t threads) const {
    return engine_.search_batch(queries, params.nprobe, k, threads,
                                [&](const float* q, ivf::probed lists, std::span<neighbor> out) {
                                  return this->labelled(out, engine_.scan(q, lists, out, accept_all{}));
                                });
  }
};

static_assert(mutable_index<ivf_flat_index<l2>> && filterable_index<ivf_flat_index<cosine>, accept_all>);

}  // namespace annulus
