// --save DIR: what keeping an index in a file costs, per index, measured
// the same way for annulus and its peers (hnswlib saveIndex / loadIndex,
// FAISS write_index / read_index):
//   save_s          writing the file (annulus: atomic, fsynced; peers: as
//                   their calls do, not fsynced)
//   load_s          reading it back into memory of its own, the file in the
//                   page cache (what a restart on the same machine sees)
//   view_open_ms    opening it as a read-only memory-mapped view (annulus;
//                   FAISS only for IVF lists; hnswlib has none)
//   cold_first_ms   with the file's pages dropped from the cache first: open
//                   (a view where the library has one, else a load) plus the
//                   first query
//   file_bytes      the file's size, beside memory_bytes() of the built index
//   same_answers    the opened index answers every query as the built one
// Each time is the median of --repeat runs.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "bench_index.hpp"
#include "dataset.hpp"
#include "runner.hpp"

namespace annulus::bench {

struct persist_row {
  std::string library, index;
  std::size_t file_bytes = 0, memory_bytes = 0, vectors = 0;
  double save_s = 0, load_s = 0;
  std::optional<double> view_open_ms, cold_first_ms;
  std::string cold_first_how;  ///< "view" or "load"
  bool same_answers = false;
  std::string note;  ///< why a figure is missing
};

/// Saves `built` (entry built with `build`, configured at `point`) into
/// `dir`, opens it back every way its library offers, and times each step.
/// nullopt when the library cannot save this index.
std::optional<persist_row> measure_persistence(const index_entry& entry, const params& build,
                                               const params& point, bench_index& built, const dataset& ds,
                                               const run_options& opt, const std::filesystem::path& dir);

void print_persist_table(const std::vector<persist_row>& rows);
void write_persist_csv(const std::filesystem::path& file, const std::vector<persist_row>& rows);
/// A markdown section: the table and the ratios annulus / peer of the same
/// family (load and cold figures), for summary.md.
std::string persist_summary(const std::vector<persist_row>& rows, const std::vector<index_entry>& entries);

}  // namespace annulus::bench
