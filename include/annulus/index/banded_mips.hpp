// banded_mips_index: maximum-inner-product search (MIPS) that holds on any
// spread of norms, by norm augmentation within norm bands (Yan et al.,
// "Norm-ranging LSH for maximum inner product search", NeurIPS 2018, applied
// to graphs).
//
//   auto idx = annulus::banded_mips_index<>::build(items, {.inner = {.m = 16}});
//   auto hits = idx.search(user, 10, {.ef = 64});      // largest <user, item> first
//   float dot = annulus::similarity<annulus::inner_product>(hits[0].distance);
//
// Why: norm augmentation (index/mips.hpp) maps MIPS to l2 with one M, the
// largest norm. Where norms spread widely, the appended coordinate
// sqrt(M^2 - |v|^2) dominates the short vectors and the l2 graph navigates
// badly (recall@10 <= 0.70 at any ef on annulus-bench's default set, norms
// spread 8x). A graph over inner product itself (hnsw_index<inner_product>)
// fails the other way on data like Fashion-MNIST (<= 0.64): its hubs, the
// long vectors, swallow the walk. Here the items are split by norm into
// bands whose largest / smallest norm is at most band_ratio (1.25),
// and each band is a mips_index<Inner> with its own M, the band's largest
// norm: within a band the appended coordinate varies little, so the l2
// graph sees angles.
//
// A search visits the bands from the longest norms down, each with the same
// search_params and k, keeping the k best inner products; it stops at the
// first band whose bound |q| x M_b (Cauchy-Schwarz: no item of the band has
// a larger inner product) cannot beat the k-th found. On both data sets
// above a query visits about two bands on average (2.1 to 2.4), so a search
// costs about two graph searches over a band (docs/benchmarks.md); where
// norms bunch near one value it visits most bands.
//
// Bands: fixed by build (or by the first add to an empty index) from that
// data's norms (mips::norm_band_bounds, transform/mips.hpp): sorted longest
// first, a band takes items while their norm is at least its first norm /
// band_ratio, and at least min_band_size items (so no band is a handful);
// a remainder under half of min_band_size joins the last band; at most
// max_bands bands (min_band_size grows to n / max_bands).
// Band b holds the norms in (M_{b+1}, M_b], the last band down to 0; M_0 =
// norm_headroom x the largest norm. A later add goes to the band whose range
// holds its norm; a norm above M_0 throws capacity_error (rebuild with more
// headroom). An update that moves a vector across bands adds it to the new
// band first, then removes it from the old one.
//
// Results carry distance = -<q, v>, as inner_product's (recovered from each
// band's l2 distance: index/mips.hpp says how exactly). Labels are the
// users' across bands.
//
// Failure: every call validates first (rows, labels against every band,
// norms against M_0). A call that changes one band (remove, an update within
// a band, an add whose rows all fall in one band) is that band's call:
// all-or-nothing, out of memory included. An add reaching several bands adds
// band by band; when a later band throws (out of memory), the rows added to
// the earlier ones are removed again and the exception rethrown: size and
// labels are as before, but those bands' graph links are not restored (a
// narrow search may answer slightly differently), and the removal itself
// allocates a little, so with memory still exhausted those rows can stay
// (as sharded_index). A cross-band update is an add and a removal, undone
// the same way. Closing this needs a two-phase add (allocate in every band,
// then link), which the inner indexes do not offer yet.
//
// Memory: the bands' (Inner's, over dim + 1 floats a vector), and a
// per-thread buffer of k results. Threads: const calls from many threads;
// add, remove and update run one at a time, beside searches where Inner
// allows (hnsw). The bands are fixed once set: the first add to an empty
// index publishes them, and a search racing it sees an empty index or all.
// During a cross-band update a search may meet the label in both bands; it
// returns it once (the closer).
//
// File (kind "banded_mips"): record "banded_mips" (the parameters, the band
// count, the labels handed out so far), "banded_mips.bounds" (M_b per band,
// doubles), and per band "banded_mips.band.<b>", that band's whole
// mips_index file, read in place by a view.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/labels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/scratch.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/base.hpp"
#include "annulus/index/health.hpp"
#include "annulus/index/hnsw.hpp"
#include "annulus/index/mips.hpp"
#include "annulus/transform/mips.hpp"

namespace annulus {

/// MIPS over norm bands, each a mips_index<Inner> (see the top of this file).
template <class Inner = hnsw_index<l2>>
  requires std::is_same_v<typename Inner::metric_type, l2>
class banded_mips_index : public index_base<banded_mips_index<Inner>, inner_product> {
  using base = index_base<banded_mips_index<Inner>, inner_product>;
  friend base;

 public:
  static constexpr std::string_view index_name = "banded_mips_index";
  static constexpr std::string_view file_kind = "banded_mips";
  static constexpr bool viewable = mips_index<Inner>::viewable;
  static constexpr std::size_t max_bands = mips::max_bands;
  using band_type = mips_index<Inner>;
  /// Every band is searched with these (Inner's own: ef for hnsw).
  using search_params = typename Inner::search_params;
  struct build_params {
    typename Inner::build_params inner{};  ///< every band's inner index parameters
    /// Largest / smallest norm within a band, > 1. Smaller: more bands, each
    /// closer to one norm (recall at a given ef up, QPS down).
    double band_ratio = mips::default_band_ratio;
    /// Items a band takes at least (>= 1); see the top of this file.
    std::size_t min_band_size = mips::default_min_band_size;
    /// M_0 = norm_headroom x the largest norm of the first batch, >= 1: room
    /// for longer vectors added later.
    double norm_headroom = 1.0;
  };

  /// Empty index for `dim`-dimensional vectors, its bands not set yet (the
  /// first add sets them). Throws invalid_argument on dim 0 or bad params.
  explicit banded_mips_index(std::size_t dim, const build_params& params = {})
      : dim_(checked_dim(dim)), params_(checked(params)) {}

  banded_mips_index(banded_mips_index&& o) noexcept
      : base(std::move(o)), dim_(o.dim_), params_(o.params_), bands_(std::move(o.bands_)),
        bounds_(std::move(o.bounds_)), band_count_(o.band_count_.load()), added_(o.added_) {}
  banded_mips_index& operator=(banded_mips_index&& o) noexcept {
    base::operator=(std::move(o));
    dim_ = o.dim_;
    params_ = o.params_;
    bands_ = std::move(o.bands_);
    bounds_ = std::move(o.bounds_);
    band_count_.store(o.band_count_.load());
    added_ = o.added_;
    return *this;
  }

  std::size_t dim() const { return dim_; }
  std::size_t size() const {
    std::size_t n = 0;
    for (const band_type& b : bands()) n += b.size();
    return n;
  }
  std::size_t memory_bytes() const {
    std::size_t n = sizeof(*this) + bounds_.capacity() * sizeof(double) + bands_.capacity() * sizeof(band_type);
    for (const band_type& b : bands()) n += b.memory_bytes();
    return n;
  }

  /// M_0, the largest norm the index holds (0 before the first build or add).
  double max_norm() const { return band_count() ? bounds_.front() : 0.0; }
  /// Bands (0 until the first build or add).
  std::size_t band_count() const { return band_count_.load(std::memory_order_acquire); }
  /// Band b (0 = the longest norms); throws invalid_argument past band_count().
  const band_type& band(std::size_t b) const { return bands_[checked_band(b, "band")]; }
  /// M_b: the largest norm band b may hold; bands hold (M_{b+1}, M_b].
  double band_bound(std::size_t b) const { return bounds_[checked_band(b, "band_bound")]; }

  bool contains(label_t label) const { return holder(label) != nullptr; }
  /// The vector stored under `label`. Throws invalid_argument for an unknown label.
  std::vector<float> get(label_t label) const { return holding("get", label).get(label); }
  /// Every band's labels, band after band.
  std::vector<label_t> labels() const {
    std::vector<label_t> out;
    for (const band_type& b : bands()) {
      const std::vector<label_t> part = b.labels();
      out.insert(out.end(), part.begin(), part.end());
    }
    return out;
  }

 private:
  // The count first: until it is published, the vectors may be being set.
  std::span<const band_type> bands() const {
    const std::size_t n = band_count();
    return n == 0 ? std::span<const band_type>() : std::span<const band_type>(bands_.data(), n);
  }
  std::span<const double> bands_bounds() const {
    const std::size_t n = band_count();
    return n == 0 ? std::span<const double>() : std::span<const double>(bounds_.data(), n);
  }
  std::size_t checked_band(std::size_t b, const char* call) const {
    return check::part_index(std::string(index_name) + "::" + call, "band", b, band_count());
  }

  static std::size_t checked_dim(std::size_t dim) {
    if (dim == 0) throw invalid_argument(std::string(index_name) + ": dimension must be at least 1, got 0");
    return dim;
  }
  static build_params checked(const build_params& p) {
    if (!(p.band_ratio > 1.0) || !std::isfinite(p.band_ratio))
      throw invalid_argument(std::string(index_name) + ": band_ratio must be finite and > 1, got " +
                             mips::detail::num(p.band_ratio));
    if (p.min_band_size == 0) throw invalid_argument(std::string(index_name) + ": min_band_size must be >= 1, got 0");
    if (!(p.norm_headroom >= 1.0) || !std::isfinite(p.norm_headroom))
      throw invalid_argument(std::string(index_name) + ": norm_headroom must be finite and >= 1, got " +
                             mips::detail::num(p.norm_headroom));
    return p;
  }

  // ---- bands and routing ----

  // Each rounded up (mips::norm_rounded_up): a band whose M is one of them holds that vector.
  static std::vector<double> norms_of(matrix_view<const float> rows) {
    std::vector<double> out(rows.rows());
    for (std::size_t i = 0; i < rows.rows(); ++i) out[i] = mips::norm_rounded_up(mips::detail::norm_sq(rows.row(i)));
    return out;
  }

  // The band whose range (M_{b+1}, M_b] holds `norm`; bounds.size() if above M_0.
  static std::size_t band_of(std::span<const double> bounds, double norm) {
    if (norm > bounds.front()) return bounds.size();
    std::size_t b = 0;
    while (b + 1 < bounds.size() && norm <= bounds[b + 1]) ++b;
    return b;
  }

  const band_type* holder(label_t label) const {
    for (const band_type& b : bands())
      if (b.contains(label)) return &b;
    return nullptr;
  }
  std::size_t band_index(label_t label) const {
    const std::span<const band_type> all = bands();
    for (std::size_t b = 0; b < all.size(); ++b)
      if (all[b].contains(label)) return b;
    return all.size();
  }
  const band_type& holding(const char* call, label_t label) const {
    const band_type* b = holder(label);
    if (!b) throw invalid_argument(unknown_label(call, label));
    return *b;
  }
  static std::string unknown_label(const char* call, label_t label) {
    return std::string(index_name) + "::" + call + ": label " + std::to_string(label) + " is not in the index";
  }

  // Labels given, or the default ones (added_ + i); every one new and distinct.
  std::vector<label_t> new_labels(std::size_t rows, std::span<const label_t> labels) const {
    return new_labels_for_holder(std::string(index_name) + "::add", rows, labels, added_,
                                 [&](label_t l) { return holder(l) != nullptr; });
  }

  // Rows of `data` per band; capacity_error naming the first row above M_0.
  static std::vector<std::vector<std::size_t>> split(const std::vector<double>& norms, std::span<const double> bounds) {
    std::vector<std::vector<std::size_t>> rows(bounds.size());
    for (std::size_t i = 0; i < norms.size(); ++i) {
      const std::size_t b = band_of(bounds, norms[i]);
      if (b == bounds.size())
        throw capacity_error(std::string(index_name) + ": row " + std::to_string(i) + " has norm " +
                             mips::detail::num(norms[i]) + ", above the largest the bands hold, M_0 = " +
                             mips::detail::num(bounds.front()) + ": rebuild with a larger norm_headroom");
      rows[b].push_back(i);
    }
    return rows;
  }

  static typename band_type::build_params band_params(const build_params& p, double bound) {
    typename band_type::build_params bp;
    bp.inner = p.inner;
    bp.max_norm = bound > 0 ? bound : 0;  // an all-zero band: M from its data
    return bp;
  }

  static matrix<float> gathered(matrix_view<const float> data, std::span<const std::size_t> rows) {
    matrix<float> m(rows.size(), data.cols());
    for (std::size_t i = 0; i < rows.size(); ++i) std::copy_n(data.row_ptr(rows[i]), data.cols(), m.row_ptr(i));
    return m;
  }
  static std::vector<label_t> labels_at(std::span<const label_t> all, std::span<const std::size_t> rows) {
    std::vector<label_t> out(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) out[i] = all[rows[i]];
    return out;
  }

  // ---- the base's hooks ----

  static banded_mips_index build_validated(matrix_view<const float> data, std::span<const label_t> labels,
                                           const build_params& params, std::size_t threads) {
    banded_mips_index idx(data.cols(), params);
    idx.add_validated(data, labels, threads);
    return idx;
  }

  // The first batch sets the bands (published last, with band_count_); a
  // later one is routed by norm. Each band's add is all-or-nothing; a later
  // band's failure removes the rows the earlier ones took.
  void add_validated(matrix_view<const float> data, std::span<const label_t> labels, std::size_t threads) {
    if (data.rows() == 0) return;
    const std::lock_guard lock(writer_);
    const std::vector<label_t> all = new_labels(data.rows(), labels);
    const std::vector<double> norms = norms_of(data);
    if (band_count() == 0) {
      std::vector<double> bounds =
          mips::norm_band_bounds(norms, params_.band_ratio, params_.min_band_size, params_.norm_headroom);
      const auto rows = split(norms, bounds);
      std::vector<band_type> bands;
      bands.reserve(bounds.size());
      for (std::size_t b = 0; b < bounds.size(); ++b) {
        const matrix<float> part = gathered(data, rows[b]);
        const std::vector<label_t> part_labels = labels_at(all, rows[b]);
        bands.push_back(band_type::build_with_labels(part.view(), part_labels, band_params(params_, bounds[b]),
                                                     threads));
        bands.back().set_k_policy(k_policy::at_most);
      }
      bands_ = std::move(bands);
      bounds_ = std::move(bounds);
      added_ += data.rows();
      band_count_.store(bounds_.size(), std::memory_order_release);
      return;
    }
    const auto rows = split(norms, bands_bounds());
    std::size_t done = 0;
    try {
      for (; done < rows.size(); ++done) {
        if (rows[done].empty()) continue;
        const matrix<float> part = gathered(data, rows[done]);
        const std::vector<label_t> part_labels = labels_at(all, rows[done]);
        bands_[done].add(part.view(), part_labels, threads);
      }
    } catch (...) {
      for (std::size_t b = 0; b < done; ++b)
        for (const std::size_t i : rows[b]) bands_[b].remove(all[i]);
      throw;
    }
    added_ += data.rows();
  }

  void remove_label(label_t label) {
    const std::lock_guard lock(writer_);
    const std::size_t b = band_index(label);
    if (b == band_count()) throw invalid_argument(unknown_label("remove", label));
    bands_[b].remove(label);
  }

  // Same band: that band's update. Another band: added there first, then
  // removed from the old one (undone if that removal throws).
  void update_validated(label_t label, std::span<const float> vector) {
    const std::lock_guard lock(writer_);
    const std::size_t from = band_index(label);
    if (from == band_count()) throw invalid_argument(unknown_label("update", label));
    const double norm = mips::norm_rounded_up(mips::detail::norm_sq(vector));
    const std::size_t to = band_of(bands_bounds(), norm);
    if (to == band_count())
      throw capacity_error(std::string(index_name) + "::update: the vector has norm " + mips::detail::num(norm) +
                           ", above the largest the bands hold, M_0 = " + mips::detail::num(bounds_.front()) +
                           ": rebuild with a larger norm_headroom");
    if (to == from) return bands_[from].update(label, vector);
    bands_[to].add(vector, label);
    try {
      bands_[from].remove(label);
    } catch (...) {
      bands_[to].remove(label);
      throw;
    }
  }

  // q validated. Bands longest first; stop where |q| M_b cannot beat the k-th.
  template <class Keep>
  std::size_t search_prepared(const float* q, std::size_t k, const search_params& params, std::span<neighbor> out,
                              const Keep& keep) const {
    const std::span<const band_type> all = bands();
    const std::span<const double> bounds = bands_bounds();
    const double qnorm = std::sqrt(mips::detail::norm_sq({q, dim_}));
    scratch_lease<std::vector<neighbor>> lease;  // per thread and nesting depth, reused
    std::vector<neighbor>& found = *lease;
    if (found.size() < k) found.resize(k);
    topk_heap best(out, k);
    std::size_t searched = 0;
    for (std::size_t b = 0; b < all.size(); ++b) {
      if (best.size() == k && float(-qnorm * bounds[b]) >= best.threshold()) break;
      const std::size_t n = base::search_held(all[b], q, k, params, std::span(found).first(k), keep);
      for (std::size_t i = 0; i < n; ++i) best.push(found[i].label, found[i].distance);
      ++searched;
    }
    std::size_t n = best.sort();
    if (searched > 1) n = without_repeats(out.first(n));
    return n;
  }

  // A cross-band update may show one label from two bands: keep the closer
  // (the first, `hits` being sorted closest first).
  static std::size_t without_repeats(std::span<neighbor> hits) {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < hits.size(); ++i) {
      bool seen = false;
      for (std::size_t j = 0; j < kept && !seen; ++j) seen = hits[j].label == hits[i].label;
      if (!seen) hits[kept++] = hits[i];
    }
    return kept;
  }

  // ---- health: the bands' readings summed, their findings forwarded ----

  void add_health(health_report& r) const {
    const std::span<const band_type> all = bands();
    std::size_t removed = 0, live = 0, held = sizeof(*this), needed = sizeof(*this);
    for (std::size_t b = 0; b < all.size(); ++b) {
      const health_report h = all[b].health();
      if (b == 0) r.index += " of " + std::to_string(all.size()) + " bands, each " + h.index;
      live += h.live;
      removed += h.removed_unreclaimed;
      held += h.memory_held;
      needed += h.memory_needed;
      for (const health_finding& f : health_detail::own_findings(h))
        r.findings.push_back({"band " + std::to_string(b) + ": " + f.what, f.remedy});
    }
    r.live = live;
    r.removed_unreclaimed = removed;
    r.memory_held = held;
    r.memory_needed = needed;
    r.add_figure("bands", double(all.size()), "norm bands (band_ratio " + mips::detail::num(params_.band_ratio) + ")");
    if (!all.empty())
      r.add_figure("band_bound_spread", bands_bounds().front() / bands_bounds().back(), "M_0 / M_last");
  }

  // ---- the file ----

  static std::string band_section(std::size_t b) { return "banded_mips.band." + std::to_string(b); }

  void save_sections(serial::writer& w) const {
    const std::span<const band_type> all = bands();
    w.section("banded_mips", serial::record()
                                 .set_double("band_ratio", params_.band_ratio)
                                 .set("min_band_size", params_.min_band_size)
                                 .set_double("norm_headroom", params_.norm_headroom)
                                 .set("bands", all.size())
                                 .set("added", added_));
    w.section("banded_mips.bounds", bands_bounds());
    for (std::size_t b = 0; b < all.size(); ++b) {
      w.begin(band_section(b));
      all[b].write_to([&](std::span<const std::byte> bytes) { w.append(bytes); });
      w.end();
    }
  }

  static banded_mips_index load_sections(serial::reader& r) {
    const auto rec = r.fields("banded_mips");
    build_params p;
    p.band_ratio = rec.finite("band_ratio");
    p.min_band_size = std::size_t(rec.u64_in("min_band_size", 1, std::numeric_limits<std::uint32_t>::max()));
    p.norm_headroom = rec.finite("norm_headroom");
    if (!(p.band_ratio > 1.0) || !(p.norm_headroom >= 1.0))
      r.fail("banded_mips", "band_ratio " + mips::detail::num(p.band_ratio) + ", norm_headroom " +
                                mips::detail::num(p.norm_headroom) + ": expected band_ratio > 1, headroom >= 1");
    const std::size_t count = std::size_t(rec.u64_in("bands", 0, max_bands));
    const std::uint64_t added = rec.u64("added");
    const auto stored = r.structure_array<double>("banded_mips.bounds", count);
    for (std::size_t b = 0; b < count; ++b)
      if (!(stored[b] >= 0) || !std::isfinite(stored[b]) || (b > 0 && !(stored[b] <= stored[b - 1])))
        r.fail("banded_mips.bounds", "bound " + std::to_string(b) + " is " + mips::detail::num(stored[b]) +
                                         ": expected finite, >= 0, not above the one before");
    banded_mips_index idx(r.header().dim, p);
    std::vector<band_type> bands;
    bands.reserve(count);
    std::uint64_t live = 0;
    for (std::size_t b = 0; b < count; ++b) {
      const std::string name = band_section(b);
      serial::reader inner(r.payload(name), r.where(name),
                           r.viewing() ? serial::open_mode::view : serial::open_mode::load);
      bands.push_back(band_type::load_from(inner));
      if (bands.back().dim() != idx.dim_)
        r.fail(name, "a band of dimension " + std::to_string(bands.back().dim()) + ", expected " +
                         std::to_string(idx.dim_));
      bands.back().set_k_policy(k_policy::at_most);
      live += bands.back().size();
    }
    if (live != r.header().count)
      r.fail("banded_mips", "the bands hold " + std::to_string(live) + " vectors, the header says " +
                                std::to_string(r.header().count));
    idx.bands_ = std::move(bands);
    idx.bounds_.assign(stored.begin(), stored.end());
    idx.added_ = added;
    idx.band_count_.store(count, std::memory_order_release);
    return idx;
  }

  std::size_t dim_;
  build_params params_;
  // Set once (first build or add) under writer_, then published by
  // band_count_; never resized after, so searches read them unlocked.
  std::vector<band_type> bands_;
  std::vector<double> bounds_;  // M_b, longest first
  std::atomic<std::size_t> band_count_{0};
  std::uint64_t added_ = 0;  // vectors ever added: the next default label
  std::mutex writer_;        // add, remove, update: one at a time
};

}  // namespace annulus
