// report.html: one self-contained page of a run's measurements (no network
// when viewed): recall / QPS curves with every measured setting, bytes per
// vector and build time per index, and the advisor's controls (target
// recall, RAM budget, p99, item count) recomputing the recommendation in the
// page. The page itself is report_page.html, embedded at build time.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <annulus/eval/advisor.hpp>

#include "bench_index.hpp"
#include "report.hpp"
#include "results.hpp"

namespace annulus::bench {

/// One curve of the page: one library's index at one build, every setting
/// measured, as the advisor reads it (index, build, growth model, bytes per
/// vector, build time, and the sweep in the order measured).
struct page_curve {
  std::string library;  ///< "annulus", "hnswlib", "faiss", ...
  advisor_candidate measured;
  /// As in summary.md: "annulus hnsw m=16,...", "hnswlib m=16,...".
  std::string name() const { return curve_name(library, measured.index, measured.build); }
  bool annulus() const { return library == "annulus"; }
};

struct page_data {
  std::string title, context, metric;
  std::size_t k = 10, rows = 0, dim = 0, queries = 0, threads = 0;
  advisor_goals goals;  ///< the controls' starting values (plan_n 0: rows)
  std::vector<page_curve> curves;
};

/// The curves of a benchmark run, grouped as summary.md groups them; each
/// curve's growth model is its annulus family's (a peer takes the one of the
/// index it is compared with).
std::vector<page_curve> page_curves(const std::vector<result_row>& rows, const std::vector<index_entry>& entries);

/// The curves of an --advise run: its candidates, as measured.
std::vector<page_curve> page_curves(const advisor_report& advice);

/// Writes the page. With it, for a fixed grid of goals, what
/// annulus::rank_candidates picks from the annulus curves: the browser test
/// checks the page's own ranking picks the same. Throws std::runtime_error
/// when the file cannot be written.
void write_html(const std::filesystem::path& file, const page_data& page);

}  // namespace annulus::bench
