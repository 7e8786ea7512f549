// Measures one index entry: build once, then every sweep point, each figure
// the median of `repeat` runs.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "bench_index.hpp"
#include "dataset.hpp"
#include "results.hpp"

namespace annulus::bench {

struct run_options {
  std::size_t k = 10;
  std::size_t threads = 0;  ///< for build and qps_all (0 = all cores)
  std::size_t repeat = 3;
  /// Single-thread timing stops after this many seconds per run (at least
  /// min_single_queries queries), so slow settings do not stall a sweep.
  double single_budget_s = 0.1;
  std::size_t min_single_queries = 50;
  /// A sweep (its values rising in effort) stops after the first point whose
  /// recall reaches stop_recall, or after two points in a row that each gain
  /// less than stop_gain (a plateau): the points beyond would only cost time.
  /// Negative: measure every point (annulus-bench does so for --sweep).
  double stop_recall = 0.995, stop_gain = 0.001;
  /// --save: after its sweep each index is saved here and opened back
  /// (persist.hpp). --load: indexes are opened from files here instead of built.
  std::string save_dir, load_dir;
};

/// Called before each step with a description ("hnsw ef=64") and the
/// fraction of its entry done, for the progress line.
using progress_fn = std::function<void(const std::string& step, double done)>;

struct persist_row;

/// What one entry measured: its sweep, and with --save its files.
struct entry_results {
  std::vector<result_row> rows;
  std::vector<persist_row> persisted;  ///< none, or one
};

/// Builds `entry` with `build` params on ds (or, with opt.load_dir, opens
/// the file a --save run wrote there) and measures each sweep value.
/// Throws usage_error on unknown parameters (before building where it can).
entry_results run_entry(const index_entry& entry, const params& build, const std::vector<std::string>& sweep,
                        const dataset& ds, const run_options& opt, const progress_fn& progress);

/// Resident set size of this process, in bytes (0 where /proc is missing).
std::size_t resident_bytes();

}  // namespace annulus::bench
