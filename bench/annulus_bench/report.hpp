// What annulus-bench writes: the terminal table, results.csv, summary.md and
// recall_qps.png (through gnuplot, when it is installed).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "bench_index.hpp"
#include "results.hpp"

namespace annulus::bench {

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
