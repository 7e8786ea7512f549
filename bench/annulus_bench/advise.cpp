#include "advise.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>

#include <unistd.h>

#include "params.hpp"
#include "report_html.hpp"

namespace annulus::bench {
namespace {

// A number followed by one of `units` (name, factor); the bare number takes `bare`.
template <std::size_t N>
double parse_with_units(const std::string& text, const std::string& option,
                        const std::pair<const char*, double> (&units)[N], double bare, const std::string& expected) {
  if (text == "inf") return std::numeric_limits<double>::infinity();
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::logic_error&) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  if (used > 0 && std::isfinite(value) && value > 0) {
    if (unit.empty()) return value * bare;
    for (const auto& [name, factor] : units)
      if (unit == name) return value * factor;
  }
  throw usage_error(option + " " + (text.empty() ? "''" : text) + ": expected " + expected);
}

}  // namespace

double parse_bytes(const std::string& text, const std::string& option) {
  static const std::pair<const char*, double> units[] = {
      {"B", 1},     {"KB", 1e3},  {"MB", 1e6},  {"GB", 1e9},  {"TB", 1e12}, {"KiB", 1024.0},
      {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};
  return parse_with_units(text, option, units, 1, "a positive size such as 2GiB, 500GB or 1e9 (bytes)");
}

double parse_duration_us(const std::string& text, const std::string& option) {
  static const std::pair<const char*, double> units[] = {{"us", 1}, {"ms", 1e3}, {"s", 1e6}};
  const double us = parse_with_units(text, option, units, 0, "a positive duration such as 5ms, 500us or 0.2s");
  if (us == 0) throw usage_error(option + " " + text + ": give a unit (5ms, 500us, 0.2s)");
  return us;
}

double parse_count(const std::string& text, const std::string& option) {
  static const std::pair<const char*, double> units[] = {{"k", 1e3}, {"M", 1e6}, {"B", 1e9}};
  const double n = parse_with_units(text, option, units, 1, "a count such as 1e9, 1B or 2000000");
  if (!std::isfinite(n) || n < 1) throw usage_error(option + " " + text + ": expected a count of at least 1");
  return n;
}

int run_advise(const dataset& ds, const advisor_goals& goals, const std::filesystem::path& out_dir,
               const std::filesystem::path& html) {
  const bool tty = isatty(2);
  auto bar = [tty](std::size_t done, std::size_t total, const std::string& what) {
    constexpr int width = 30;
    const int filled = total ? int(double(done) / double(total) * width) : width;
    std::fprintf(stderr, "%s[%s%s] %zu/%zu %s%s", tty ? "\r\033[K" : "", std::string(std::size_t(filled), '#').c_str(),
                 std::string(std::size_t(width - filled), '.').c_str(), done, total, what.c_str(), tty ? "" : "\n");
  };
  auto run = [&]<class M>() { return advise<M>(ds.base.view(), ds.queries.view(), goals, bar); };
  advisor_report a;
  switch (ds.metric) {
    case metric_kind::l2: a = run.template operator()<l2>(); break;
    case metric_kind::inner_product: a = run.template operator()<inner_product>(); break;
    case metric_kind::cosine: a = run.template operator()<cosine>(); break;
  }
  std::fprintf(stderr, "\n");
  auto target = [](double v, const std::string& text) { return std::isfinite(v) ? text : std::string("open"); };
  std::string report = "# annulus-bench --advise\n\nDataset " + ds.name + " (" + std::to_string(a.rows) + " x " +
                       std::to_string(a.dim) + ", " + std::to_string(a.queries) + " queries, " +
                       std::string(metric_name(ds.metric)) + "), k = " + std::to_string(goals.k) +
                       ". Targets: recall " + std::to_string(goals.target_recall).substr(0, 5) + ", RAM " +
                       target(goals.ram_budget_bytes, advisor_detail::bytes_text(goals.ram_budget_bytes)) +
                       ", p99 " + target(goals.p99_us, advisor_detail::us_text(goals.p99_us)) + ", planned for " +
                       advisor_detail::count_text(a.plan_n) + " vectors.\n\n**" +
                       (a.exact_suffices ? "Exact search" : a.found ? "Recommended" : "No candidate meets every target") +
                       ".** " + a.argument + "\n\nEvidence (measured on the data above, one query per call on one "
                       "thread; the last columns extrapolated to the planned count):\n\n" + a.table() +
                       "\nHow each family was extrapolated:\n\n";
  std::string seen;
  for (const advisor_candidate& c : a.ranked)
    if (seen.find("|" + c.index + "|") == std::string::npos) {
      seen += "|" + c.index + "|";
      report += "- " + c.index + ": " + c.model + "\n";
    }
  std::printf("%s", report.c_str());
  std::ofstream(out_dir / "advice.md") << report;
  write_html(html, {.title = "annulus-bench --advise: " + ds.name,
                    .context = "Candidates measured by annulus::advise on " + ds.name + " (" + std::to_string(a.rows) +
                               " x " + std::to_string(a.dim) + ", " + std::to_string(a.queries) + " queries, " +
                               std::string(metric_name(ds.metric)) + "); each sweep stops at the first setting "
                               "reaching the target recall it was run with.",
                    .metric = std::string(metric_name(ds.metric)), .k = goals.k, .rows = a.rows, .dim = a.dim,
                    .queries = a.queries, .threads = resolve_threads(goals.threads), .goals = goals,
                    .curves = page_curves(a)});
  std::printf("\nwrote %s, %s\n", (out_dir / "advice.md").string().c_str(), html.string().c_str());
  return 0;
}

}  // namespace annulus::bench
