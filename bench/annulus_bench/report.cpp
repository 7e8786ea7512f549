#include "report.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

namespace annulus::bench {
namespace {

// "annulus flat", "faiss-hnsw m=16,ef_construction=200": peers' names already say their library.
std::string curve_name(const result_row& r) {
  return (r.library == "annulus" ? "annulus " : "") + r.index +
         (r.build_params.empty() ? "" : " " + r.build_params);
}

// Rows grouped into curves (one per library, index and build parameters).
std::map<std::string, std::vector<const result_row*>> curves(const std::vector<result_row>& rows) {
  std::map<std::string, std::vector<const result_row*>> out;
  for (const result_row& r : rows) out[curve_name(r)].push_back(&r);
  return out;
}

std::vector<curve_point> frontier_of(const std::vector<const result_row*>& rows) {
  std::vector<curve_point> pts;
  for (const result_row* r : rows) pts.push_back({r->recall, r->qps_1t});
  return pareto_frontier(pts);
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
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
     << "| annulus | peer | recall | annulus QPS | peer QPS | annulus / peer |\n"
     << "|---|---|---|---|---|---|\n";
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
           << (a && b ? fmt("%.2fx", *a / *b) : "n/a") << " |\n";
        any = true;
      }
    }
  }
  if (!any) md << "| (no annulus index with a peer in this run) | | | | | |\n";
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

bool write_plot(const std::filesystem::path& file, const std::vector<result_row>& rows) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "gnuplot not found (apt-get install gnuplot-nox): no %s\n",
                 file.string().c_str());
    return false;
  }
  const auto all = curves(rows);
  const std::filesystem::path data = file.parent_path() / "recall_qps.dat";
  const std::filesystem::path script = file.parent_path() / "recall_qps.gp";
  {
    std::ofstream dat(data);
    for (const auto& [name, rs] : all) {
      dat << "# " << name << '\n';
      for (const curve_point& p : frontier_of(rs)) dat << p.recall << ' ' << p.qps << '\n';
      dat << "\n\n";
    }
    std::ofstream gp(script);
    gp << "set terminal pngcairo size 1000,750 noenhanced\nset output '" << file.string() << "'\n"
       << "set xlabel 'recall@" << rows.front().k << "'\nset ylabel 'queries per second, 1 thread'\n"
       << "set logscale y\nset grid\nset key below\nset xrange [*:1.002]\n"
       << "set title '" << rows.front().dataset << " (" << rows.front().metric << ")'\nplot ";
    std::size_t i = 0;
    for (const auto& [name, rs] : all) {
      gp << (i ? ", " : "") << "'" << data.string() << "' index " << i
         << " with linespoints title '" << name << "'";
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
