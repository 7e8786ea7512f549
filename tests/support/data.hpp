// Test data with structure, and a brute-force oracle. Fixed seeds only.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <span>
#include <vector>

#include "annulus/core/kernels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/random.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/eval/synthetic.hpp"

namespace annulus::testing {

/// `n` points from a Gaussian mixture with uneven cluster sizes and norms
/// (16x range). The mixture depends on d and `clusters` only; `stream` picks
/// the draw, so base and queries from different streams share the clusters.
inline matrix<float> clustered(std::size_t n, std::size_t d, std::size_t clusters,
                               std::uint64_t stream) {
  return gaussian_mixture(d, {.clusters = clusters, .norm_ratio = 16.0, .seed = 7}).sample(n, stream);
}

/// Exact distance in double precision under metric M (cosine normalises here).
template <class M>
double exact_distance(const float* a, const float* b, std::size_t d) {
  double dot = 0, na = 0, nb = 0, l2 = 0;
  for (std::size_t j = 0; j < d; ++j) {
    dot += double(a[j]) * b[j];
    na += double(a[j]) * a[j];
    nb += double(b[j]) * b[j];
    l2 += (double(a[j]) - b[j]) * (double(a[j]) - b[j]);
  }
  if constexpr (M::kind == metric_kind::l2) return l2;
  if constexpr (M::kind == metric_kind::inner_product) return -dot;
  return 1.0 - dot / std::sqrt(na * nb);
}

/// The k nearest rows of `base` to q under M, by a double-precision scan.
template <class M>
std::vector<neighbor> brute_force(matrix_view<const float> base, const float* q, std::size_t k) {
  std::vector<std::pair<double, std::size_t>> all(base.rows());
  for (std::size_t i = 0; i < base.rows(); ++i)
    all[i] = {exact_distance<M>(q, base.row_ptr(i), base.cols()), i};
  std::partial_sort(all.begin(), all.begin() + std::ptrdiff_t(k), all.end());
  std::vector<neighbor> out(k);
  for (std::size_t i = 0; i < k; ++i) out[i] = {all[i].second, float(all[i].first)};
  return out;
}

/// Fraction of the true top-k labels found in `got` (first k entries).
inline double overlap(const std::vector<neighbor>& truth, std::span<const neighbor> got) {
  std::size_t hits = 0;
  for (const neighbor& t : truth)
    for (const neighbor& g : got)
      if (g.label == t.label) {
        ++hits;
        break;
      }
  return double(hits) / double(truth.size());
}

/// Recall@k that counts ties: a returned label is right when its exact
/// distance is at most the k-th true distance (within float rounding).
/// Data with exact duplicates has many equally right answers; `overlap`
/// would count all but one of them wrong.
template <class M>
double tie_aware_recall(matrix_view<const float> base, const float* q, std::span<const neighbor> got,
                        std::size_t k) {
  const std::vector<neighbor> truth = brute_force<M>(base, q, k);
  const double kth = truth[k - 1].distance;
  std::size_t hits = 0;
  for (std::size_t i = 0; i < got.size() && i < k; ++i)
    hits += exact_distance<M>(q, base.row_ptr(got[i].label), base.cols()) <= kth + 1e-5 * std::abs(kth) + 1e-6;
  return double(hits) / double(k);
}

/// `base` with its row 0 copied into rows 1 .. share * rows - 1: one vector
/// duplicated, the copies first in add order (the hardest order for a graph:
/// the copies are linked before anything else exists).
inline matrix<float> with_duplicates(const matrix<float>& base, double share) {
  matrix<float> out = base;
  const std::size_t copies = std::size_t(share * double(base.rows()));
  for (std::size_t i = 1; i < copies; ++i) std::copy_n(base.row_ptr(0), base.cols(), out.row_ptr(i));
  return out;
}

}  // namespace annulus::testing
