#include "results.hpp"

#include <algorithm>
#include <cmath>

namespace annulus::bench {

double median(std::vector<double> samples) {
  if (samples.empty()) return 0;
  std::nth_element(samples.begin(), samples.begin() + std::ptrdiff_t(samples.size() / 2), samples.end());
  return samples[samples.size() / 2];
}

std::vector<curve_point> pareto_frontier(std::vector<curve_point> points) {
  // Highest recall first (ties: fastest first); keep a point only if it is
  // faster than every point of higher recall.
  std::sort(points.begin(), points.end(), [](const curve_point& a, const curve_point& b) {
    return a.recall > b.recall || (a.recall == b.recall && a.qps > b.qps);
  });
  std::vector<curve_point> out;
  for (const curve_point& p : points)
    if (out.empty() || p.qps > out.back().qps) out.push_back(p);
  std::reverse(out.begin(), out.end());
  return out;
}

std::optional<double> qps_at_recall(const std::vector<curve_point>& frontier, double target) {
  for (std::size_t i = 0; i < frontier.size(); ++i) {
    if (frontier[i].recall < target) continue;
    if (i == 0 || frontier[i].recall == target) return frontier[i].qps;
    const curve_point& lo = frontier[i - 1];
    const curve_point& hi = frontier[i];
    const double t = (target - lo.recall) / (hi.recall - lo.recall);
    return std::exp(std::log(lo.qps) + t * (std::log(hi.qps) - std::log(lo.qps)));
  }
  return std::nullopt;
}

}  // namespace annulus::bench
