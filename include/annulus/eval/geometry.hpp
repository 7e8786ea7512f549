// The geometry of a set of embeddings, and the train/serve check: a model
// trained with a dot product ranks by <q, v>, which rewards large norms;
// serving it by cosine or l2 ranks differently. One call measures how much.
//
//   annulus::geometry_report r = annulus::geometry(items, queries, {.k = 10});
//   std::cout << r.summary();        // a dozen lines, the last one a verdict
//   if (r.cosine.overlap < 0.9) ...  // serving cosine would change the results
//
// Every top-k list here is exact (flat_index under inner_product, cosine and
// l2, batch search on `threads` workers), ties broken by smaller row as in
// every annulus index. Definitions, for n items and Q queries:
// - norm statistics: Euclidean norms (computed in double); min, max, mean,
//   and quartiles by linear interpolation between order statistics: with
//   the norms sorted x_0 <= ... <= x_{n-1}, the p-quantile is the value at
//   position p (n - 1), interpolated (numpy's default "linear" method).
// - top_norm_items = ceil(n / 100): the largest-norm items (equal norms: the
//   smaller row first); top_norm_share = the fraction of the Q x k dot-product
//   top-k slots that they fill. Were norms unrelated to ranking it would be
//   about 1%; top_norm_share_cosine is the same count over the cosine top-k.
// - overlap (per served metric, cosine and l2): the mean over queries of
//   |T_k ∩ S_k| / k, T_k the dot-product ("trained") top-k, S_k the served
//   metric's top-k. Both lists have k entries, so this is also the recall@k of
//   the served results against the trained ones: one number, not two.
// - norm_bands: the bands banded_mips_index<> (index/banded_mips.hpp) would
//   form over the items with its default band_ratio and min_band_size.
// - recall_at_depth: the mean over queries of |T_k ∩ S_depth| / k, S_depth
//   the served metric's top-depth (depth >= k, default 100): the recall a
//   service would reach by retrieving depth candidates under the served
//   metric and re-ranking them by the dot product.
//
// Memory: one exact index (a copy of the items) at a time, and the result
// lists (Q x depth). Time: three exact batch searches.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <numeric>
#include <ostream>
#include <string>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/index/concepts.hpp"
#include "annulus/index/flat.hpp"
#include "annulus/transform/mips.hpp"

namespace annulus {

struct geometry_options {
  std::size_t k = 10;       ///< length of the compared top-k lists, >= 1 and <= items
  std::size_t depth = 100;  ///< served candidates for recall_at_depth (raised to k, capped at items)
  std::size_t threads = 0;  ///< workers for the exact searches (0 = all cores)
};

/// Norm statistics of a set of vectors (definitions at the top of this file).
struct norm_stats {
  double min = 0, q1 = 0, median = 0, q3 = 0, max = 0, mean = 0;
};

/// How the served metric's results compare with the trained (dot-product) ones.
struct serve_check {
  metric_kind served = metric_kind::cosine;
  double overlap = 0;          ///< mean |T_k ∩ S_k| / k (= recall@k of served against trained)
  double recall_at_depth = 0;  ///< mean |T_k ∩ S_depth| / k
};

struct geometry_report {
  std::size_t items = 0, queries = 0, dim = 0, k = 0, depth = 0;
  norm_stats item_norms, query_norms;
  std::size_t top_norm_items = 0;     ///< ceil(items / 100)
  double top_norm_share = 0;          ///< their share of the dot-product top-k slots
  double top_norm_share_cosine = 0;   ///< their share of the cosine top-k slots
  serve_check cosine{metric_kind::cosine}, l2{metric_kind::l2};
  /// Norm bands banded_mips_index<> would form over these items with its
  /// defaults (mips::norm_band_bounds): 1 when norms are within 1.25x of
  /// each other (for all but a remainder), more as they spread.
  std::size_t norm_bands = 0;

  /// A short printable report ending in a one-line verdict drawn from the numbers.
  std::string summary() const;
  friend std::ostream& operator<<(std::ostream& os, const geometry_report& r) { return os << r.summary(); }
};

/// Norm statistics of the rows of `rows` (at least one row).
/// Throws invalid_argument on no rows or NaN/Inf.
inline norm_stats describe_norms(matrix_view<const float> rows) {
  if (rows.rows() == 0) throw invalid_argument("describe_norms: no rows");
  check::finite("rows", rows);
  std::vector<double> n(rows.rows());
  for (std::size_t i = 0; i < rows.rows(); ++i) {
    double s = 0;
    for (const float x : rows.row(i)) s += double(x) * x;
    n[i] = std::sqrt(s);
  }
  std::sort(n.begin(), n.end());
  auto quantile = [&](double p) {
    const double pos = p * double(n.size() - 1);
    const std::size_t lo = std::size_t(pos);
    const std::size_t hi = std::min(lo + 1, n.size() - 1);
    return n[lo] + (pos - double(lo)) * (n[hi] - n[lo]);
  };
  return {n.front(), quantile(0.25), quantile(0.5), quantile(0.75), n.back(),
          std::accumulate(n.begin(), n.end(), 0.0) / double(n.size())};
}

namespace geometry_detail {

template <class M>
result_matrix exact(matrix_view<const float> items, matrix_view<const float> queries, std::size_t k,
                    std::size_t threads) {
  const flat_index<M> idx = flat_index<M>::build(items);
  return idx.search_batch(queries, k, {}, threads);
}

// Sum over queries of |first k of a ∩ first `depth` of b|.
inline std::size_t common(const result_matrix& a, std::size_t k, const result_matrix& b, std::size_t depth) {
  std::size_t hits = 0;
  for (std::size_t q = 0; q < a.size(); ++q) {
    const auto ta = a[q].first(std::min(k, a[q].size()));
    const auto tb = b[q].first(std::min(depth, b[q].size()));
    for (const neighbor& x : ta)
      hits += std::any_of(tb.begin(), tb.end(), [&](const neighbor& y) { return y.label == x.label; });
  }
  return hits;
}

inline std::size_t slots_in(const result_matrix& r, std::size_t k, const std::vector<char>& marked) {
  std::size_t c = 0;
  for (std::size_t q = 0; q < r.size(); ++q)
    for (const neighbor& x : r[q].first(std::min(k, r[q].size()))) c += marked[x.label] != 0;
  return c;
}

inline std::string fmt(const char* f, double x) {
  char buf[48];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

}  // namespace geometry_detail

/// The report for `items` (the served vectors) and `queries` (a sample of
/// query vectors), both n x d. Throws invalid_argument (no items or queries,
/// k = 0 or k > items, NaN/Inf, a zero vector, which has no cosine),
/// dimension_mismatch (queries of another width).
inline geometry_report geometry(matrix_view<const float> items, matrix_view<const float> queries,
                                const geometry_options& options = {}) {
  using namespace geometry_detail;
  if (items.rows() == 0 || items.cols() == 0) throw invalid_argument("geometry: no items");
  if (queries.rows() == 0) throw invalid_argument("geometry: no queries");
  if (queries.cols() != items.cols())
    throw dimension_mismatch("geometry: queries have " + std::to_string(queries.cols()) +
                             " dimensions, items have " + std::to_string(items.cols()));
  check::k_in_range(options.k, items.rows());
  validate_rows<cosine>("items", items, items.cols());
  validate_rows<cosine>("queries", queries, queries.cols());

  geometry_report r;
  r.items = items.rows();
  r.queries = queries.rows();
  r.dim = items.cols();
  r.k = options.k;
  r.depth = std::min(std::max(options.depth, options.k), items.rows());
  r.item_norms = describe_norms(items);
  r.query_norms = describe_norms(queries);

  // The ceil(n / 100) largest norms; equal norms: smaller row first.
  std::vector<double> norms(items.rows());
  for (std::size_t i = 0; i < items.rows(); ++i) {
    double s = 0;
    for (const float x : items.row(i)) s += double(x) * x;
    norms[i] = s;
  }
  {
    std::vector<double> lengths(norms.size());
    std::transform(norms.begin(), norms.end(), lengths.begin(), [](double sq) { return std::sqrt(sq); });
    r.norm_bands = mips::norm_band_bounds(std::move(lengths)).size();
  }
  std::vector<std::size_t> order(items.rows());
  std::iota(order.begin(), order.end(), std::size_t{0});
  r.top_norm_items = (items.rows() + 99) / 100;
  std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(r.top_norm_items), order.end(),
                    [&](std::size_t a, std::size_t b) { return norms[a] > norms[b] || (norms[a] == norms[b] && a < b); });
  std::vector<char> top(items.rows(), 0);
  for (std::size_t i = 0; i < r.top_norm_items; ++i) top[order[i]] = 1;

  const double slots = double(r.queries) * double(r.k);
  const result_matrix dot = exact<inner_product>(items, queries, r.k, options.threads);
  r.top_norm_share = double(slots_in(dot, r.k, top)) / slots;
  {
    const result_matrix served = exact<cosine>(items, queries, r.depth, options.threads);
    r.top_norm_share_cosine = double(slots_in(served, r.k, top)) / slots;
    r.cosine.overlap = double(common(dot, r.k, served, r.k)) / slots;
    r.cosine.recall_at_depth = double(common(dot, r.k, served, r.depth)) / slots;
  }
  {
    const result_matrix served = exact<annulus::l2>(items, queries, r.depth, options.threads);
    r.l2.overlap = double(common(dot, r.k, served, r.k)) / slots;
    r.l2.recall_at_depth = double(common(dot, r.k, served, r.depth)) / slots;
  }
  return r;
}

inline std::string geometry_report::summary() const {
  using geometry_detail::fmt;
  const auto pct = [](double x) { return fmt("%.1f%%", 100 * x); };
  const auto stats = [&](const norm_stats& s) {
    return fmt("min %.3g", s.min) + fmt("  q1 %.3g", s.q1) + fmt("  median %.3g", s.median) +
           fmt("  q3 %.3g", s.q3) + fmt("  max %.3g", s.max) + fmt("  mean %.3g", s.mean) +
           fmt("  (max/median %.3g)", s.median > 0 ? s.max / s.median : 0.0);
  };
  const std::string kk = std::to_string(k), dd = std::to_string(depth);
  std::string out;
  out += "geometry: " + std::to_string(items) + " items x " + std::to_string(dim) + " dims, " +
         std::to_string(queries) + " queries, k = " + kk + "\n";
  out += "  item norms:  " + stats(item_norms) + "\n";
  out += "  query norms: " + stats(query_norms) + "\n";
  out += "  the 1% largest-norm items (" + std::to_string(top_norm_items) + ") hold " + pct(top_norm_share) +
         " of dot-product top-" + kk + " slots, " + pct(top_norm_share_cosine) + " of cosine top-" + kk +
         " slots (about 1% if norms were noise)\n";
  out += "  train/serve, trained with dot:  served by cosine: overlap@" + kk + " " + fmt("%.3f", cosine.overlap) +
         ", dot top-" + kk + " within cosine top-" + dd + " " + fmt("%.3f", cosine.recall_at_depth) + "\n";
  out += "                                  served by l2:     overlap@" + kk + " " + fmt("%.3f", l2.overlap) +
         ", dot top-" + kk + " within l2 top-" + dd + " " + fmt("%.3f", l2.recall_at_depth) + "\n";

  // The verdict, from the numbers.
  const bool signal = top_norm_share >= 0.03;  // three times what noise would give
  std::string v = "  verdict: ";
  if (signal)
    v += "the 1% largest-norm items take " + pct(top_norm_share) + " of dot-product top-" + kk +
         " slots: norms carry signal; ";
  else
    v += "norms carry little ranking signal (the 1% largest-norm items take " + pct(top_norm_share) +
         " of dot top-" + kk + " slots); ";
  if (cosine.overlap >= 0.9)
    v += "cosine serves " + pct(cosine.overlap) + " of the dot top-" + kk +
         ", so normalising in training and serving alike is safe.";
  else
    v += "serving cosine would keep only " + pct(cosine.overlap) + " of the dot top-" + kk +
         " (re-ranking cosine top-" + dd + " by dot: " + pct(cosine.recall_at_depth) +
         "); serve by inner product (below) or retrain with normalised vectors.";
  // The MIPS route: banded_mips_index held recall@10 >= 0.95 on every norm
  // spread measured, where each single route failed on one (docs/benchmarks.md).
  std::string route = "  for inner-product serving: banded_mips_index<> (index/banded_mips.hpp) would form " +
                      std::to_string(norm_bands) + (norm_bands == 1 ? " norm band" : " norm bands") + " here; ";
  if (norm_bands <= 1)
    route += "norms within 1.25x, so it is one augmented index, the same as mips_index<hnsw_index<l2>>.";
  else
    route += "with norms spread " + (item_norms.min > 0 ? fmt("%.3gx", item_norms.max / item_norms.min) : "from 0") +
             " one M (mips_index) leaves the short vectors to its appended coordinate, and a graph over inner "
             "product itself (hnsw_index<inner_product>) may stall on the long ones: take the bands "
             "(examples/two_tower_mips.cpp measures the routes on your data).";
  return out + v + "\n" + route + "\n";
}

}  // namespace annulus
