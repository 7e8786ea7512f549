// One measured setting of one index, and what is read off a set of them:
// the Pareto frontier (recall vs single-thread QPS) and QPS at a target recall.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace annulus::bench {

/// A row of results.csv (columns in this order).
struct result_row {
  std::string dataset, metric, library, index, build_params, search_params;
  std::size_t threads = 0, k = 0;
  double build_s = 0, bytes_per_vector = 0, recall = 0, qps_1t = 0, qps_all = 0, p50_us = 0,
         p99_us = 0;
  double rss_bytes_per_vector = 0;  ///< shown in the table, not a CSV column
};

inline constexpr const char* csv_header =
    "dataset,metric,library,index,build_params,search_params,threads,k,build_s,"
    "bytes_per_vector,recall,qps_1t,qps_all,p50_us,p99_us";

struct curve_point {
  double recall = 0, qps = 0;
};

/// The points no other point beats on both recall and QPS, by rising recall.
std::vector<curve_point> pareto_frontier(std::vector<curve_point> points);

/// Median of repeated measurements (the upper one of an even count; 0 when empty).
double median(std::vector<double> samples);

/// QPS at `target` recall read off a frontier: linear in recall, log-linear
/// in QPS between the two points around it; the best QPS at or above the
/// target when the frontier starts above it; nullopt when it never reaches it.
std::optional<double> qps_at_recall(const std::vector<curve_point>& frontier, double target);

}  // namespace annulus::bench
