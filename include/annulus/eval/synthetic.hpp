// Synthetic vectors with structure, for tests, benchmarks and examples: a
// Gaussian mixture with uneven cluster sizes and uneven norms, the two things
// uniform noise lacks and real embeddings have. Reproducible from a seed.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/random.hpp"

namespace annulus {

struct mixture_params {
  std::size_t clusters = 64;  ///< cluster c has weight 1/(c+1): a few big, many small
  double norm_ratio = 8.0;    ///< each point is scaled log-uniformly over this range
  std::uint64_t seed = 42;    ///< fixes the centres and every sample
};

/// Centres ~ N(0, I); a point of cluster c is scale * (centre_c + s_c * N(0, I)),
/// with s_c uniform in [0.3, 0.8]. Samples from different streams are disjoint
/// draws of the same distribution (base and queries, say).
class gaussian_mixture {
 public:
  /// Throws invalid_argument on dim 0, no clusters or norm_ratio < 1.
  gaussian_mixture(std::size_t dim, const mixture_params& p = {})
      : dim_(dim), p_(p), centres_(p.clusters, dim), spread_(p.clusters), cumulative_(p.clusters) {
    if (dim == 0 || p.clusters == 0 || !(p.norm_ratio >= 1.0))
      throw invalid_argument("gaussian_mixture: needs dim >= 1, clusters >= 1 and norm_ratio >= 1, got " +
                             std::to_string(dim) + ", " + std::to_string(p.clusters) + ", " +
                             std::to_string(p.norm_ratio));
    random_generator rng(p.seed, 0);
    for (std::size_t i = 0; i < centres_.size(); ++i) centres_.data()[i] = float(rng.normal());
    for (std::size_t c = 0; c < p.clusters; ++c) {
      spread_[c] = 0.3 + 0.5 * rng.uniform();
      cumulative_[c] = (c ? cumulative_[c - 1] : 0.0) + 1.0 / double(c + 1);
    }
  }

  /// `rows` points from random stream `stream` (>= 1; the same stream gives the same points).
  matrix<float> sample(std::size_t rows, std::uint64_t stream) const {
    random_generator g(p_.seed, stream + 1);
    matrix<float> m(rows, dim_);
    const double log_ratio = std::log2(p_.norm_ratio);
    for (std::size_t i = 0; i < rows; ++i) {
      const double u = g.uniform() * cumulative_.back();
      const std::size_t c = std::min<std::size_t>(
          p_.clusters - 1,
          std::size_t(std::upper_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin()));
      const double scale = std::exp2(log_ratio * (g.uniform() - 0.5));
      for (std::size_t j = 0; j < dim_; ++j)
        m(i, j) = float(scale * (centres_(c, j) + spread_[c] * g.normal()));
    }
    return m;
  }

 private:
  std::size_t dim_;
  mixture_params p_;
  matrix<float> centres_;
  std::vector<double> spread_, cumulative_;
};

}  // namespace annulus
