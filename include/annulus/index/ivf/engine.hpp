// ivf::inverted_file<Metric, Encoding>: the inverted-file engine that
// ivf_flat_index, ivf_pq_index and ivf_pq_fs_index run on. It owns everything but what a list
// entry holds: the dimension, the coarse quantizer (quant/coarse.hpp), the
// slot directory (core/slots.hpp), the inverted lists (lists.hpp), training
// (the sample, the coarse k-means), probing, the list loop (filter, distance,
// top-k heap), and add, remove and update. The index supplies an Encoding:
// what an entry stores and how a query scores it (FAISS splits IndexIVF and
// its InvertedListScanner the same way). A query reads downhill:
//
//   index::search_prepared -> inverted_file::search -> coarse_quantizer::probe
//                                                   -> scan: for each probed list l
//                                                        scanner.enter(l, key)   the list's term
//                                                        for each entry: filter, scanner(entry), heap
//   Encoding::scanner -> the quantizer's tables, or the vectors themselves
//
// What an Encoding E supplies (the concept ivf::encoding below checks it):
//   using entry_type                  float (a vector) or std::uint8_t (a code)
//   width() const                     entry_type values per entry
//   trained() const                   its own training is done (beyond the coarse quantizer)
//   trained_on(sample, coarse, threads) const -> E
//                                     a copy trained on a stored-form sample, the coarse
//                                     quantizer trained already; may throw
//   encode(rows, to, coarse, threads) const -> E::batch
//                                     the entries of stored-form rows going to lists to[i];
//                                     may throw, changes nothing
//   reserve(slots)                    room for per-slot data beside the lists; may throw
//   write(batch, i, slot, entry)      row i's entry (and per-slot data); cannot throw
//   decode(entry, list, slot, coarse, out) const
//                                     the vector an entry stands for (get)
//   scanner(q, coarse) const -> S     per query: S.enter(list, probe key), then
//                                     S(entry) -> distance, for each entry of that list,
//                                     or (a list scanner) S.list(entries, slots, n) -> const float*:
//                                     the distances of the list's n entries at once (slots:
//                                     theirs, for per-slot data)
//   quantizer_bytes(), vector_bytes() const
//   save(w, slots) const              its sections (parameters, its own trained state,
//                                     per-slot data of slots [0, slots))
//   E::load(r, dim, trained, slots)   the encoding a file saved (format_error if damaged)
//   entries_steer() const             whether entry values index memory (then the lists
//                                     read their entries as a checked structure section)
//   entry_error(entries) const        what is wrong with a file's entries, or nullopt
//   optional: static interleave       entries per block of interleaved lists (lists.hpp;
//                                     ivf_pq_fs: 32, the fast-scan layout); absent: 1
//   optional: loaded(lists, coarse)   per-slot data the file does not hold, derived from
//                                     the loaded lists (ivf_pq_fs: l2 terms); may throw
//   optional, for health() (an encoding that loses information: ivf_pq):
//   code_error_name                   static: the figures' prefix ("pq_error")
//   training_code_error() const       its mean reconstruction error over the training
//                                     sample, measured by trained_on (NaN if unknown)
//   code_error(batch) const -> double the sum of the batch rows' reconstruction errors
//
// Drift (health()): at train the engine records the mean squared l2 distance
// of the training rows to their centroid and how many went to each list; at
// every add (and update) since, the sum and count of the added rows'
// distances to their centroid, how many landed in the lists that were the
// largest tenth at training (k = max(1, nlist / 10) lists, ties to the lower
// list), and the encoding's reconstruction error. Removed and replaced
// vectors are not taken back out: the counters describe what arrived since
// training, not what is held now. The distance is computed from the centroid
// the assignment chose: O(d) a row, beside the assignment's O(nlist d).
//
// Memory: the lists (entries and a 4-byte slot each), the coarse centroids,
// the slot directory, what the encoding reports, and 5 bytes a list of drift.
//
// File (every IVF kind; save/load): record "ivf" (nlist, kmeans_iterations,
// seed, trained), "ivf.centroids" once trained (coarse.hpp), the encoding's
// sections, the slot directory (core/slots.hpp), the lists (lists.hpp:
// "ivf.list_sizes", "ivf.list_slots", "ivf.entries"). Every list's entries
// lie contiguous in the file, so a view reads them in place. Then, when the
// index knows its training statistics, the drift: record "ivf.drift"
// (train_error, train_code_error, added, added_error, added_code_error,
// added_to_largest; errors as f64 bits) and "ivf.drift_lists" (u32 a list:
// training rows per list). Both are optional: a file without them (written
// before they existed) loads with the training statistics unknown (NaN) and
// the since-training counters starting from zero at load, and such an index
// saves no drift sections (it cannot say what arrived since training).
// Readers that predate them ignore them.
//
// Threads: const calls are safe from any number of threads at once; train,
// add, remove and update are not safe alongside anything else.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "annulus/core/distinct.hpp"
#include "annulus/core/error.hpp"
#include "annulus/core/kernels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/prepare.hpp"
#include "annulus/core/random.hpp"
#include "annulus/core/scratch.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/core/slots.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/base.hpp"
#include "annulus/index/health.hpp"
#include "annulus/index/ivf/lists.hpp"
#include "annulus/quant/coarse.hpp"
#include "annulus/quant/kmeans.hpp"

namespace annulus::ivf {

/// The lists a query probes, best first, with their probe keys.
struct probed {
  std::span<const std::uint32_t> lists;
  const float* keys;
};

/// How an inverted file trains its coarse quantizer.
struct training {
  std::size_t kmeans_iterations = 10;  ///< Lloyd iterations at most
  std::uint64_t seed = default_seed;   ///< the training sample's and k-means's seed
};

/// Heap bytes of an IVF index by part; memory_bytes() is their sum.
struct memory_usage {
  std::size_t lists = 0;       ///< entries (vectors or codes, + l2 terms) and their slots
  std::size_t vectors = 0;     ///< float vectors kept beside codes (ivf_pq keep_vectors)
  std::size_t quantizers = 0;  ///< coarse centroids and PQ codebooks
  std::size_t labels = 0;      ///< label map and free slots
  std::size_t total() const { return lists + vectors + quantizers + labels; }
};

/// What an inverted file remembers of its training and of the vectors added
/// since, for health() (see "Drift" in the header comment). Errors are
/// squared l2 distances in the stored form (unit vectors under cosine).
struct drift {
  static constexpr double unknown = std::numeric_limits<double>::quiet_NaN();

  double train_error = unknown;       ///< mean distance of the training rows to their centroid
  double train_code_error = unknown;  ///< the encoding's mean reconstruction error over them
  std::vector<std::uint32_t> train_lists;  ///< training rows per list; empty: unknown (a file from before)
  std::vector<std::uint8_t> largest;       ///< per list: 1 if among the largest_count() largest at training
  std::uint64_t added = 0;            ///< rows added (or updated) since training, or since a load that knew none
  double added_error = 0;             ///< sum of their distances to their centroid
  double added_code_error = 0;        ///< sum of their reconstruction errors
  std::uint64_t added_to_largest = 0; ///< of them, those that went to a `largest` list

  /// The lists counted as the largest at training: a tenth of them, at least one.
  static std::size_t largest_count(std::size_t nlist) { return std::max<std::size_t>(1, nlist / 10); }
  bool known() const { return !train_lists.empty(); }

  /// Marks the largest_count() lists with the most training rows (equal
  /// counts: the lower list first). Throws std::bad_alloc.
  void mark_largest() {
    const std::size_t nlist = train_lists.size();
    std::vector<std::uint32_t> order(nlist);
    for (std::size_t l = 0; l < nlist; ++l) order[l] = std::uint32_t(l);
    const std::size_t k = largest_count(nlist);
    std::nth_element(order.begin(), order.begin() + std::ptrdiff_t(k - 1), order.end(), [&](std::uint32_t a, std::uint32_t b) {
      return train_lists[a] > train_lists[b] || (train_lists[a] == train_lists[b] && a < b);
    });
    largest.assign(nlist, 0);
    for (std::size_t i = 0; i < k; ++i) largest[order[i]] = 1;
  }
  /// The training rows' share in the largest lists.
  double training_share_of_largest() const {
    std::uint64_t in = 0, all = 0;
    for (std::size_t l = 0; l < train_lists.size(); ++l) {
      all += train_lists[l];
      in += largest[l] ? train_lists[l] : 0;
    }
    return all ? double(in) / double(all) : unknown;
  }
  std::size_t memory_bytes() const {
    return train_lists.capacity() * sizeof(std::uint32_t) + largest.capacity();
  }
};

/// One add's share of the drift counters, measured before the add commits.
struct drift_batch {
  std::uint64_t rows = 0, to_largest = 0;
  double error = 0, code_error = 0;
};

/// nlist x sum s_i^2 / (sum s_i)^2 for list sizes s_i: the expected scan
/// cost per probe relative to balanced lists (1 = balanced; see health()).
template <class Sizes>
double scan_cost_ratio(const Sizes& sizes) {
  double sum = 0, squares = 0;
  for (const auto s : sizes) {
    sum += double(s);
    squares += double(s) * double(s);
  }
  return sum > 0 ? double(std::size(sizes)) * squares / (sum * sum) : 1.0;
}

/// What an inverted file needs of an encoding (see the header comment).
template <class E, class Metric>
concept encoding = requires(const E& e, E& writable, matrix_view<const float> rows, std::span<const std::uint32_t> to,
                            const coarse_quantizer<Metric>& coarse, const typename E::batch& batch,
                            typename E::entry_type* entry, const float* q, float* out, serial::writer& w,
                            serial::reader& r, std::span<const typename E::entry_type> entries) {
  { e.width() } -> std::convertible_to<std::size_t>;
  { e.trained() } -> std::convertible_to<bool>;
  { e.trained_on(rows, coarse, std::size_t{}) } -> std::same_as<E>;
  { e.encode(rows, to, coarse, std::size_t{}) } -> std::same_as<typename E::batch>;
  writable.reserve(std::size_t{});
  { writable.write(batch, std::size_t{}, slot_t{}, entry) } noexcept;
  e.decode(entry, std::size_t{}, slot_t{}, coarse, out);
  { e.scanner(q, coarse).enter(std::size_t{}, 0.f) };
  requires(requires { { e.scanner(q, coarse)(entry) } -> std::convertible_to<float>; } ||
           requires(const slot_t* slots) {
             { e.scanner(q, coarse).list(entry, slots, std::size_t{}) } -> std::convertible_to<const float*>;
           });
  { e.quantizer_bytes() } -> std::convertible_to<std::size_t>;
  { e.vector_bytes() } -> std::convertible_to<std::size_t>;
  e.save(w, std::size_t{});
  { E::load(r, std::size_t{}, bool{}, std::size_t{}) } -> std::same_as<E>;
  { e.entries_steer() } -> std::convertible_to<bool>;
  { e.entry_error(entries) } -> std::same_as<std::optional<std::string>>;
};

/// Entries per block of an encoding's lists: its `interleave`, else 1.
template <class E>
constexpr std::size_t interleave_of() {
  if constexpr (requires { E::interleave; }) return std::size_t{E::interleave};
  else return 1;
}

template <metric Metric, encoding<Metric> Encoding>
class inverted_file {
 public:
  using entry_type = typename Encoding::entry_type;
  using quantizer = coarse_quantizer<Metric>;
  static constexpr std::size_t interleave = interleave_of<Encoding>();
  static_assert(interleave >= 1);

  /// Throws invalid_argument on dim 0 or nlist 0, naming the index `name`.
  inverted_file(std::string_view name, std::size_t dim, std::size_t nlist, training t, Encoding encoding)
      : name_(name), dim_(dim), nlist_(nlist), training_(t), enc_(std::move(encoding)),
        lists_(nlist, enc_.width(), interleave) {
    if (dim == 0) throw invalid_argument(name_ + ": dimension must be at least 1, got 0");
    if (nlist == 0) throw invalid_argument(name_ + ": nlist must be at least 1, got 0");
  }

  std::size_t dim() const { return dim_; }
  std::size_t nlist() const { return nlist_; }
  std::size_t size() const { return slots_.live(); }
  bool trained() const { return coarse_.trained() && enc_.trained(); }
  const quantizer& coarse() const { return coarse_; }
  const Encoding& encoding() const { return enc_; }
  const slot_directory& slots() const { return slots_; }
  label_t label(slot_t s) const { return slots_.label(s); }
  std::size_t list_size(std::size_t l) const { return lists_.size(l); }

  memory_usage memory() const {
    return {lists_.memory_bytes(), enc_.vector_bytes(),
            coarse_.memory_bytes() + enc_.quantizer_bytes() + drift_.memory_bytes(), slots_.memory_bytes()};
  }
  const ivf::drift& drift() const { return drift_; }

  /// Throws invalid_argument unless trained: "<name>::<what>: the index is not trained; ...".
  void require_trained(const char* what) const {
    if (!trained())
      throw invalid_argument(name_ + "::" + what + ": the index is not trained; call train(sample) or build(data)");
  }

  /// Rows in stored form: normalised copies under cosine (in `copy`), else the rows themselves.
  static matrix_view<const float> stored_form(matrix_view<const float> rows, matrix<float>& copy) {
    if constexpr (!Metric::normalizes) {
      return rows;
    } else {
      copy = matrix<float>(rows.rows(), rows.cols());
      store_rows<Metric>(rows, copy.view().data());
      return copy.view();
    }
  }

  // ---- training ----

  /// The rows build trains on, in stored form: train_size of them (0 = 256
  /// per list, as k-means would sample anyway), a random subset (the
  /// training seed's) in data order when fewer than all; one copy of each
  /// repeated row. Throws invalid_argument when fewer than nlist rows would remain.
  matrix<float> training_sample(matrix_view<const float> data, std::size_t train_size) const {
    const std::size_t n = training_rows(data.rows(), train_size == 0 ? 256 * nlist_ : train_size);
    matrix<float> sample(n, dim_);
    random_generator rng(training_.seed);  // as the benchmark's FAISS peers draw theirs: the same rows
    const auto rows = n < data.rows() ? random_subset(data.rows(), n, rng) : std::vector<std::size_t>{};
    for (std::size_t i = 0; i < n; ++i)
      store_rows<Metric>(data.rows_slice(rows.empty() ? i : rows[i], 1), sample.view().row_ptr(i));
    // One copy of each value trains: k-means would otherwise spend lists on
    // pulling centroids toward a vector repeated hundreds of times.
    const std::vector<std::size_t> distinct = distinct_rows(sample.view());
    if (distinct.size() == n || distinct.size() < nlist_) return sample;
    matrix<float> unique(distinct.size(), dim_);
    for (std::size_t i = 0; i < distinct.size(); ++i) std::copy_n(sample.row_ptr(distinct[i]), dim_, unique.row_ptr(i));
    return unique;
  }

  /// Trains the coarse quantizer (k-means over every row of the stored-form
  /// `sample`) and then the encoding, into
  /// temporaries, and installs both. Throws invalid_argument if a vector was
  /// ever added (removed ones leave slots assigned to the old lists), on
  /// fewer rows than nlist, and what the encoding's training throws; a throw
  /// changes nothing.
  void train(matrix_view<const float> sample, std::size_t threads) {
    refuse_if_view("train");
    if (slots_.slots() != 0)
      throw invalid_argument(name_ + "::train: the index holds (or held) vectors assigned to its "
                                     "current centroids; train a new, empty index");
    check::dimension("training data", sample.cols(), dim_);
    training_rows(sample.rows(), sample.rows());  // enough rows, or a clear error
    kmeans_params p;
    p.iterations = training_.kmeans_iterations;
    p.seed = training_.seed;
    p.threads = threads;
    p.max_points_per_centroid = (sample.rows() + nlist_ - 1) / nlist_;  // the caller chose the sample: all of it
    quantizer coarse;
    coarse.train(sample, nlist_, p);
    Encoding enc = enc_.trained_on(sample, coarse, threads);
    ivf::drift d = drift_at_training(sample, coarse, enc, threads);
    coarse_ = std::move(coarse);  // cannot throw
    enc_ = std::move(enc);
    drift_ = std::move(d);
  }

  // ---- changes ----

  /// Adds validated rows with labels (empty = continuing row numbers),
  /// reusing freed slots first. Throws invalid_argument (untrained, labels),
  /// capacity_error, std::bad_alloc; then nothing changed.
  void add(matrix_view<const float> data, std::span<const label_t> labels, std::size_t threads) {
    refuse_if_view("add");
    require_trained("add");
    slots_.check_new(data.rows(), labels);
    if (data.rows() == 0) return;
    matrix<float> copy;
    const matrix_view<const float> rows = stored_form(data, copy);
    const std::vector<std::uint32_t> to = coarse_.assign(rows, threads);
    const std::vector<slot_t> slots = slots_.plan(rows.rows());
    const auto batch = enc_.encode(rows, to, coarse_, threads);
    const drift_batch measured = measure(rows, to, batch);
    // Everything that allocates, before the first change.
    std::vector<std::size_t> per_list(nlist_);
    for (const std::uint32_t l : to) ++per_list[l];
    lists_.reserve(per_list);
    enc_.reserve(std::size_t(*std::max_element(slots.begin(), slots.end())) + 1);
    std::vector<entry_type> staged(interleave > 1 ? lists_.width() : 0);  // an interleaved entry, written whole
    slots_.commit(rows.rows(), labels);  // may throw bad_alloc: then it recorded nothing
    for (std::size_t i = 0; i < rows.rows(); ++i) write(batch, i, to[i], slots[i], staged.data());
    note(measured);
  }

  /// Removes `label`; its slot is reused by later adds. Throws
  /// invalid_argument (unknown label) or std::bad_alloc, changing nothing.
  void remove(label_t label) {
    refuse_if_view("remove");
    const slot_t s = slots_.release(label, (name_ + "::remove").c_str());
    lists_.erase(s);  // cannot throw
  }

  /// Replaces the vector of `label` (validated): the entry moves to the
  /// vector's list. Room in that list is made first, so a throw
  /// (invalid_argument for an unknown label, std::bad_alloc) changes nothing.
  void update(label_t label, std::span<const float> vector) {
    refuse_if_view("update");
    const slot_t s = slots_.slot_of(label, (name_ + "::update").c_str());
    matrix<float> copy;
    const matrix_view<const float> row = stored_form({vector.data(), 1, dim_, dim_}, copy);
    const std::vector<std::uint32_t> to = coarse_.assign(row, 1);
    const auto batch = enc_.encode(row, to, coarse_, 1);
    const drift_batch measured = measure(row, to, batch);  // the new vector counts as arrived since training
    std::vector<std::size_t> per_list(nlist_);
    per_list[to[0]] = 1;
    lists_.reserve(per_list);
    std::vector<entry_type> staged(interleave > 1 ? lists_.width() : 0);
    lists_.erase(s);  // cannot throw from here on
    write(batch, 0, to[0], s, staged.data());
    note(measured);
  }

  /// The vector slot s (live) stands for (see the encoding's decode). Finds
  /// the slot's entry by scanning the slot arrays: about a millisecond per
  /// million vectors, as remove.
  void copy_vector(slot_t s, float* out) const {
    const auto at = lists_.find(s);
    if constexpr (interleave == 1) {
      enc_.decode(lists_.entries(at->list) + at->index * lists_.width(), at->list, s, coarse_, out);
    } else {
      std::vector<entry_type> entry(lists_.width());
      lists_.copy_entry(at->list, at->index, entry.data());
      enc_.decode(entry.data(), at->list, s, coarse_, out);
    }
  }

  // ---- search ----

  /// Throws invalid_argument unless a search with `nprobe` can run: trained, nprobe >= 1.
  void check_searchable(std::size_t nprobe) const {
    require_trained("search");
    if (nprobe == 0) throw invalid_argument(name_ + "::search: nprobe must be at least 1, got 0");
  }

  /// Probes the min(nprobe, nlist) lists that suit q (prepared: dim floats,
  /// normalised under cosine) and ranks their entries that pass `keep` into
  /// `pool` (k = pool.size()); returns how many, closest first, with slots
  /// as labels. Allocates nothing once the thread is warm.
  template <class Keep>
  std::size_t search(const float* q, std::size_t nprobe, std::span<neighbor> pool, const Keep& keep) const {
    scratch_lease<typename quantizer::probe_scratch> sc;
    coarse_.probe(q, std::min(nprobe, nlist_), *sc);
    return scan(q, {sc->lists, sc->list_keys.data()}, pool, keep);
  }

  /// Every row of `queries` (validated; k served, >= 1): probes for all of
  /// them in one GEMM pass, then rank(q, probed, out_row) -> count for each
  /// row on `threads` workers (q prepared; out_row holds k).
  template <class Rank>
  result_matrix search_batch(matrix_view<const float> queries, std::size_t nprobe, std::size_t k,
                             std::size_t threads, const Rank& rank) const {
    nprobe = std::min(nprobe, nlist_);
    result_matrix out(queries.rows(), k);
    matrix<float> copy;
    const matrix_view<const float> q = stored_form(queries, copy);
    std::vector<std::uint32_t> lists(q.rows() * nprobe);
    std::vector<float> keys(q.rows() * nprobe);
    coarse_.probe_batch(q, nprobe, lists.data(), keys.data(), threads);
    parallel_for(q.rows(), threads, [&](std::size_t i, std::size_t) {
      const probed p{{lists.data() + i * nprobe, nprobe}, keys.data() + i * nprobe};
      out.set_count(i, rank(q.row_ptr(i), p, out.row_storage(i)));
    });
    return out;
  }

  /// The list loop: ranks the entries of the probed lists that pass `keep`
  /// into `pool` (k = pool.size()) by the encoding's distance; returns how
  /// many, closest first, with slots as labels.
  template <class Keep>
  std::size_t scan(const float* q, probed p, std::span<neighbor> pool, const Keep& keep) const {
    auto scanner = enc_.scanner(q, coarse_);
    const std::size_t width = lists_.width();
    topk_heap heap(pool, pool.size());
    float threshold = heap.threshold();
    for (std::size_t r = 0; r < p.lists.size(); ++r) {
      const std::uint32_t l = p.lists[r];
      scanner.enter(l, p.keys[r]);
      const entry_type* e = lists_.entries(l);
      const slot_t* slots = lists_.slots(l);
      const std::size_t n = lists_.size(l);
      if constexpr (requires { scanner.list(e, slots, n); }) {  // the whole list at once (fast scan)
        if (n == 0) continue;
        const float* dist = scanner.list(e, slots, n);
        for (std::size_t i = 0; i < n; ++i) {
          if constexpr (!std::is_same_v<Keep, accept_all>)
            if (!keep(slots_.label(slots[i]))) continue;
          if (dist[i] <= threshold && heap.push(slots[i], dist[i])) threshold = heap.threshold();
        }
      } else {
        for (std::size_t i = 0; i < n; ++i, e += width) {
          if constexpr (!std::is_same_v<Keep, accept_all>)
            if (!keep(slots_.label(slots[i]))) continue;
          const float d = scanner(e);
          if (d <= threshold && heap.push(slots[i], d)) threshold = heap.threshold();
        }
      }
    }
    return heap.sort();
  }

  // ---- health (index/health.hpp) ----

  /// The inverted file's figures and findings, O(nlist). Figures:
  ///   lists, largest_list, mean_list, empty_lists    list sizes (vectors)
  ///   scan_cost_ratio        nlist sum s_i^2 / (sum s_i)^2 over list sizes s_i: a
  ///                          query probes a list about as often as a vector lies in
  ///                          it (queries follow the data), so the vectors a probe
  ///                          scans average sum s_i^2 / sum s_i, against sum s_i /
  ///                          nlist for equal lists; 1 = balanced
  ///   scan_cost_ratio_train  the same over the training rows' lists at training
  ///   added_since_training   rows added (and updated) since training
  ///   error_train, error_added, error_ratio
  ///                          mean squared distance to the assigned centroid: of the
  ///                          training rows, of the rows added since; added / train
  ///   <code_error_name>_train, _added, _ratio   the same for the encoding's
  ///                          reconstruction error (ivf_pq: "pq_error", of the residual)
  ///   largest_lists          k = max(1, nlist / 10): the lists largest at training
  ///   largest_lists_train_share, largest_lists_added_share
  ///                          the share of the training rows, of the rows added since,
  ///                          that went to those k lists; crowding_ratio: added / train
  /// Unknown figures (a file from before drift was saved) are NaN.
  void health(health_report& r) const {
    using health_detail::fmt;
    if (!trained()) {
      r.flag("not trained", "train(sample) or build(data)");
      return;
    }
    std::vector<std::size_t> sizes(nlist_);
    std::size_t total = 0, largest = 0, empty = 0;
    for (std::size_t l = 0; l < nlist_; ++l) {
      sizes[l] = lists_.size(l);
      total += sizes[l];
      largest = std::max(largest, sizes[l]);
      empty += sizes[l] == 0;
    }
    const double unknown = ivf::drift::unknown, cost = scan_cost_ratio(sizes);
    const double cost_train = drift_.known() ? scan_cost_ratio(drift_.train_lists) : unknown;
    const double added = double(drift_.added);
    const double error_added = drift_.added ? drift_.added_error / added : unknown;
    const double error_ratio = error_added / drift_.train_error;  // NaN when either is
    const double share_train = drift_.known() ? drift_.training_share_of_largest() : unknown;
    const double share_added = drift_.known() && drift_.added ? double(drift_.added_to_largest) / added : unknown;
    const double crowding = share_added / share_train;
    r.add_figure("lists", double(nlist_), "");
    r.add_figure("largest_list", double(largest), "vectors");
    r.add_figure("mean_list", double(total) / double(nlist_), "vectors");
    r.add_figure("empty_lists", double(empty), "lists");
    r.add_figure("scan_cost_ratio", cost, "x a balanced index's scan per probe");
    r.add_figure("scan_cost_ratio_train", cost_train, "x balanced, the training rows' lists");
    r.add_figure("added_since_training", added, "vectors (adds and updates; removals not taken back)");
    r.add_figure("error_train", drift_.train_error, "mean squared distance to the centroid, training rows");
    r.add_figure("error_added", error_added, "the same, rows added since training");
    r.add_figure("error_ratio", error_ratio, "added / training");
    double code_ratio = unknown;
    std::string code_name;
    if constexpr (requires { Encoding::code_error_name; }) {
      code_name = std::string(Encoding::code_error_name);
      const double code_added = drift_.added ? drift_.added_code_error / added : unknown;
      code_ratio = code_added / drift_.train_code_error;
      r.add_figure(code_name + "_train", drift_.train_code_error, "mean reconstruction error, training rows");
      r.add_figure(code_name + "_added", code_added, "the same, rows added since training");
      r.add_figure(code_name + "_ratio", code_ratio, "added / training");
    }
    r.add_figure("largest_lists", double(ivf::drift::largest_count(nlist_)), "lists: the largest tenth at training");
    r.add_figure("largest_lists_train_share", share_train, "of training rows went to them");
    r.add_figure("largest_lists_added_share", share_added, "of rows added since training went to them");
    r.add_figure("crowding_ratio", crowding, "added share / training share");

    const std::string remedy = "retrain (rebuild)";
    // Lists as unbalanced as at training are the data's own clusters, which
    // retraining would find again: only a rise since training is drift.
    const bool inherent = !std::isnan(cost_train) && cost <= 1.25 * cost_train;
    if (cost > health_limits::scan_cost)
      r.flag("lists unbalanced: scan cost " + fmt("%.1fx", cost) + " balanced" +
                 (std::isnan(cost_train) ? "" : fmt(" (%.1fx at training)", cost_train)),
             inherent ? "as at training, so the data's own: more lists or a larger nprobe (retraining finds them again)"
                      : remedy);
    if (drift_.added < health_limits::min_added) return;
    if (error_ratio > health_limits::error_ratio)
      r.flag("adds since training quantise " + fmt("%.1fx", error_ratio) + " worse than the training set", remedy);
    if (code_ratio > health_limits::error_ratio)
      r.flag("adds since training encode " + fmt("%.1fx", code_ratio) + " worse than the training set (" +
                 code_name + ")",
             remedy);
    if (crowding > health_limits::crowding_ratio)
      r.flag(health_detail::percent(share_added) + " of adds since training went to the largest tenth of lists (" +
                 health_detail::percent(share_train) + " of the training set)",
             remedy);
  }

  /// What a fresh build of the live vectors would hold: each live vector's
  /// entry and slot in lists sized exactly, the encoding's per-slot data and
  /// the label map scaled to the live share of the slots, the quantizers as
  /// they are.
  std::size_t memory_needed() const {
    const double live = double(size()), slots = double(std::max<std::size_t>(slots_.slots(), 1));
    return std::size_t(live * double(lists_.width() * sizeof(entry_type) + sizeof(slot_t)) +
                       double(enc_.vector_bytes() + slots_.memory_bytes()) * live / slots +
                       double(coarse_.memory_bytes() + enc_.quantizer_bytes() + drift_.memory_bytes()));
  }

  // ---- saved form (see the header comment) ----

  void save(serial::writer& w) const {
    w.section("ivf", serial::record()
                         .set("nlist", nlist_)
                         .set("kmeans_iterations", training_.kmeans_iterations)
                         .set("seed", training_.seed)
                         .set("trained", trained() ? 1 : 0));
    coarse_.save(w, "ivf.centroids");
    enc_.save(w, slots_.slots());
    slots_.save(w);
    lists_.save(w);
    if (trained() && drift_.known()) {
      w.section("ivf.drift", serial::record()
                                 .set_double("train_error", drift_.train_error)
                                 .set_double("train_code_error", drift_.train_code_error)
                                 .set("added", drift_.added)
                                 .set_double("added_error", drift_.added_error)
                                 .set_double("added_code_error", drift_.added_code_error)
                                 .set("added_to_largest", drift_.added_to_largest));
      w.section("ivf.drift_lists", std::span<const std::uint32_t>(drift_.train_lists));
    }
  }

  /// The inverted file a file saved (header dimension), named `name` in
  /// messages; a view (r.viewing()) reads the entries in place and refuses
  /// every change. Throws format_error naming the section at fault: an
  /// untrained file with vectors, a count or id that disagrees with the others.
  static inverted_file load(serial::reader& r, std::string_view name) {
    const auto rec = r.fields("ivf");
    const std::size_t dim = r.header().dim;
    const std::size_t nlist = rec.u64_in("nlist", 1, std::numeric_limits<std::uint32_t>::max());
    const bool trained = rec.u64_in("trained", 0, 1) == 1;
    // Iterations bound a later train's time: a file asking for more than 2^20 is damaged.
    const training t{rec.u64_in("kmeans_iterations", 0, std::uint64_t{1} << 20), rec.u64("seed")};
    slot_directory dir = slot_directory::load(r);
    if (dir.retired() != 0) r.fail("slots", "an inverted file frees removed slots at once, but the file retires some");
    if (!trained && dir.slots() != 0)
      r.fail("ivf", "the index is untrained but has held " + std::to_string(dir.slots()) + " vectors");
    quantizer coarse = quantizer::load(r, "ivf.centroids", trained, nlist, dim);
    Encoding enc = Encoding::load(r, dim, trained, dir.slots());
    inverted_lists<entry_type> lists = inverted_lists<entry_type>::load(
        r, nlist, enc.width(), interleave, dir, enc.entries_steer(),
        [&](std::span<const entry_type> entries) { return enc.entry_error(entries); });
    ivf::drift d = load_drift(r, trained, nlist);
    if constexpr (requires { enc.loaded(lists, coarse); }) enc.loaded(lists, coarse);
    inverted_file f(name, dim, nlist, t, std::move(enc));  // nlist lists: checked against the file above
    f.coarse_ = std::move(coarse);
    f.slots_ = std::move(dir);
    f.lists_ = std::move(lists);
    f.drift_ = std::move(d);
    return f;
  }

 private:
  static_assert(std::is_nothrow_move_assignable_v<quantizer> && std::is_nothrow_move_assignable_v<Encoding> &&
                    std::is_nothrow_move_assignable_v<ivf::drift>,
                "train installs its results with moves that cannot throw");

  // Row i of an encoded batch into list l as slot s's entry (room made):
  // written in place, or (interleaved lists) into `staged` (width() values)
  // and put whole. Cannot throw.
  void write(const typename Encoding::batch& batch, std::size_t i, std::uint32_t l, slot_t s,
             entry_type* staged) noexcept {
    if constexpr (interleave == 1) {
      enc_.write(batch, i, s, lists_.append(l, s));
    } else {
      enc_.write(batch, i, s, staged);
      lists_.put(l, s, staged);
    }
  }

  // Every change refuses on a view (the base refuses add, remove and update
  // first, with the file's name; train only here).
  void refuse_if_view(const char* what) const {
    if (lists_.borrowed())
      throw read_only_error(name_ + "::" + what + ": this index is a read-only view of a file; load() the file " +
                            "for an index that can change");
  }

  // The drift a file saved (optional sections, see the header comment), or
  // an unknown one. Throws format_error on counts that contradict each other
  // or errors that are negative or infinite.
  static ivf::drift load_drift(serial::reader& r, bool trained, std::size_t nlist) {
    ivf::drift d;
    if (!r.has("ivf.drift") && !r.has("ivf.drift_lists")) return d;
    if (!trained) r.fail("ivf.drift", "drift statistics in a file whose index is untrained");
    const auto rec = r.fields("ivf.drift");
    const auto lists = r.structure_array<std::uint32_t>("ivf.drift_lists", nlist);
    const auto error = [&](std::string_view key, bool may_be_unknown) {
      const double v = rec.f64(key);
      if (std::isnan(v) ? !may_be_unknown : !(v >= 0 && v < std::numeric_limits<double>::infinity()))
        r.fail("ivf.drift", "field '" + std::string(key) + "' is not an error (a finite value >= 0)");
      return v;
    };
    d.train_error = error("train_error", false);
    d.train_code_error = error("train_code_error", true);
    d.added = rec.u64("added");
    d.added_error = error("added_error", false);
    d.added_code_error = error("added_code_error", false);
    d.added_to_largest = rec.u64_in("added_to_largest", 0, d.added);
    std::uint64_t rows = 0;
    for (const std::uint32_t c : lists) rows += c;
    if (rows == 0) r.fail("ivf.drift_lists", "no training rows in any list");
    d.train_lists.assign(lists.begin(), lists.end());
    d.mark_largest();
    return d;
  }

  // The drift of a training: the sample's distances to their centroids and
  // its rows per list (one more assignment pass over the sample), the
  // encoding's training error. Throws std::bad_alloc.
  ivf::drift drift_at_training(matrix_view<const float> sample, const quantizer& coarse, const Encoding& enc,
                               std::size_t threads) const {
    ivf::drift d;
    const std::vector<std::uint32_t> to = coarse.assign(sample, threads);
    d.train_lists.assign(nlist_, 0);
    std::vector<float> c(dim_);
    double sum = 0;
    for (std::size_t i = 0; i < sample.rows(); ++i) {
      ++d.train_lists[to[i]];
      coarse.centroid(to[i], c.data());
      sum += kernels::l2sq(sample.row_ptr(i), c.data(), dim_);
    }
    d.train_error = sum / double(sample.rows());
    if constexpr (requires { enc.training_code_error(); }) d.train_code_error = enc.training_code_error();
    d.mark_largest();
    return d;
  }

  // An add's drift counters, before it commits: each row's distance to the
  // centroid its assignment chose (O(d) a row), whether that list was among
  // the largest at training, the encoding's reconstruction errors. Throws std::bad_alloc.
  drift_batch measure(matrix_view<const float> rows, std::span<const std::uint32_t> to,
                      const typename Encoding::batch& batch) const {
    drift_batch b;
    b.rows = rows.rows();
    std::vector<float> c(dim_);
    for (std::size_t i = 0; i < rows.rows(); ++i) {
      coarse_.centroid(to[i], c.data());
      b.error += kernels::l2sq(rows.row_ptr(i), c.data(), dim_);
      if (drift_.known()) b.to_largest += drift_.largest[to[i]];
    }
    if constexpr (requires { enc_.code_error(batch); }) b.code_error = enc_.code_error(batch);
    return b;
  }
  void note(const drift_batch& b) noexcept {
    drift_.added += b.rows;
    drift_.added_error += b.error;
    drift_.added_code_error += b.code_error;
    drift_.added_to_largest += b.to_largest;
  }

  // n rows to train on, of `available`: at least one per list.
  std::size_t training_rows(std::size_t available, std::size_t want) const {
    const std::size_t n = std::min(available, want);
    if (n < nlist_)
      throw invalid_argument(name_ + ": " + std::to_string(n) + " training vectors for nlist = " +
                             std::to_string(nlist_) + " lists; need at least one per list (lower nlist)");
    return n;
  }

  std::string name_;
  std::size_t dim_, nlist_;
  training training_;
  Encoding enc_;
  quantizer coarse_;
  slot_directory slots_;
  inverted_lists<entry_type> lists_;
  ivf::drift drift_;
};

}  // namespace annulus::ivf
