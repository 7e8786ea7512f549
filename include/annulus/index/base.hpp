// index_base: the public layer every index inherits, written once.
//
// An index (Derived) supplies only its own steps; the base owns the calls a
// user makes, their input checks and their policies:
//
//   search(query, k, params, out[, keep])   span forms, allocate nothing once warm
//   search(query, k, params = {}[, keep])   std::vector forms
//   search_batch(queries, k, params, threads)
//   range_search(query, radius, params = {}[, keep])
//   build(data, params = {}, threads = 0)    static: empty data refused here
//   build_with_labels(data, labels, params = {}, threads = 0)
//   add(rows, labels = {}, threads = 0), add(vector, label)
//   remove(label), update(label, vector)
//   contains(label), get(label), labels()
//   health()                                 a reading of the index (index/health.hpp)
//   set_k_policy(k_policy)                   what a k above size() does
//   save(path | ostream), load(path | istream), view(path), verify()
//
// What Derived provides (private, befriended as `friend index_base`):
//
//   static constexpr std::string_view index_name          for messages
//   dim(), size() (live vectors), memory_bytes()
//   search_prepared(q, k, params, out, keep) -> count     q: dim() floats, validated and,
//       under cosine, normalised; 1 <= k <= size(); out.size() >= k. Writes at most k
//       results with the users' labels, closest first (finish_labels does the mapping);
//       keep is accept_all for an unfiltered search.
//   optional: build_validated(data, labels, params, threads) -> Derived   static; data is
//             non-empty, validated; labels empty (row numbers) or one a row; without it, build constructs (dim, params), reserves room for
//             every row where the index has reserve(n), and adds
//   add_validated(rows, labels, threads)                 rows validated; all-or-nothing
//   remove_label(label), update_validated(label, vector)  all-or-nothing
//   directory() -> const slot_directory&                 which slot holds which label
//   copy_vector(slot, out)                               the stored form of a live slot
//   optional: check_searchable(params)  throws when no search can run (an untrained IVF,
//             parameters that contradict the build); called before any other check
//   optional: search_batch_prepared(queries, k, params, threads) -> result_matrix
//             a faster batch path (GEMM); queries validated, k served
//   optional: reading_lock() -> a lock held while the base reads directory() and
//             copy_vector(), while it saves and while health() runs the hook below
//             (hnsw, whose writers run beside searches)
//   optional: add_health(health_report&) const   index-specific figures and findings
//             (r.add_figure, r.flag), called by health() under reading_lock() once the
//             common fields are filled; it may correct them (hnsw counts its tombstones,
//             which the directory does not, and estimates memory_needed from its layout).
//             Must not call memory_bytes() or anything else that takes reading_lock().
//   persistence (core/serialize.hpp has the format):
//     static constexpr std::string_view file_kind         the header's index kind
//     static constexpr bool viewable                       true if view() can serve it
//     save_sections(serial::writer&) const                 everything but the header
//     static load_sections(serial::reader&) -> Derived     the reverse, trusting
//             nothing: every count checked against the others (format_error).
//             When r.viewing(), bulk sections are borrowed (stored_array::borrow)
//             and read with payload(), the rest copied.
//
// The base keeps two data members: the k policy (set before the index is
// shared between threads; reading it is not synchronised) and, for a view,
// the file mapping its borrowed sections live in.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <filesystem>
#include <istream>
#include <memory>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/file.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/prepare.hpp"
#include "annulus/core/scratch.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/core/slots.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/health.hpp"

namespace annulus {

/// A predicate over labels: true keeps the item.
template <class P>
concept label_predicate = std::predicate<const P&, label_t>;

/// The predicate that keeps everything: indexes test for this type to skip
/// their filtering work entirely.
struct accept_all {
  constexpr bool operator()(label_t) const { return true; }
};

/// What a search does when k exceeds the live vectors.
enum class k_policy {
  /// Throw invalid_argument (the default): an index smaller than the k a
  /// caller asks for is usually a bug worth seeing (a wrong index, a shard
  /// left empty), and code that reads result k - 1 would read past the end.
  strict,
  /// Return min(k, size()) results (none from an empty index), as FAISS pads
  /// with -1: for services whose index shrinks after removals.
  at_most,
};

template <class Derived, metric Metric>
class index_base {
  // Derived's search and build parameters, named where Derived is complete
  // (at a call): P is only there to delay the lookup.
  template <class D, class>
  struct lazy {
    using search_params = typename D::search_params;
    using build_params = typename D::build_params;
  };
  template <class P>
  using params_t = std::conditional_t<std::is_void_v<P>, typename lazy<Derived, P>::search_params, P>;
  template <class P>
  using build_params_t = std::conditional_t<std::is_void_v<P>, typename lazy<Derived, P>::build_params, P>;

 public:
  using metric_type = Metric;

  // ---- search ----

  /// The k closest stored vectors to `query`, closest first (equal distances
  /// by label), written to `out`; returns how many (k, or fewer where the
  /// index says so: a filter, an approximate search that met fewer, or
  /// k_policy::at_most). `out` must hold the number served: k, or under
  /// at_most min(k, size()). Throws dimension_mismatch, invalid_argument
  /// (k = 0, k > size() under k_policy::strict, out too small, NaN/Inf, a
  /// zero query under cosine, and what the index refuses of its params).
  template <class P = void>
  std::size_t search(std::span<const float> query, std::size_t k, const params_t<P>& params,
                     std::span<neighbor> out) const {
    return search_one(query, k, params, out, accept_all{});
  }
  /// The same over stored vectors whose label passes `keep` (called from the
  /// searching thread, possibly on labels never returned); may return fewer
  /// than k.
  template <label_predicate Keep, class P = void>
  std::size_t search(std::span<const float> query, std::size_t k, const params_t<P>& params,
                     std::span<neighbor> out, const Keep& keep) const {
    return search_one(query, k, params, out, keep);
  }

  /// As the span forms, returning a vector of the results.
  template <class P = void>
  std::vector<neighbor> search(std::span<const float> query, std::size_t k, const params_t<P>& params = {}) const {
    return search_vector(query, k, params, accept_all{});
  }
  template <label_predicate Keep, class P = void>
  std::vector<neighbor> search(std::span<const float> query, std::size_t k, const params_t<P>& params,
                               const Keep& keep) const {
    return search_vector(query, k, params, keep);
  }

  /// Every row of `queries` over `threads` workers (0 = all cores), through
  /// the index's own batch path where it has one (the same results as one
  /// search a row). Throws what search throws, before any work; a bad value
  /// is named by its row.
  template <class P = void>
  result_matrix search_batch(matrix_view<const float> queries, std::size_t k, const params_t<P>& params = {},
                             std::size_t threads = 0) const {
    refuse_unsearchable(params);
    const std::size_t served = served_k(k);
    validate_rows<Metric>("query", queries, dim_of());
    if constexpr (requires { self().search_batch_prepared(queries, served, params, threads); }) {
      if (served != 0 && queries.rows() != 0) return self().search_batch_prepared(queries, served, params, threads);
    }
    result_matrix out(queries.rows(), served);
    if (served == 0) return out;
    parallel_for(queries.rows(), threads, [&](std::size_t i, std::size_t) {
      out.set_count(i, search_one(queries.row(i), served, params, out.row_storage(i), accept_all{}));
    });
    return out;
  }

  /// Every stored vector within `radius` of `query` (distance <= radius in
  /// the metric's distance: squared l2, -<q, v>, 1 - cos), closest first.
  /// Exact for exact indexes; for approximate ones, what their top-k search
  /// finds within the radius. Runs top-k searches with k doubling from 16
  /// until the k-th result lies beyond the radius (or every vector was
  /// returned): a radius that holds r vectors costs about 2r results of
  /// search work. Throws invalid_argument on a NaN radius, and what search throws.
  template <class P = void>
  std::vector<neighbor> range_search(std::span<const float> query, float radius,
                                     const params_t<P>& params = {}) const {
    return range(query, radius, params, accept_all{});
  }
  template <label_predicate Keep, class P = void>
  std::vector<neighbor> range_search(std::span<const float> query, float radius, const params_t<P>& params,
                                     const Keep& keep) const {
    return range(query, radius, params, keep);
  }

  /// Whether a search may use k > size() (see k_policy; default strict).
  void set_k_policy(k_policy p) { k_policy_ = p; }
  k_policy get_k_policy() const { return k_policy_; }

  // ---- build and change ----

  /// An index holding every row of `data` (labels = row numbers), built on
  /// `threads` workers (0 = all cores). Throws invalid_argument on empty
  /// data, NaN/Inf (naming row and column), a zero vector under cosine, a
  /// norm whose distances would overflow, bad parameters; dimension_mismatch
  /// is impossible here (the data sets the dimension).
  template <class P = void>
  static Derived build(matrix_view<const float> data, const build_params_t<P>& params = {},
                       std::size_t threads = 0) {
    return build_labelled(data, {}, params, threads);
  }
  /// The same with row i stored under labels[i] (the user's own ids, as
  /// FAISS's add_with_ids). Throws as build, and invalid_argument when the
  /// label count differs from the row count or a label repeats.
  template <class P = void>
  static Derived build_with_labels(matrix_view<const float> data, std::span<const label_t> labels,
                                   const build_params_t<P>& params = {}, std::size_t threads = 0) {
    if (labels.size() != data.rows())
      throw invalid_argument(std::string(Derived::index_name) + "::build_with_labels: " +
                             std::to_string(labels.size()) + " labels for " + std::to_string(data.rows()) + " rows");
    return build_labelled(data, labels, params, threads);
  }

  /// Adds the rows of `data` with `labels` (empty = continue the row
  /// numbering: the count of vectors ever added), on `threads` workers.
  /// Throws dimension_mismatch, invalid_argument (NaN/Inf, zero vector under
  /// cosine, overflowing norm, label count, a label present or repeated),
  /// capacity_error (more than 2^32 - 1 slots), std::bad_alloc, and what the
  /// index adds (untrained); then the index is as it was. No rows: nothing.
  /// Throws read_only_error on a view (so do remove and update).
  void add(matrix_view<const float> data, std::span<const label_t> labels = {}, std::size_t threads = 0) {
    refuse_if_view("add");
    validate_rows<Metric>("data", data, dim_of());
    self_mut().add_validated(data, labels, threads);
  }
  /// Adds one vector under `label`. Throws as the batch add.
  void add(std::span<const float> vector, label_t label) {
    add(row_view(vector), std::span(&label, 1), 1);
  }

  /// Removes `label`: no search that starts afterwards returns it, and its
  /// room is reused by later adds. Throws invalid_argument (unknown label)
  /// or std::bad_alloc, changing nothing.
  void remove(label_t label) {
    refuse_if_view("remove");
    self_mut().remove_label(label);
  }

  /// Replaces the vector of `label`. Throws invalid_argument (unknown label,
  /// bad values), dimension_mismatch, std::bad_alloc; then the index is as
  /// it was.
  void update(label_t label, std::span<const float> vector) {
    refuse_if_view("update");
    const matrix_view<const float> row = row_view(vector);
    check::dimension("vector", vector.size(), dim_of());
    validate_rows<Metric>("vector", row, dim_of());
    self_mut().update_validated(label, vector);
  }

  // ---- persistence ----

  /// Writes the index to `path` atomically: into a temporary file in the
  /// same directory, fsynced, then renamed over `path` (and the directory
  /// fsynced). A crash or an exception midway leaves whatever file was at
  /// `path` untouched. Safe beside searches; an index whose adds may run
  /// beside searches (hnsw) makes them wait. Throws io_error (no such
  /// directory, no permission, a full disk), std::bad_alloc.
  void save(const std::filesystem::path& path) const {
    atomic_file file(path);
    write_to([&](std::span<const std::byte> b) { file.write(b); });
    file.commit();
  }
  /// The same bytes to a stream the caller owns (its own storage, a
  /// network buffer); not atomic. Throws io_error when the stream fails.
  void save(std::ostream& out) const {
    write_to([&](std::span<const std::byte> b) {
      out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
      if (!out) throw io_error(std::string(Derived::index_name) + "::save: the stream refused the bytes");
    });
  }

  /// The index saved at `path`, in memory of its own: fully mutable,
  /// searching exactly as the saved one did. Reads through a mapping of the
  /// file, checking every checksum. Throws io_error (cannot open) and
  /// format_error naming the file, the section and what was wrong: not an
  /// annulus file, a newer format version, another index kind or metric, a
  /// checksum mismatch, truncation, counts that disagree. Allocates nothing
  /// a size in the file asks for before checking it against the file's size.
  static Derived load(const std::filesystem::path& path) {
    const mapped_file file(path);
    file.expect_sequential();
    serial::reader r(file.bytes(), path.string(), serial::open_mode::load);
    return load_from(r);
  }
  /// The same from the rest of a stream (read whole first).
  static Derived load(std::istream& in) {
    const auto bytes = read_stream(in);
    serial::reader r(bytes, "stream", serial::open_mode::load);
    return load_from(r);
  }

  /// A read-only index served from a read-only mapping of `path`: the bulk
  /// sections (vectors, codes) are read in place, so opening costs
  /// milliseconds whatever the size, pages are read as queries touch them,
  /// and processes viewing one file share one copy in the page cache.
  /// The header, the table and every section that steers memory accesses
  /// (labels, links, lists, parameters) are checked at open; the bulk
  /// sections' checksums only by verify(). add, remove and update throw
  /// read_only_error. Throws as load.
  template <class D = Derived>  // a template, so the constraint is checked at the call, not before Derived is complete
    requires(D::viewable)
  static D view(const std::filesystem::path& path) {
    auto source = std::make_shared<view_source>(path);
    source->file.expect_random();
    serial::reader r(source->file.bytes(), path.string(), serial::open_mode::view);
    D idx = load_from(r);
    source->unverified = r.unverified();
    idx.view_ = std::move(source);
    return idx;
  }

  /// The whole file of this index (header, sections, table, footer), byte
  /// by byte into `sink`: for indexes that hold another inside their own
  /// file (mips_index) and for save(). Takes reading_lock().
  template <class Sink>
  void write_to(Sink&& sink) const {
    [[maybe_unused]] auto lock = read_lock();
    serial::writer w = start_file(std::forward<Sink>(sink));
    self().save_sections(w);
    w.finish();
  }

  /// The index a reader's file holds (what load and view run once the
  /// reader stands): checks the kind, the metric, the base record, and the
  /// header's dimension and count against what Derived loaded.
  static Derived load_from(serial::reader& r) {
    r.expect(Derived::file_kind, Metric::kind);
    const auto base = r.fields("base");
    const auto policy = base.u64_in("k_policy", 0, 1) == 0 ? k_policy::strict : k_policy::at_most;
    Derived idx = Derived::load_sections(r);
    if (idx.dim() != r.header().dim || idx.size() != r.header().count)
      r.fail("the header says " + std::to_string(r.header().count) + " vectors of dimension " +
             std::to_string(r.header().dim) + ", the sections hold " + std::to_string(idx.size()) + " of " +
             std::to_string(idx.dim()));
    idx.k_policy_ = policy;
    return idx;
  }

  /// Whether this index is a read-only view of a file.
  bool read_only() const { return view_ != nullptr; }
  /// A view: checks the checksums of the sections view() did not (reads the
  /// whole file). Throws format_error naming the first damaged section.
  /// Loaded or built indexes were checked already: nothing to do.
  void verify() const {
    if (view_) serial::verify_sections(view_->file.bytes(), view_->unverified, view_->file.path().string());
  }

  // ---- what is stored ----

  /// Whether `label` is in the index (added and not removed).
  bool contains(label_t label) const {
    [[maybe_unused]] auto lock = read_lock();
    return self().directory().find(label).has_value();
  }

  /// A copy of the vector stored under `label`: under cosine the normalised
  /// vector (what the index searches with), under IVF-PQ without kept
  /// vectors the decoded approximation. Throws invalid_argument for an
  /// unknown label.
  std::vector<float> get(label_t label) const {
    std::vector<float> out(dim_of());
    [[maybe_unused]] auto lock = read_lock();
    const slot_t s = self().directory().slot_of(label, (std::string(Derived::index_name) + "::get").c_str());
    self().copy_vector(s, out.data());
    return out;
  }

  /// The labels in the index, in slot order (not the order of adds once
  /// removed slots are reused). O(slots) with a hash lookup each.
  std::vector<label_t> labels() const {
    [[maybe_unused]] auto lock = read_lock();
    const slot_directory& dir = self().directory();
    std::vector<label_t> out;
    out.reserve(dir.live());
    for (std::size_t s = 0; s < dir.slots(); ++s) {
      const label_t l = dir.label(slot_t(s));
      const auto at = dir.find(l);
      if (at && *at == s) out.push_back(l);  // a removed slot keeps a stale label the map no longer names
    }
    return out;
  }

  // ---- health ----

  /// A reading of the index (index/health.hpp): live and removed vectors,
  /// memory held and what a fresh build would need, the index's own figures
  /// (hnsw: reachability, degrees, tombstones on routes; IVF: list balance and
  /// drift since training; sharded: shard balance) and a one-line verdict.
  /// Cost: O(1) for flat, kd_tree, rp_forest and lsh; O(nlist) for IVF; for
  /// hnsw one walk of layer 0, O(n 2m) link reads with a scratch of about 4
  /// bytes a slot (a queue and a visited bitmap), freed on return (tens of
  /// milliseconds per million nodes). Threads: safe beside searches, which
  /// it never blocks; it takes reading_lock() as labels() does, so on hnsw
  /// adds, removes and updates wait for the walk. Throws std::bad_alloc.
  health_report health() const {
    health_report r;
    r.index = std::string(Derived::index_name);
    r.memory_held = self().memory_bytes();  // before the lock: hnsw's memory_bytes() takes it
    [[maybe_unused]] auto lock = read_lock();
    r.live = self().size();
    r.memory_needed = r.memory_held;
    if constexpr (requires { self().directory(); }) {
      const slot_directory& dir = self().directory();
      r.removed_unreclaimed = dir.retired();
      // By default what the index holds per slot ever handed out, for the live ones.
      if (dir.slots() > 0)
        r.memory_needed = std::size_t(double(r.memory_held) * double(r.live) / double(dir.slots()));
    }
    if constexpr (requires { self().add_health(r); }) self().add_health(r);
    health_detail::conclude(r);
    return r;
  }

 protected:
  index_base() = default;

  /// Throws read_only_error naming `call` on a view (for Derived's own
  /// changing calls beyond those here: hnsw's compact).
  void refuse_if_view(const char* call) const {
    if (view_)
      throw read_only_error(std::string(Derived::index_name) + "::" + call + ": this index is a read-only view of " +
                            view_->file.path().string() + "; load() the file for an index that can change");
  }

  /// A writer of this index's file with its header and base record written:
  /// write_to's start, and that of an index whose save writes more than one
  /// file (sharded_index's manifest).
  template <class Sink>
  serial::writer start_file(Sink&& sink) const {
    serial::writer w(std::forward<Sink>(sink),
                     {std::string(Derived::file_kind), Metric::kind, static_cast<std::uint32_t>(dim_of()),
                      self().size()});
    w.section("base", serial::record().set("k_policy", k_policy_ == k_policy::strict ? 0 : 1));
    return w;
  }

  /// For an index that holds others (sharded_index): searches `inner` with
  /// a query this index prepared already (validated, normalised under
  /// cosine: not normalised twice, so the distances are those `inner` gives
  /// its own callers), for min(k, inner.size()) results; out.size() >= k.
  template <class Inner, class Params, class Keep>
  static std::size_t search_held(const Inner& inner, const float* q, std::size_t k, const Params& params,
                                 std::span<neighbor> out, const Keep& keep) {
    return static_cast<const index_base<Inner, typename Inner::metric_type>&>(inner).search_already_prepared(
        q, k, params, out, keep);
  }

  /// For Derived's search: the first n of `out` hold slots; give them their
  /// labels (label_of(slot)) and order equal distances by label.
  template <class LabelOf>
  static std::size_t finish_labels(std::span<neighbor> out, std::size_t n, const LabelOf& label_of) {
    for (std::size_t i = 0; i < n; ++i) out[i].label = label_of(slot_t(out[i].label));
    // Sorted by distance already: one insertion pass fixes tie order (linear when there is none).
    for (std::size_t i = 1; i < n; ++i)
      for (std::size_t j = i; j > 0 && closer(out[j], out[j - 1]); --j) std::swap(out[j], out[j - 1]);
    return n;
  }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
  Derived& self_mut() { return static_cast<Derived&>(*this); }
  std::size_t dim_of() const { return self().dim(); }

  // Derived's reading_lock() where it has one (the hooks' names differ from
  // these, so a missing hook is not found here instead).
  auto read_lock() const {
    if constexpr (requires { self().reading_lock(); })
      return self().reading_lock();
    else
      return 0;
  }

  template <class Params>
  void refuse_unsearchable(const Params& params) const {
    if constexpr (requires { self().check_searchable(params); }) self().check_searchable(params);
  }

  // build's body; labels empty = row numbers.
  template <class Params>
  static Derived build_labelled(matrix_view<const float> data, std::span<const label_t> labels,
                                const Params& params, std::size_t threads) {
    if (data.rows() == 0 || data.cols() == 0)
      throw invalid_argument(std::string(Derived::index_name) + "::build: empty data (" +
                             std::to_string(data.rows()) + " x " + std::to_string(data.cols()) + ")");
    validate_rows<Metric>("data", data, data.cols());
    if constexpr (requires { Derived::build_validated(data, labels, params, threads); }) {
      return Derived::build_validated(data, labels, params, threads);
    } else {  // an index that needs no training: room for every row, then one add
      Derived idx(data.cols(), params);
      if constexpr (requires { idx.reserve(data.rows()); }) idx.reserve(data.rows());
      idx.add_validated(data, labels, threads);
      return idx;
    }
  }

  // k as the policy serves it; throws for k = 0, or above size() when strict.
  std::size_t served_k(std::size_t k) const {
    if (k_policy_ == k_policy::at_most) {
      if (k == 0) check::k_in_range(0, 0);
      return std::min(k, self().size());
    }
    check::k_in_range(k, self().size());
    return k;
  }

  template <class Params, class Keep>
  std::size_t search_one(std::span<const float> query, std::size_t k, const Params& params,
                         std::span<neighbor> out, const Keep& keep) const {
    refuse_unsearchable(params);
    const std::size_t served = served_k(k);
    check::output_size(out.size(), served);
    scratch_lease<std::vector<float>> buffer;
    if (buffer->size() < dim_of()) buffer->resize(dim_of());
    const std::span<const float> q = prepare_query<Metric>(query, dim_of(), *buffer);
    if (served == 0) return 0;
    return self().search_prepared(q.data(), served, params, out.first(served), keep);
  }

  template <class, metric>
  friend class index_base;  // search_held reaches the held index's search_already_prepared

  template <class Params, class Keep>
  std::size_t search_already_prepared(const float* q, std::size_t k, const Params& params, std::span<neighbor> out,
                                      const Keep& keep) const {
    refuse_unsearchable(params);
    k = std::min(k, self().size());
    if (k == 0) return 0;
    return self().search_prepared(q, k, params, out.first(k), keep);
  }

  template <class Params, class Keep>
  std::vector<neighbor> search_vector(std::span<const float> query, std::size_t k, const Params& params,
                                      const Keep& keep) const {
    refuse_unsearchable(params);
    std::vector<neighbor> out(served_k(k));  // k checked before k results are allocated
    out.resize(search_one(query, k, params, std::span<neighbor>(out), keep));
    return out;
  }

  template <class Params, class Keep>
  std::vector<neighbor> range(std::span<const float> query, float radius, const Params& params,
                              const Keep& keep) const {
    if (std::isnan(radius)) throw invalid_argument("range_search: radius is NaN");
    refuse_unsearchable(params);
    const std::size_t n = self().size();
    std::vector<neighbor> out;
    if (n == 0) {  // nothing within any radius; the query is still checked
      scratch_lease<std::vector<float>> buffer;
      buffer->resize(std::max(buffer->size(), dim_of()));
      prepare_query<Metric>(query, dim_of(), *buffer);
      return out;
    }
    for (std::size_t k = std::min<std::size_t>(16, n);; k = std::min(2 * k, n)) {
      out.resize(k);
      out.resize(search_one(query, k, params, std::span<neighbor>(out), keep));
      if (out.size() < k || out.back().distance > radius || k == n) break;
    }
    out.erase(std::find_if(out.begin(), out.end(), [&](const neighbor& x) { return x.distance > radius; }),
              out.end());
    return out;
  }


  // A viewed file and what view() left to verify().
  struct view_source {
    explicit view_source(const std::filesystem::path& path) : file(path) {}
    mapped_file file;
    std::vector<serial::section_entry> unverified;
  };

  k_policy k_policy_ = k_policy::strict;
  std::shared_ptr<const view_source> view_;  // set on views only; shared by copies
};

}  // namespace annulus
