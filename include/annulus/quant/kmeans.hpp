// k-means (Lloyd) for coarse quantizers and PQ codebooks.
//
//   auto km = annulus::kmeans(data, 1024, {.iterations = 10, .seed = 7});
//   km.centroids;   // 1024 x d
//   km.objective;   // sum of squared distances at each assignment step
//
// Initialisation: k training points with distinct values drawn at random
// (seeded). FAISS draws distinct rows; on data full of exact duplicates
// (re-uploads, empty documents) that starts many centroids on one vector,
// and the repair below can only move one per empty cluster per iteration. k-means++ was the other choice; it picks better seeds but
// makes k passes over the data one centroid at a time, memory-bound: at
// k = 1024 over Fashion-MNIST that is 1024 reads of 188 MB, more time than
// all ten Lloyd iterations, whose assignment step is a compute-bound GEMM.
// Random seeds with the repair below reach the same objective within the
// iteration budget IVF uses.
//
// Empty clusters: they take the points farthest from their centroids (one
// each). Those points' cost drops to zero and no other point's rises, so the
// objective still never increases, and falls while it is above zero.
//
// Sampling: at most max_points_per_centroid * k points train (a seeded
// random subset, kept in data order); more adds time, not quality.
//
// Reproducible: the same data, k and params give the same centroids whatever
// the thread count (assignment is per point; each centroid sums its members
// in data order).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "annulus/core/distinct.hpp"
#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/random.hpp"
#include "annulus/core/validate.hpp"
#include "annulus/quant/centroids.hpp"

namespace annulus {

struct kmeans_params {
  std::size_t iterations = 10;                 ///< Lloyd iterations at most (>= 1)
  std::size_t max_points_per_centroid = 256;   ///< training sample cap per centroid (>= 1)
  double tolerance = 1e-4;  ///< stop once an iteration lowers the objective by less than this fraction (< 0: never)
  std::uint64_t seed = 1234;
  std::size_t threads = 0;  ///< 0 = all cores
};

struct kmeans_result {
  matrix<float> centroids;         ///< k x d
  std::vector<double> objective;   ///< sum of squared distances after each assignment step
  std::size_t training_points = 0; ///< rows used after sampling
};

namespace kmeans_detail {
inline matrix<float> copy_rows(matrix_view<const float> data, const std::vector<std::size_t>& rows) {
  matrix<float> out(rows.size(), data.cols());
  for (std::size_t i = 0; i < rows.size(); ++i)
    std::copy_n(data.row_ptr(rows[i]), data.cols(), out.row(i).data());
  return out;
}

// `k` rows with distinct values drawn at random, sorted; rows of any value
// only when the data has fewer than k distinct rows.
inline std::vector<std::size_t> distinct_seeds(matrix_view<const float> data, std::size_t k,
                                               random_generator& rng) {
  const std::vector<std::size_t> distinct = distinct_rows(data);
  if (distinct.size() < k) return random_subset(data.rows(), k, rng);
  std::vector<std::size_t> seeds = random_subset(distinct.size(), k, rng);
  for (std::size_t& s : seeds) s = distinct[s];
  return seeds;
}
}  // namespace kmeans_detail

/// Clusters the rows of `data` into k centroids. Throws invalid_argument on
/// k = 0, fewer training rows than k, zero iterations or sample cap, or
/// non-finite values.
inline kmeans_result kmeans(matrix_view<const float> data, std::size_t k, const kmeans_params& params = {}) {
  if (k == 0) throw invalid_argument("kmeans: k must be at least 1, got 0");
  if (data.rows() < k)
    throw invalid_argument("kmeans: " + std::to_string(data.rows()) + " training points for " +
                           std::to_string(k) + " centroids; need at least one point per centroid");
  if (params.iterations == 0 || params.max_points_per_centroid == 0)
    throw invalid_argument("kmeans: iterations and max_points_per_centroid must be at least 1");
  check::finite("training data", data);

  random_generator rng(params.seed);
  kmeans_result result;
  matrix<float> sampled;
  const std::size_t cap = params.max_points_per_centroid * k;
  if (data.rows() > cap) {
    sampled = kmeans_detail::copy_rows(data, random_subset(data.rows(), cap, rng));
    data = sampled.view();
  }
  const std::size_t n = data.rows(), d = data.cols();
  result.training_points = n;
  result.centroids = kmeans_detail::copy_rows(data, kmeans_detail::distinct_seeds(data, k, rng));

  std::vector<float> point_norms(n);
  kernels::norm_sq_many(data, point_norms.data());
  std::vector<std::uint32_t> assign(n);
  std::vector<float> dist(n);
  std::vector<std::size_t> start(k + 1), members(n);

  for (std::size_t it = 0; it < params.iterations; ++it) {
    // Assignment: one GEMM pass; key + ||x||^2 is the squared distance.
    const centroid_table table(result.centroids.view());
    table.nearest(data, centroid_order::l2, 1, assign.data(), dist.data(), params.threads);
    double objective = 0;
    for (std::size_t i = 0; i < n; ++i) {
      dist[i] = std::max(0.f, dist[i] + point_norms[i]);
      objective += dist[i];
    }
    result.objective.push_back(objective);
    if (it > 0) {
      const double previous = result.objective[it - 1];
      if (previous - objective <= params.tolerance * previous) break;
    }
    if (it + 1 == params.iterations) break;  // the last assignment is the one reported

    // Members of each cluster in data order (a counting sort).
    std::fill(start.begin(), start.end(), 0);
    for (std::size_t i = 0; i < n; ++i) ++start[assign[i] + 1];
    std::partial_sum(start.begin(), start.end(), start.begin());
    std::vector<std::size_t> fill(start.begin(), start.end() - 1);
    for (std::size_t i = 0; i < n; ++i) members[fill[assign[i]]++] = i;

    // Update: each centroid the mean of its members.
    parallel_for(k, params.threads, [&](std::size_t c, std::size_t) {
      const std::size_t count = start[c + 1] - start[c];
      if (count == 0) return;
      float* centroid = result.centroids.row(c).data();
      std::fill_n(centroid, d, 0.f);
      for (std::size_t m = start[c]; m < start[c + 1]; ++m) {
        const float* x = data.row_ptr(members[m]);
        for (std::size_t j = 0; j < d; ++j) centroid[j] += x[j];
      }
      const float inv = 1.f / float(count);
      for (std::size_t j = 0; j < d; ++j) centroid[j] *= inv;
    }, 16);

    // Repair: the empty clusters take the points farthest from their centroids.
    std::vector<std::size_t> empty;
    for (std::size_t c = 0; c < k; ++c)
      if (start[c + 1] == start[c]) empty.push_back(c);
    if (!empty.empty()) {
      std::vector<std::size_t> order(n);
      std::iota(order.begin(), order.end(), std::size_t{0});
      const auto farther = [&](std::size_t a, std::size_t b) { return dist[a] > dist[b] || (dist[a] == dist[b] && a < b); };
      std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(empty.size()), order.end(), farther);
      for (std::size_t e = 0; e < empty.size(); ++e)
        std::copy_n(data.row_ptr(order[e]), d, result.centroids.row(empty[e]).data());
    }
  }
  return result;
}

}  // namespace annulus
