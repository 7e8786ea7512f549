#include "report_html.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "report.hpp"

namespace annulus::bench {
namespace {

// The page, from report_page.html (bench/CMakeLists.txt makes the include).
constexpr const char* page_template =
#include "report_page.inc"
    ;
constexpr const char* data_slot = "/*ANNULUS_MEASUREMENTS*/";

// A JSON string. '<' is written \u003c, so no text can end the page's script tag.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') out += '\\', out += char(c);
    else if (c < 0x20 || c == '<') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else out += char(c);
  }
  return out + "\"";
}

// A JSON number, exact enough that the page compares as the C++ does; an
// open target (infinity) is null.
std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

const char* growth_name(advisor_growth g) {
  switch (g) {
    case advisor_growth::linear: return "linear";
    case advisor_growth::logarithmic: return "logarithmic";
    case advisor_growth::square_root: return "square_root";
  }
  return "linear";
}

std::string goals_json(const advisor_goals& g) {
  return "{\"target_recall\":" + json_number(g.target_recall) + ",\"ram_budget_bytes\":" +
         json_number(g.ram_budget_bytes) + ",\"p99_us\":" + json_number(g.p99_us) +
         ",\"plan_n\":" + json_number(g.plan_n) + "}";
}

// What rank_candidates picks from the page's annulus curves for a grid of
// goals: recall targets across the range, each at the data's size with open
// targets, with the page's own, RAM-rich (10^9 in 500 GB, 2 ms), RAM-tight
// (10^8 in 20 GB) and latency-tight (10^7 at 200 us).
std::string checks_json(const page_data& page) {
  std::vector<advisor_candidate> measured;
  for (const page_curve& c : page.curves)
    if (c.annulus()) measured.push_back(c.measured);
  if (measured.empty()) return "[]";
  const double inf = std::numeric_limits<double>::infinity(), rows = double(page.rows);
  std::vector<advisor_goals> grid;
  for (double t : {0.8, 0.9, 0.95, 0.99}) {
    advisor_goals own = page.goals;
    own.target_recall = t;
    own.plan_n = own.plan_n > 0 ? own.plan_n : rows;
    for (const advisor_goals& g : {advisor_goals{.k = page.k, .target_recall = t, .plan_n = rows}, own,
                                   advisor_goals{.k = page.k, .target_recall = t, .ram_budget_bytes = 5e11,
                                                 .p99_us = 2000, .plan_n = 1e9},
                                   advisor_goals{.k = page.k, .target_recall = t, .ram_budget_bytes = 2e10,
                                                 .p99_us = inf, .plan_n = 1e8},
                                   advisor_goals{.k = page.k, .target_recall = t, .p99_us = 200, .plan_n = 1e7}})
      if (std::none_of(grid.begin(), grid.end(), [&](const advisor_goals& o) {
            return o.target_recall == g.target_recall && o.ram_budget_bytes == g.ram_budget_bytes &&
                   o.p99_us == g.p99_us && o.plan_n == g.plan_n;
          }))
        grid.push_back(g);
  }
  std::string out = "[";
  for (const advisor_goals& g : grid) {
    const advisor_report r = rank_candidates(measured, g, page.rows, page.dim, page.queries);
    // The whole order, each rank's curve, setting, targets missed and planned
    // p99 and bytes, so the test compares every rank, not only the pick.
    std::string ranked, pick;
    for (const advisor_candidate& c : r.ranked) {
      const std::string name = curve_name("annulus", c.index, c.build);
      if (pick.empty()) pick = name;
      // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "..." + std::string&&.
      ranked += ranked.empty() ? "{\"rank\":" : ",{\"rank\":";
      ranked += json_string(name + " | " + c.point().search + " | " + std::to_string(c.misses())) +
                ",\"planned_p99_us\":" + json_number(c.planned_p99_us) +
                ",\"planned_bytes\":" + json_number(c.planned_bytes) + "}";
    }
    out += std::string(out.size() > 1 ? "," : "") + "\n{\"goals\":" + goals_json(g) + ",\"verdict\":" +
           json_string(r.exact_suffices ? "exact" : r.found ? "found" : "none") + ",\"pick\":" + json_string(pick) +
           ",\"setting\":" + json_string(r.ranked.front().point().search) + ",\"ranked\":[" + ranked + "]}";
  }
  return out + "]";
}

std::string page_json(const page_data& page) {
  std::ostringstream j;
  j << "{\"title\":" << json_string(page.title) << ",\"context\":" << json_string(page.context)
    << ",\"metric\":" << json_string(page.metric) << ",\"k\":" << page.k << ",\"rows\":" << page.rows
    << ",\"dim\":" << page.dim << ",\"queries\":" << page.queries << ",\"threads\":" << page.threads
    << ",\"goals\":" << goals_json(page.goals) << ",\n\"curves\":[";
  for (std::size_t i = 0; i < page.curves.size(); ++i) {
    const page_curve& c = page.curves[i];
    const advisor_candidate& m = c.measured;
    j << (i ? "," : "") << "\n{\"name\":" << json_string(c.name()) << ",\"library\":" << json_string(c.library)
      << ",\"index\":" << json_string(m.index) << ",\"build\":" << json_string(m.build)
      << ",\"annulus\":" << (c.annulus() ? "true" : "false") << ",\"growth\":" << json_string(growth_name(m.growth))
      << ",\"model\":" << json_string(advisor_growth_text(m.growth))
      << ",\"bytes_per_vector\":" << json_number(m.bytes_per_vector) << ",\"build_s\":" << json_number(m.build_s)
      << ",\"points\":[";
    for (std::size_t p = 0; p < m.sweep.size(); ++p) {
      const advisor_point& q = m.sweep[p];
      j << (p ? "," : "") << "{\"setting\":" << json_string(q.search) << ",\"recall\":" << json_number(q.recall)
        << ",\"qps\":" << json_number(q.qps) << ",\"p50_us\":" << json_number(q.p50_us)
        << ",\"p99_us\":" << json_number(q.p99_us) << "}";
    }
    j << "]}";
  }
  j << "],\n\"checks\":" << checks_json(page) << "}";
  return j.str();
}

}  // namespace

std::vector<page_curve> page_curves(const std::vector<result_row>& rows, const std::vector<index_entry>& entries) {
  auto entry_named = [&](const std::string& name) -> const index_entry* {
    for (const index_entry& e : entries)
      if (e.name == name) return &e;
    return nullptr;
  };
  std::vector<page_curve> out;
  for (const auto& curve : curves(rows)) {
    const auto& rs = curve.second;
    const result_row& r = *rs.front();
    page_curve c;
    c.library = r.library;
    c.measured.index = r.index;
    c.measured.build = r.build_params;
    c.measured.bytes_per_vector = r.bytes_per_vector;
    c.measured.build_s = r.build_s;
    const index_entry* e = entry_named(r.index);
    if (!e && c.annulus()) e = entry_named(r.index.substr(0, r.index.rfind("-s")));  // sharded: "hnsw-s4"
    if (e) c.measured.growth = e->growth;
    for (const result_row* p : rs)
      c.measured.sweep.push_back({p->search_params, p->recall, p->qps_1t, p->p50_us, p->p99_us});
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<page_curve> page_curves(const advisor_report& advice) {
  std::vector<page_curve> out;
  for (const advisor_candidate& a : advice.ranked) out.push_back({.library = "annulus", .measured = a});
  return out;
}

void write_html(const std::filesystem::path& file, const page_data& page) {
  std::string html = page_template;
  const auto slot = html.find(data_slot);
  if (slot == std::string::npos) throw std::logic_error("report_page.html has no measurements slot");
  html.replace(slot, std::string(data_slot).size(), page_json(page));
  std::ofstream out(file);
  out << html;
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

}  // namespace annulus::bench
