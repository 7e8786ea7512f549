// The p-quantile of a sample by nearest rank (p = 0.5: the median, 0.99:
// the p99 latency), as the advisor and annulus-bench report latencies.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "annulus/core/error.hpp"

namespace annulus {

/// The value at rank round(p (n - 1)) of the sorted sample (taken by value:
/// sorted in the copy). Throws invalid_argument on an empty sample or p
/// outside [0, 1].
inline double percentile(std::vector<double> sample, double p) {
  if (sample.empty()) throw invalid_argument("percentile: the sample is empty");
  if (!(p >= 0 && p <= 1)) throw invalid_argument("percentile: p = " + std::to_string(p) + "; expected 0..1");
  std::sort(sample.begin(), sample.end());
  return sample[std::min(sample.size() - 1, std::size_t(p * double(sample.size() - 1) + 0.5))];
}

}  // namespace annulus
