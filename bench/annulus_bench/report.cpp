#include "report.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

namespace annulus::bench {

std::string curve_name(const std::string& library, const std::string& index, const std::string& build) {
  return (library == "annulus" ? "annulus " : "") + index + (build.empty() ? "" : " " + build);
}

std::map<std::string, std::vector<const result_row*>> curves(const std::vector<result_row>& rows) {
  std::map<std::string, std::vector<const result_row*>> out;
  for (const result_row& r : rows) out[curve_name(r.library, r.index, r.build_params)].push_back(&r);
  return out;
}

namespace {

std::vector<curve_point> frontier_of(const std::vector<const result_row*>& rows) {
  std::vector<curve_point> pts;
  for (const result_row* r : rows) pts.push_back({r->recall, r->qps_1t});
  return pareto_frontier(pts);
}

// The measured setting that reaches `target` recall fastest: what a user
// would configure (the interpolated QPS of the summary lies between it and
// the setting below). Null when no point reaches the target.
const result_row* setting_for(const std::vector<const result_row*>& rows, double target) {
  const result_row* best = nullptr;
  for (const result_row* r : rows)
    if (r->recall >= target && (!best || r->qps_1t > best->qps_1t)) best = r;
  return best;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A point's search setting as the user would pass it ("ef=96"; "default"
// for an index without a knob), or "-" for none.
std::string setting_text(const result_row* r) {
  if (!r) return "-";
  return r->search_params.empty() ? "default" : r->search_params;
}

// CSV field: quoted when it holds a comma or a quote.
std::string field(const std::string& s) {
  if (s.find_first_of(",\"") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace

void print_table(const std::vector<result_row>& rows) {
  std::printf("\n%-9s %-15s %-28s %-14s %7s %9s %9s %7s %10s %10s %9s %9s\n", "library", "index",
              "build", "search", "recall", "qps_1t", "qps_all", "build_s", "bytes/vec",
              "rss B/vec", "p50_us", "p99_us");
  for (const result_row& r : rows)
    std::printf("%-9s %-15s %-28s %-14s %7.4f %9.1f %9.1f %7.2f %10.1f %10.1f %9.1f %9.1f\n",
                r.library.c_str(), r.index.c_str(), r.build_params.c_str(),
                r.search_params.c_str(), r.recall, r.qps_1t, r.qps_all, r.build_s,
                r.bytes_per_vector, r.rss_bytes_per_vector, r.p50_us, r.p99_us);
}

void write_csv(const std::filesystem::path& file, const std::vector<result_row>& rows) {
  std::ofstream out(file);
  out << csv_header << '\n';
  for (const result_row& r : rows)
    out << field(r.dataset) << ',' << r.metric << ',' << r.library << ',' << r.index << ','
        << field(r.build_params) << ',' << field(r.search_params) << ',' << r.threads << ','
        << r.k << ',' << fmt("%.4f", r.build_s) << ',' << fmt("%.2f", r.bytes_per_vector) << ','
        << fmt("%.6f", r.recall) << ',' << fmt("%.2f", r.qps_1t) << ','
        << fmt("%.2f", r.qps_all) << ',' << fmt("%.2f", r.p50_us) << ','
        << fmt("%.2f", r.p99_us) << '\n';
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

void write_summary(const std::filesystem::path& file, const std::vector<result_row>& rows,
                   const std::vector<index_entry>& entries, const std::string& context) {
  static constexpr double targets[] = {0.90, 0.95, 0.99};
  const auto all = curves(rows);
  std::ostringstream md;
  md << "# annulus-bench summary\n\n" << context << "\n\n"
     << "QPS with one query per call on one thread, read off each curve's Pareto frontier at "
        "recall@" << (rows.empty() ? 10 : rows.front().k)
     << " (interpolated; n/a: the curve never reaches it).\n\n"
     << "| annulus | peer | recall | annulus QPS | peer QPS | annulus / peer | annulus setting | peer setting |\n"
     << "|---|---|---|---|---|---|---|---|\n";
  bool any = false;
  for (const auto& [name, ours] : all) {
    if (ours.front()->library != "annulus") continue;
    const auto ours_front = frontier_of(ours);
    for (const auto& [peer_name, theirs] : all) {
      const result_row& p = *theirs.front();
      bool is_peer = false;
      const index_entry* mine = nullptr;
      for (const index_entry& e : entries)
        if (e.name == ours.front()->index) mine = &e;
      for (const index_entry& e : entries)
        is_peer |= mine && e.library != "annulus" && e.name == p.index && e.peer_of == mine->compared_as();
      if (!is_peer) continue;
      const auto peer_front = frontier_of(theirs);
      for (double t : targets) {
        const auto a = qps_at_recall(ours_front, t), b = qps_at_recall(peer_front, t);
        md << "| " << name << " | " << peer_name << " | " << fmt("%.2f", t) << " | "
           << (a ? fmt("%.1f", *a) : "n/a") << " | " << (b ? fmt("%.1f", *b) : "n/a") << " | "
           << (a && b ? fmt("%.2fx", *a / *b) : "n/a") << " | " << setting_text(setting_for(ours, t)) << " | "
           << setting_text(setting_for(theirs, t)) << " |\n";
        any = true;
      }
    }
  }
  if (!any) md << "| (no annulus index with a peer in this run) | | | | | | | |\n";
  md << "\nThe setting to use for each recall target: the measured point that reaches it "
        "with the most QPS (recall, QPS); -: no point reaches it.\n\n| curve |";
  for (double t : targets) md << " recall " << fmt("%.2f", t) << " |";
  md << "\n|---|";
  for (std::size_t i = 0; i < std::size(targets); ++i) md << "---|";
  md << '\n';
  for (const auto& [name, rs] : all) {
    md << "| " << name << " |";
    for (double t : targets) {
      const result_row* r = setting_for(rs, t);
      md << ' ' << (r ? setting_text(r) + fmt(" (%.3f, ", r->recall) + fmt("%.0f QPS)", r->qps_1t) : "-") << " |";
    }
    md << '\n';
  }
  md << "\nBuild time and memory per curve:\n\n| curve | build_s | bytes/vector (index) | "
        "bytes/vector (RSS delta) |\n|---|---|---|---|\n";
  for (const auto& [name, rs] : all)
    md << "| " << name << " | " << fmt("%.2f", rs.front()->build_s) << " | "
       << fmt("%.1f", rs.front()->bytes_per_vector) << " | "
       << fmt("%.1f", rs.front()->rss_bytes_per_vector) << " |\n";
  std::ofstream out(file);
  out << md.str();
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

// Legend labels: the library and index, with the build parameters only where
// one index runs with several (the full names are in summary.md).
std::map<std::string, std::string> legend_labels(const std::map<std::string, std::vector<const result_row*>>& all) {
  std::map<std::string, int> uses;
  auto short_name = [](const result_row& r) { return (r.library == "annulus" ? "annulus " : "") + r.index; };
  for (const auto& [name, rs] : all) ++uses[short_name(*rs.front())];
  std::map<std::string, std::string> out;
  for (const auto& [name, rs] : all) out[name] = uses[short_name(*rs.front())] > 1 ? name : short_name(*rs.front());
  return out;
}

// Inside a gnuplot single-quoted string a quote is written twice.
std::string gp_quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

bool write_plot(const std::filesystem::path& file, const std::vector<result_row>& rows) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "gnuplot not found (apt-get install gnuplot-nox): no %s\n",
                 file.string().c_str());
    return false;
  }
  const auto all = curves(rows);
  const auto labels = legend_labels(all);
  const std::filesystem::path data = file.parent_path() / "recall_qps.dat";
  const std::filesystem::path script = file.parent_path() / "recall_qps.gp";
  // Sixteen colours no two of which are easily confused (after Tableau 10 and
  // Kelly's list); a run with more curves repeats them with another point shape.
  static constexpr const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                                            "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#000000", "#469990",
                                            "#005c31", "#993f00", "#4c005c", "#ffa405"};
  {
    std::ofstream dat(data);
    for (const auto& [name, rs] : all) {
      dat << "# " << name << '\n';
      for (const curve_point& p : frontier_of(rs)) dat << p.recall << ' ' << p.qps << '\n';
      dat << "\n\n";
    }
    // Recall on a log(1 - recall) axis: 0.9, 0.99 and 0.999 equally apart,
    // so the range that matters is not a sliver at the right edge. Recall 1
    // is drawn at 0.9995.
    std::ofstream gp(script);
    gp << "set terminal pngcairo size 1200,700 noenhanced font ',10'\nset output " << gp_quoted(file.string()) << "\n"
       << "set xlabel 'recall@" << rows.front().k << " (axis: -log10(1 - recall))'\n"
       << "set ylabel 'queries per second, 1 thread (log)'\n"
       << "set logscale y\nset grid\nset xrange [0:3.4]\n"
       << "set xtics ('0' 0, '0.5' 0.30103, '0.8' 0.69897, '0.9' 1, '0.95' 1.30103, '0.98' 1.69897, "
          "'0.99' 2, '0.995' 2.30103, '0.999' 3, '1' 3.30103)\n"
       << "set key outside right top vertical Left reverse font ',9' spacing 1.1 samplen 3\n"
       << "set title " << gp_quoted(rows.front().dataset + " (" + rows.front().metric +
                                  "): solid = annulus, dashed = peers; each curve its Pareto frontier")
       << "\nplot ";
    std::size_t i = 0;
    for (const auto& [name, rs] : all) {
      const bool ours = rs.front()->library == "annulus";
      const std::size_t c = i % std::size(colours);
      const int shape = ours ? 7 + 2 * int(i / std::size(colours) % 3) : 6 + 2 * int(i / std::size(colours) % 3);
      gp << (i ? ", \\\n  " : "") << gp_quoted(data.string()) << " index " << i
         << " using (-log10(1 - ($1 < 0.9995 ? $1 : 0.9995))):2 with linespoints lw 2 dt " << (ours ? 1 : 2)
         << " pt " << shape << " ps 0.8 lc rgb '" << colours[c] << "' title " << gp_quoted(labels.at(name));
      ++i;
    }
    gp << '\n';
  }
  const std::string cmd = "gnuplot '" + script.string() + "' 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "gnuplot failed: no %s\n", file.string().c_str());
    return false;
  }
  return true;
}

}  // namespace annulus::bench
