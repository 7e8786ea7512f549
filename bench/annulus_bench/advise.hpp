// annulus-bench --advise: eval/advisor.hpp on the run's dataset, with the
// targets from the command line, a progress bar on stderr, and the
// recommendation and its evidence on stdout and in OUT/advice.md.
#pragma once

#include <filesystem>
#include <string>

#include <annulus/eval/advisor.hpp>

#include "dataset.hpp"

namespace annulus::bench {

/// "2GiB", "500GB", "64MB", "1e9" (bytes) -> bytes; "inf" -> infinity.
/// Throws usage_error naming `option` on anything else.
double parse_bytes(const std::string& text, const std::string& option);
/// "5ms", "500us", "0.2s" -> microseconds; "inf" -> infinity. Throws usage_error.
double parse_duration_us(const std::string& text, const std::string& option);
/// "1e9", "2000000" -> a count >= 1. Throws usage_error.
double parse_count(const std::string& text, const std::string& option);

/// Runs the advisor on ds (base and queries, its metric), prints the advice
/// and writes it to OUT/advice.md, and its candidates' measurements to the
/// report page `html`. Returns the process exit code (0).
int run_advise(const dataset& ds, const advisor_goals& goals, const std::filesystem::path& out_dir,
               const std::filesystem::path& html);

}  // namespace annulus::bench
