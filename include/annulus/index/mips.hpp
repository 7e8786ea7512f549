// mips_index: maximum-inner-product search (MIPS) through any l2 index, by
// norm augmentation (transform/mips.hpp: store [v ; sqrt(M^2 - |v|^2)],
// search with [q ; 0], and the l2-nearest are the largest inner products).
//
//   auto idx = annulus::mips_index<annulus::hnsw_index<annulus::l2>>::build(items, {.inner = {.m = 16}});
//   auto hits = idx.search(user, 10, {.ef = 64});       // largest <user, item> first
//   float dot = annulus::similarity<annulus::inner_product>(hits[0].distance);
//   idx.remove(label);  idx.update(label, vector);  idx.get(label);
//
// mips_index<Inner> wraps Inner (hnsw_index<l2>, flat_index<l2>,
// ivf_flat_index<l2>, ...; another metric is refused at compile time) and is
// itself an index over inner_product: dim() is the user's dimension, results
// carry distance = -<q,v> as inner_product does. The public calls (search
// forms, batch, range search, k policy) come from index/base.hpp; a search
// augments the query and runs Inner's public search (a filter passes
// through), a batch Inner's batch path (flat's GEMM, say). contains, labels
// and get ask Inner (get drops the augmented coordinate). The dot is
// recovered from the inner index's l2 distance by the algebra above, in
// double: <q,v> = (|q|^2 + M^2 - d) / 2. Its error is the float rounding of
// d, a few units in the last place of |q|^2 + M^2 (not of <q,v>), so a large
// M (headroom) costs digits; items whose dots differ by less than that may
// come back in either order.
//
// M is fixed once, by the first of build, train or add: params.max_norm if
// set, else norm_headroom x the largest norm of that first batch. An add or
// update holding a vector with norm above M throws capacity_error (nothing
// changes: the augmentation has no real last coordinate for it); rebuild with
// more headroom.
//
// Failure: every call either does all it says or throws and changes nothing,
// as Inner's calls do (the wrapper allocates its augmented copy first).
//
// health() forwards the inner index's reading (its figures and findings).
//
// Memory: the inner index's, over dim + 1 floats a vector; the wrapper adds a
// per-thread query buffer (core/scratch.hpp) and, during build, add and a
// batch search, an augmented copy of the rows. Threads: as the inner index
// (const calls safe from many threads; add, remove, update and train
// alongside searches where Inner allows it, as hnsw does; add and train
// serialise on the wrapper).
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/scratch.hpp"
#include "annulus/core/serialize.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/base.hpp"
#include "annulus/index/concepts.hpp"
#include "annulus/index/health.hpp"
#include "annulus/transform/mips.hpp"

namespace annulus {

/// Maximum-inner-product search over an l2 index `Inner` (see the top of this file).
template <class Inner>
  requires std::is_same_v<typename Inner::metric_type, l2>
class mips_index : public index_base<mips_index<Inner>, inner_product> {
  using base = index_base<mips_index<Inner>, inner_product>;
  friend base;

 public:
  static constexpr std::string_view index_name = "mips_index";
  static constexpr std::string_view file_kind = "mips";
  static constexpr bool viewable = requires { requires Inner::viewable; };
  using inner_type = Inner;
  using search_params = typename Inner::search_params;
  struct build_params {
    typename Inner::build_params inner{};  ///< the inner index's own parameters
    /// M = norm_headroom x the largest norm of the first batch (build, train
    /// or add), >= 1: 1 = exactly the largest (best precision), 1.2 leaves 20%
    /// room for larger vectors added later. Ignored when max_norm > 0.
    double norm_headroom = 1.0;
    double max_norm = 0;  ///< M itself, when known up front (0 = from the data as above)
  };

  /// Empty index for `dim`-dimensional user vectors (the inner index holds
  /// dim + 1). Throws invalid_argument on dim 0, norm_headroom < 1 or a
  /// negative or non-finite max_norm, and what Inner's constructor throws.
  explicit mips_index(std::size_t dim, const build_params& params = {})
      : dim_(checked_dim(dim)), params_(checked(params)), inner_(dim + 1, params.inner),
        m_(params.max_norm > 0 ? params.max_norm : -1.0) {}

  mips_index(mips_index&& o) noexcept(std::is_nothrow_move_constructible_v<Inner>)
      : base(std::move(o)), dim_(o.dim_), params_(o.params_), inner_(std::move(o.inner_)), m_(o.m_.load()) {}
  mips_index& operator=(mips_index&& o) noexcept(std::is_nothrow_move_assignable_v<Inner>) {
    base::operator=(std::move(o));
    dim_ = o.dim_;
    params_ = o.params_;
    inner_ = std::move(o.inner_);
    m_.store(o.m_.load());
    return *this;
  }

  std::size_t dim() const { return dim_; }
  std::size_t size() const { return inner_.size(); }
  std::size_t memory_bytes() const { return inner_.memory_bytes(); }
  /// M, the norm every stored augmented vector has (0 before M is fixed).
  double max_norm() const { return std::max(0.0, m_.load(std::memory_order_acquire)); }
  /// The wrapped index (its vectors have dim() + 1 columns).
  const Inner& inner() const { return inner_; }

  /// Whether `label` is in the index (asks Inner).
  bool contains(label_t label) const { return inner_.contains(label); }
  /// The labels in the index, in Inner's order.
  std::vector<label_t> labels() const { return inner_.labels(); }
  /// A copy of the vector stored under `label`: Inner's copy without the
  /// augmented coordinate (the vector as added, or Inner's approximation of
  /// it: IVF-PQ without kept vectors decodes). Throws what Inner::get throws
  /// (invalid_argument for an unknown label).
  std::vector<float> get(label_t label) const {
    std::vector<float> v = inner_.get(label);
    v.resize(dim_);
    return v;
  }

  /// Trains the inner index (IVF) on `sample`, fixing M from it if not fixed yet.
  /// Throws what add's checks and Inner::train throw; then nothing changed.
  void train(matrix_view<const float> sample, std::size_t threads = 0)
    requires requires(Inner& i, matrix_view<const float> s, std::size_t t) { i.train(s, t); }
  {
    check::dimension("training data", sample.cols(), dim_);
    check::finite("training data", sample);
    const std::lock_guard lock(writer_);
    const double m = m_for(sample);
    mips::detail::check_norms("training data", sample, m, how_m_was_set());
    matrix<float> aug(sample.rows(), dim_ + 1);
    mips::detail::augment_into(sample, m, aug.data());
    fix_m_around(m, [&] { inner_.train(aug.view(), threads); });
  }

 private:
  mips_index(std::size_t dim, const build_params& params, Inner&& inner, double m)
      : dim_(dim), params_(params), inner_(std::move(inner)), m_(m) {}

  // health() (index/base.hpp): the inner index's reading (its own locking),
  // forwarded: its removed count, memory estimate, figures and own findings
  // (the common ones follow from the same numbers here), and M.
  void add_health(health_report& r) const {
    const health_report inner = inner_.health();
    r.index += " over " + inner.index;
    r.live = inner.live;
    r.removed_unreclaimed = inner.removed_unreclaimed;
    r.memory_held = inner.memory_held;
    r.memory_needed = inner.memory_needed;
    r.figures = inner.figures;
    r.add_figure("max_norm", max_norm(), "M, the norm of every augmented vector (0: not fixed yet)");
    for (health_finding& f : health_detail::own_findings(inner)) r.findings.push_back(std::move(f));
  }

  // ---- the file (kind "mips"): record "mips" (norm_headroom, max_norm, M)
  // and section "mips.inner", the inner index's own whole file (its kind,
  // metric l2, dimension dim + 1, its checksums), read in place by a view ----

  void save_sections(serial::writer& w) const {
    w.section("mips", serial::record()
                          .set_double("norm_headroom", params_.norm_headroom)
                          .set_double("max_norm", params_.max_norm)
                          .set_double("m", m_.load(std::memory_order_acquire)));
    w.begin("mips.inner");
    inner_.write_to([&](std::span<const std::byte> b) { w.append(b); });
    w.end();
  }

  static mips_index load_sections(serial::reader& r) {
    const auto rec = r.fields("mips");
    build_params p;
    p.norm_headroom = rec.finite("norm_headroom");
    p.max_norm = rec.finite("max_norm");
    const double m = rec.finite("m");
    if (p.norm_headroom < 1 || p.max_norm < 0 || !(m == -1.0 || m > 0))
      r.fail("mips", "norm_headroom " + mips::detail::num(p.norm_headroom) + ", max_norm " +
                         mips::detail::num(p.max_norm) + ", M " + mips::detail::num(m) +
                         ": expected headroom >= 1, max_norm >= 0, M > 0 or -1 (not fixed yet)");
    // The inner file checks itself; a view leaves its bulk to verify(), which
    // checks this section (the inner file) whole.
    serial::reader inner(r.payload("mips.inner"), r.where("mips.inner"),
                         r.viewing() ? serial::open_mode::view : serial::open_mode::load);
    Inner loaded = Inner::load_from(inner);
    if (loaded.dim() != std::size_t(r.header().dim) + 1)
      r.fail("mips.inner", "an inner index of dimension " + std::to_string(loaded.dim()) + ", expected " +
                               std::to_string(r.header().dim + 1));
    return mips_index(r.header().dim, p, std::move(loaded), m);
  }

  // data validated and non-empty (base::build).
  static mips_index build_validated(matrix_view<const float> data, std::span<const label_t> labels,
                                    const build_params& params, std::size_t threads) {
    checked(params);
    const double m = params.max_norm > 0 ? params.max_norm : params.norm_headroom * mips::max_norm(data);
    if (params.max_norm > 0) mips::detail::check_norms("data", data, m, " (build_params::max_norm)");
    matrix<float> aug(data.rows(), data.cols() + 1);
    mips::detail::augment_into(data, m, aug.data());
    Inner inner = labels.empty() ? Inner::build(aug.view(), params.inner, threads)
                                 : Inner::build_with_labels(aug.view(), labels, params.inner, threads);
    return mips_index(data.cols(), params, std::move(inner), m);
  }

  // Rows validated (base::add). A row's norm above M: capacity_error, nothing added.
  void add_validated(matrix_view<const float> data, std::span<const label_t> labels, std::size_t threads) {
    if (data.rows() == 0) return;
    const std::lock_guard lock(writer_);  // two first adds must not fix two Ms
    const double m = m_for(data);
    mips::detail::check_norms("data", data, m, how_m_was_set());
    matrix<float> aug(data.rows(), dim_ + 1);
    mips::detail::augment_into(data, m, aug.data());
    fix_m_around(m, [&] {
      if constexpr (requires { inner_.add(aug.view(), labels, threads); })
        inner_.add(aug.view(), labels, threads);
      else
        inner_.add(aug.view(), labels);
    });
  }

  void remove_label(label_t label) { inner_.remove(label); }

  // The new vector's norm must be at most M (capacity_error otherwise, nothing changed).
  void update_validated(label_t label, std::span<const float> vector) {
    const double m = m_.load(std::memory_order_acquire);
    if (m < 0)  // nothing was ever added
      throw invalid_argument("mips_index::update: label " + std::to_string(label) + " is not in the index");
    const matrix_view<const float> row(vector.data(), 1, dim_);
    mips::detail::check_norms("vector", row, m, how_m_was_set());
    std::vector<float> aug(dim_ + 1);
    mips::detail::augment_into(row, m, aug.data());
    inner_.update(label, aug);
  }

  // Runs `mutate` (an add or train of the inner index) with M fixed at `m`;
  // the caller holds writer_. M is published before the inner index shows
  // the vectors built with it, so a search that sees them (through Inner's
  // own synchronisation) sees M too; a call that throws puts back the M it
  // found. Only the first call that fixes M writes it.
  template <class F>
  void fix_m_around(double m, F&& mutate) {
    const double before = m_.load(std::memory_order_relaxed);
    if (before >= 0) return mutate();
    m_.store(m, std::memory_order_release);
    try {
      mutate();
    } catch (...) {
      m_.store(before, std::memory_order_release);
      throw;
    }
  }

  static std::size_t checked_dim(std::size_t dim) {
    if (dim == 0) throw invalid_argument("mips_index: dimension must be at least 1, got 0");
    return dim;
  }
  static build_params checked(const build_params& p) {
    if (!(p.norm_headroom >= 1.0) || !std::isfinite(p.norm_headroom))
      throw invalid_argument("mips_index: norm_headroom must be finite and >= 1, got " +
                             mips::detail::num(p.norm_headroom));
    if (!(p.max_norm >= 0) || !std::isfinite(p.max_norm))
      throw invalid_argument("mips_index: max_norm must be finite and >= 0, got " + mips::detail::num(p.max_norm));
    return p;
  }

  // M once fixed, else the M that `first` would fix.
  double m_for(matrix_view<const float> first) const {
    const double m = m_.load(std::memory_order_acquire);
    return m >= 0 ? m : params_.norm_headroom * mips::max_norm(first);
  }
  std::string how_m_was_set() const {
    if (m_.load(std::memory_order_acquire) < 0) return "";
    if (params_.max_norm > 0) return " (build_params::max_norm)";
    return " (fixed at the first build/add: the largest norm then x norm_headroom " +
           mips::detail::num(params_.norm_headroom) + ")";
  }

  // Inner's l2 distances over augmented vectors -> -<q,v>, re-sorted so
  // equal values come in label order as in every index.
  void to_inner_product(double query_norm_sq, std::span<neighbor> hits) const {
    const double m = m_.load(std::memory_order_acquire);
    for (neighbor& h : hits) h.distance = float(-mips::inner_product_from_l2(h.distance, query_norm_sq, m));
    std::sort(hits.begin(), hits.end(), closer);
  }

  // q validated (dim() floats); Inner validates the augmented query again.
  template <class Keep>
  std::size_t search_prepared(const float* q, std::size_t k, const search_params& params, std::span<neighbor> out,
                              const Keep& keep) const {
    // Per-thread and per nesting depth (a filter may search again), reused.
    scratch_lease<std::vector<float>> lease;
    std::vector<float>& buf = *lease;
    if (buf.size() < dim_ + 1) buf.resize(dim_ + 1);
    std::copy_n(q, dim_, buf.begin());
    buf[dim_] = 0.f;
    const std::span<const float> aug(buf.data(), dim_ + 1);
    std::size_t n;
    if constexpr (std::is_same_v<Keep, accept_all>)
      n = inner_.search(aug, k, params, out);
    else
      n = inner_.search(aug, k, params, out, keep);
    to_inner_product(mips::detail::norm_sq({q, dim_}), out.first(n));
    return n;
  }

  // Queries validated, k served: through Inner's batch path.
  result_matrix search_batch_prepared(matrix_view<const float> queries, std::size_t k, const search_params& params,
                                      std::size_t threads) const {
    const matrix<float> aug = mips::augment_queries(queries);
    result_matrix out = annulus::search_batch(inner_, aug.view(), k, params, threads);
    for (std::size_t i = 0; i < out.size(); ++i)
      to_inner_product(mips::detail::norm_sq(queries.row(i)), out.row_storage(i).first(out[i].size()));
    return out;
  }

  std::size_t dim_;
  build_params params_;
  Inner inner_;
  // M; negative until the first build/train/add fixes it. Atomic: a search
  // may read it while the first add sets it.
  std::atomic<double> m_;
  std::mutex writer_;  // add and train, one at a time: M is fixed once
};

}  // namespace annulus
