// Maximum-inner-product search (MIPS) through any l2 search, by norm
// augmentation (Bachrach et al., 2014). With M >= every item's norm, store
// each item v as [v ; sqrt(M^2 - |v|^2)] and search with [q ; 0]: then
//   |[q;0] - [v;s]|^2 = |q|^2 + M^2 - 2<q,v>,
// so the l2-nearest augmented items are exactly the largest inner products.
//
//   const double m = annulus::mips::max_norm(items);
//   auto idx = my_l2_index(annulus::mips::augment_items(items, m));
//   auto qs = annulus::mips::augment_queries(queries);
//   double dot = annulus::mips::inner_product_from_l2(l2_distance, query_norm_sq, m);
//
// The transform alone, for users who run their own index; mips_index
// (index/mips.hpp) wraps any annulus l2 index with it. Like every file in
// transform/, this one knows no index.
//
// Ownership: the functions return new matrices; nothing is kept.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/validate.hpp"

namespace annulus {

namespace mips {

/// The norm of a vector whose squared norm is `norm_sq`, rounded up so that
/// its square is no less than norm_sq: an M taken from it holds the vector.
inline double norm_rounded_up(double norm_sq) {
  double m = std::sqrt(norm_sq);
  while (m * m < norm_sq) m = std::nextafter(m, std::numeric_limits<double>::infinity());
  return m;
}

/// The largest Euclidean norm among the rows of `rows` (0 for no rows),
/// rounded up so that its square is no less than any row's squared norm.
inline double max_norm(matrix_view<const float> rows) {
  double best = 0;
  for (std::size_t i = 0; i < rows.rows(); ++i) {
    double s = 0;
    for (const float x : rows.row(i)) s += double(x) * x;
    best = std::max(best, s);
  }
  return norm_rounded_up(best);
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

/// banded_mips_index's defaults (index/banded_mips.hpp), here so that the
/// geometry report (eval/geometry.hpp) can say what bands a data set forms.
inline constexpr double default_band_ratio = 1.25;
inline constexpr std::size_t default_min_band_size = 1000;
inline constexpr std::size_t max_bands = 64;

/// Norm bands, as banded_mips_index (index/banded_mips.hpp) forms them from
/// `norms` (each >= 0): sorted longest first, a band takes norms while they
/// are at least its first / band_ratio, and at least min_band_size of them
/// (raised to n / mips::max_bands); a remainder under half of that joins the last
/// band. Returns each band's largest norm M_b, longest first, the first
/// multiplied by norm_headroom; band b holds (M_{b+1}, M_b], the last down
/// to 0. Empty for no norms. Parameters unchecked (the index checks them).
inline std::vector<double> norm_band_bounds(std::vector<double> norms, double band_ratio = default_band_ratio,
                                            std::size_t min_band_size = default_min_band_size,
                                            double norm_headroom = 1.0) {
  std::sort(norms.begin(), norms.end(), std::greater<>());
  const std::size_t n = norms.size();
  const std::size_t min_size = std::max(min_band_size, (n + max_bands - 1) / max_bands);
  std::vector<double> bounds;
  std::size_t i = 0;
  while (i < n) {
    const double top = norms[i];
    bounds.push_back(top);
    const std::size_t first = i;
    while (i < n && (i - first < min_size || norms[i] * band_ratio >= top)) ++i;
    if (n - i < (min_size + 1) / 2) i = n;  // a small remainder joins this band
  }
  if (!bounds.empty()) bounds.front() *= norm_headroom;
  return bounds;
}

}  // namespace mips

}  // namespace annulus
