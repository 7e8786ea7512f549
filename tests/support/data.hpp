// Test data with structure, and a brute-force oracle. Fixed seeds only.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <vector>

#include "annulus/core/kernels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/random.hpp"
#include "annulus/core/topk.hpp"

namespace annulus::testing {

/// Gaussian mixture: `clusters` centres, cluster sizes uneven (weights 1/(c+1)),
/// each point scaled by a factor in [0.25, 4) so norms differ by 16x.
inline matrix<float> clustered(std::size_t n, std::size_t d, std::size_t clusters,
                               std::uint64_t seed) {
  random_generator rng(seed);
  matrix<float> centres(clusters, d);
  for (std::size_t c = 0; c < clusters; ++c)
    for (std::size_t j = 0; j < d; ++j) centres(c, j) = float(rng.normal() * 4.0);
  std::vector<double> cumulative(clusters);
  double total = 0;
  for (std::size_t c = 0; c < clusters; ++c) cumulative[c] = total += 1.0 / double(c + 1);
  matrix<float> out(n, d);
  for (std::size_t i = 0; i < n; ++i) {
    const double u = rng.uniform() * total;
    const std::size_t c = std::size_t(std::lower_bound(cumulative.begin(), cumulative.end(), u) -
                                      cumulative.begin());
    const double scale = 0.25 * std::pow(16.0, rng.uniform());
    for (std::size_t j = 0; j < d; ++j)
      out(i, j) = float((centres(std::min(c, clusters - 1), j) + rng.normal()) * scale);
  }
  return out;
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

}  // namespace annulus::testing
