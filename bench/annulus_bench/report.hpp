// What annulus-bench writes: the terminal table, results.csv, summary.md and
// recall_qps.png (through gnuplot, when it is installed); report.html is
// report_html.hpp's.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "bench_index.hpp"
#include "results.hpp"

namespace annulus::bench {

/// A curve's name: "annulus flat", "faiss-hnsw m=16,ef_construction=200"
/// (peers' names already say their library).
std::string curve_name(const std::string& library, const std::string& index, const std::string& build);
/// Rows grouped into curves (one per library, index and build parameters), by name.
std::map<std::string, std::vector<const result_row*>> curves(const std::vector<result_row>& rows);

void print_table(const std::vector<result_row>& rows);
void write_csv(const std::filesystem::path& file, const std::vector<result_row>& rows);
/// QPS (1 thread) at recall 0.90 / 0.95 / 0.99 for each annulus index and each
/// of its peers, and the ratio annulus / peer. `context` opens the file
/// (machine, SIMD target, threads).
void write_summary(const std::filesystem::path& file, const std::vector<result_row>& rows,
                   const std::vector<index_entry>& entries, const std::string& context);
/// Returns false (and says why on stderr) when gnuplot is missing or fails.
bool write_plot(const std::filesystem::path& file, const std::vector<result_row>& rows);

}  // namespace annulus::bench
