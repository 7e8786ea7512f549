// The data a benchmark runs on: base vectors, queries, the metric, and exact
// ground truth (ids and distances) for at least k neighbours per query.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <annulus/annulus.hpp>

namespace annulus::bench {

struct dataset {
  std::string name;  ///< "default", the directory's or the file's name
  metric_kind metric = metric_kind::l2;
  matrix<float> base, queries;
  matrix<std::int32_t> truth;  ///< ids of the true neighbours, closest first
  matrix<float> truth_dist;    ///< their distances (the metric's, smaller closer)
};

struct dataset_request {
  std::string path;                   ///< "" = the embedded default
  std::optional<metric_kind> metric;  ///< --metric; default: the data's own, else l2
  std::size_t k = 10;
  std::size_t max_queries = 0;        ///< 0 = all
  bool quick = false;                 ///< smaller default dataset
  std::filesystem::path out_dir;      ///< where computed ground truth is cached
  std::size_t threads = 0;
};

/// Loads or generates the data and its ground truth (computed with
/// flat_index and cached when absent or made for another metric).
/// Throws usage_error naming the problem: missing or unreadable files,
/// base/query dimension mismatch, ground truth for another query count,
/// k larger than the base or the ground truth.
dataset load_dataset(const dataset_request& request);

/// Parses "l2" | "ip" | "cosine" (also "euclidean", "angular", "dot").
metric_kind parse_metric(const std::string& text);

}  // namespace annulus::bench
