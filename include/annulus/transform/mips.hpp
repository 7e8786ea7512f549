// Maximum-inner-product search (MIPS) through any l2 index, by norm
// augmentation (Bachrach et al., 2014). With M >= every item's norm, store
// each item v as [v ; sqrt(M^2 - |v|^2)] and search with [q ; 0]: then
//   |[q;0] - [v;s]|^2 = |q|^2 + M^2 - 2<q,v>,
// so the l2-nearest augmented items are exactly the largest inner products.
//
//   auto idx = annulus::mips_index<annulus::hnsw_index<annulus::l2>>::build(items, {.inner = {.m = 16}});
//   auto hits = idx.search(user, 10, {.ef = 64});       // largest <user, item> first
//   float dot = annulus::similarity<annulus::inner_product>(hits[0].distance);
//
// mips_index<Inner> wraps Inner (hnsw_index<l2>, flat_index<l2>,
// ivf_flat_index<l2>, ...) and is itself an index over inner_product: dim()
// is the user's dimension, results carry distance = -<q,v> as inner_product
// does. The dot is recovered from the inner index's l2 distance by the
// algebra above, in double: <q,v> = (|q|^2 + M^2 - d) / 2. Its error is the
// float rounding of d, a few units in the last place of |q|^2 + M^2 (not of
// <q,v>), so a large M (headroom) costs digits; items whose dots differ by
// less than that may come back in either order.
//
// M is fixed once, by the first of build, train or add: params.max_norm if
// set, else norm_headroom x the largest norm of that first batch. An add
// holding a vector with norm above M throws capacity_error (nothing is added:
// the augmentation has no real last coordinate for it); rebuild with more
// headroom. Free functions in annulus::mips augment matrices for users who run
// their own index.
//
// Memory: the inner index's, over dim + 1 floats a vector; the wrapper adds a
// per-thread query buffer. Threads: as the inner index (const search safe from
// many threads; add, remove and train alongside searches where Inner allows
// it, as hnsw does; add and train serialise on the wrapper).
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <limits>
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
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/concepts.hpp"

namespace annulus {

namespace mips {

/// The largest Euclidean norm among the rows of `rows` (0 for no rows),
/// rounded up so that its square is no less than any row's squared norm.
inline double max_norm(matrix_view<const float> rows) {
  double best = 0;
  for (std::size_t i = 0; i < rows.rows(); ++i) {
    double s = 0;
    for (const float x : rows.row(i)) s += double(x) * x;
    best = std::max(best, s);
  }
  double m = std::sqrt(best);
  while (m * m < best) m = std::nextafter(m, std::numeric_limits<double>::infinity());
  return m;
}

namespace detail {
inline double norm_sq(std::span<const float> v) {
  double s = 0;
  for (const float x : v) s += double(x) * x;
  return s;
}

inline std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

// Throws capacity_error naming the first row of `rows` whose norm exceeds m.
inline void check_norms(std::string_view what, matrix_view<const float> rows, double m,
                        std::string_view how_m_was_set) {
  for (std::size_t i = 0; i < rows.rows(); ++i) {
    const double n2 = norm_sq(rows.row(i));
    if (n2 > m * m)
      throw capacity_error(std::string(what) + " row " + std::to_string(i) + " has norm " + num(std::sqrt(n2)) +
                           ", above the maximum norm M = " + num(m) + std::string(how_m_was_set) +
                           "; norm augmentation cannot hold it: rebuild with a larger norm_headroom or max_norm");
  }
}

// Row i of `rows` (norms <= m) as [v ; sqrt(m^2 - |v|^2)] at out + i * (d + 1).
inline void augment_into(matrix_view<const float> rows, double m, float* out) {
  const std::size_t d = rows.cols();
  for (std::size_t i = 0; i < rows.rows(); ++i) {
    float* dst = out + i * (d + 1);
    std::copy_n(rows.row_ptr(i), d, dst);
    dst[d] = float(std::sqrt(std::max(0.0, m * m - norm_sq(rows.row(i)))));
  }
}
}  // namespace detail

/// Items for an l2 index: n x (d + 1), row i = [v_i ; sqrt(m^2 - |v_i|^2)].
/// Throws invalid_argument on NaN/Inf or m < 0 (or not finite), capacity_error if a
/// row's norm exceeds m.
inline matrix<float> augment_items(matrix_view<const float> items, double m) {
  if (!(m >= 0) || !std::isfinite(m))
    throw invalid_argument("mips::augment_items: max norm must be finite and >= 0, got " + detail::num(m));
  check::finite("items", items);
  detail::check_norms("items", items, m, "");
  matrix<float> out(items.rows(), items.cols() + 1);
  detail::augment_into(items, m, out.data());
  return out;
}

/// Queries for the same index: n x (d + 1), row i = [q_i ; 0].
/// Throws invalid_argument on NaN/Inf.
inline matrix<float> augment_queries(matrix_view<const float> queries) {
  check::finite("queries", queries);
  matrix<float> out(queries.rows(), queries.cols() + 1);
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    std::copy_n(queries.row_ptr(i), queries.cols(), out.row_ptr(i));
    out(i, queries.cols()) = 0.f;
  }
  return out;
}

/// <q, v> from the squared l2 distance between [q;0] and augmented [v;s]:
/// (|q|^2 + m^2 - distance) / 2, exact up to the rounding of `l2_distance`.
inline double inner_product_from_l2(double l2_distance, double query_norm_sq, double m) {
  return 0.5 * (query_norm_sq + m * m - l2_distance);
}

}  // namespace mips

/// Maximum-inner-product search over an l2 index `Inner` (see the top of this file).
template <class Inner>
class mips_index : public vector_search<mips_index<Inner>> {
  static_assert(std::is_same_v<typename Inner::metric_type, l2>,
                "mips_index wraps an index over l2 (hnsw_index<l2>, flat_index<l2>, ...)");

 public:
  using metric_type = inner_product;
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

  /// An index holding every row of `data` (labels = row numbers), M set from
  /// `data`. `threads` is passed to Inner::build where it takes one.
  /// Throws invalid_argument on empty data, and what the constructor and Inner::build throw.
  static mips_index build(matrix_view<const float> data, const build_params& params = {},
                          std::size_t threads = 0) {
    if (data.rows() == 0 || data.cols() == 0)
      throw invalid_argument("mips_index::build: empty data (" + std::to_string(data.rows()) + " x " +
                             std::to_string(data.cols()) + ")");
    checked(params);
    check::finite("data", data);
    const double m = params.max_norm > 0 ? params.max_norm : params.norm_headroom * mips::max_norm(data);
    if (params.max_norm > 0) mips::detail::check_norms("data", data, m, " (build_params::max_norm)");
    matrix<float> aug(data.rows(), data.cols() + 1);
    mips::detail::augment_into(data, m, aug.data());
    if constexpr (requires { Inner::build(aug.view(), params.inner, threads); })
      return mips_index(data.cols(), params, Inner::build(aug.view(), params.inner, threads), m);
    else
      return mips_index(data.cols(), params, Inner::build(aug.view(), params.inner), m);
  }

  std::size_t dim() const { return dim_; }
  std::size_t size() const { return inner_.size(); }
  std::size_t memory_bytes() const { return inner_.memory_bytes(); }
  /// M, the norm every stored augmented vector has (0 before M is fixed).
  double max_norm() const { return std::max(0.0, m_.load(std::memory_order_acquire)); }
  /// The wrapped index (its vectors have dim() + 1 columns).
  const Inner& inner() const { return inner_; }

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

  /// Adds the rows of `data` with `labels` (empty = the inner index's default).
  /// Throws dimension_mismatch, invalid_argument (NaN/Inf, labels),
  /// capacity_error (a row's norm above max_norm(): rebuild with more
  /// headroom), and what Inner::add throws; then the index is unchanged.
  void add(matrix_view<const float> data, std::span<const label_t> labels = {}, std::size_t threads = 0) {
    if (data.rows() == 0) return;
    check::dimension("data", data.cols(), dim_);
    check::finite("data", data);
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

  /// Removes `label` (where Inner can). Throws what Inner::remove throws.
  void remove(label_t label)
    requires requires(Inner& i, label_t l) { i.remove(l); }
  {
    inner_.remove(label);
  }

  /// The k stored vectors with the largest inner product with `query`, largest
  /// first, distance = -<query, v>; returns how many. Throws
  /// dimension_mismatch, invalid_argument (NaN/Inf) and what Inner::search throws.
  std::size_t search(std::span<const float> query, std::size_t k, const search_params& params,
                     std::span<neighbor> out) const {
    return search_impl(query, k, params, out, static_cast<const accept_all*>(nullptr));
  }

  /// As search, only vectors whose label passes `keep` (where Inner filters).
  template <label_predicate Keep>
    requires filterable_index<Inner, Keep>
  std::size_t search(std::span<const float> query, std::size_t k, const search_params& params,
                     std::span<neighbor> out, const Keep& keep) const {
    return search_impl(query, k, params, out, &keep);
  }

  using vector_search<mips_index>::search;  // the std::vector-returning forms

  /// Every row of `queries`, through the inner index's batch path (flat's
  /// GEMM, say) on `threads` workers; the same results as one search a row.
  result_matrix search_batch(matrix_view<const float> queries, std::size_t k, const search_params& params = {},
                             std::size_t threads = 0) const {
    if (queries.rows() != 0) check::dimension("query", queries.cols(), dim_);
    const matrix<float> aug = mips::augment_queries(queries);
    result_matrix out = annulus::search_batch(inner_, aug.view(), k, params, threads);
    for (std::size_t i = 0; i < out.size(); ++i)
      to_inner_product(mips::detail::norm_sq(queries.row(i)), out.row_storage(i).first(out[i].size()));
    return out;
  }

 private:
  mips_index(std::size_t dim, const build_params& params, Inner&& inner, double m)
      : dim_(dim), params_(params), inner_(std::move(inner)), m_(m) {}

 public:
  mips_index(mips_index&& o) noexcept(std::is_nothrow_move_constructible_v<Inner>)
      : dim_(o.dim_), params_(o.params_), inner_(std::move(o.inner_)), m_(o.m_.load()) {}
  mips_index& operator=(mips_index&& o) noexcept(std::is_nothrow_move_assignable_v<Inner>) {
    dim_ = o.dim_;
    params_ = o.params_;
    inner_ = std::move(o.inner_);
    m_.store(o.m_.load());
    return *this;
  }

 private:
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

  template <class Keep>
  std::size_t search_impl(std::span<const float> query, std::size_t k, const search_params& params,
                          std::span<neighbor> out, const Keep* keep) const {
    check::dimension("query", query.size(), dim_);
    check::finite("query", query);
    // Per-thread and per nesting depth (a filter may search again), reused.
    scratch_lease<std::vector<float>> lease;
    std::vector<float>& buf = *lease;
    if (buf.size() < dim_ + 1) buf.resize(dim_ + 1);
    std::copy(query.begin(), query.end(), buf.begin());
    buf[dim_] = 0.f;
    const std::span<const float> q(buf.data(), dim_ + 1);
    std::size_t n;
    if constexpr (std::is_same_v<Keep, accept_all>)
      n = inner_.search(q, k, params, out);
    else
      n = inner_.search(q, k, params, out, *keep);
    to_inner_product(mips::detail::norm_sq(query), out.first(n));
    return n;
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
