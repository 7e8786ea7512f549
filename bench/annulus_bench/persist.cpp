#include "persist.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "results.hpp"

namespace annulus::bench {
namespace {

using clock_type = std::chrono::steady_clock;

template <class F>
double timed_s(F&& f) {
  const auto t = clock_type::now();
  f();
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

// Drops the file's pages from the page cache (they are clean once written
// and closed), so the next open reads the disk: no root needed.
void evict(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

bool same(const result_matrix& a, const result_matrix& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto x = a[i], y = b[i];
    if (!std::equal(x.begin(), x.end(), y.begin(), y.end())) return false;
  }
  return true;
}

std::string fmt(std::optional<double> v, const char* f = "%.1f") {
  if (!v) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, f, *v);
  return buf;
}

}  // namespace

std::optional<persist_row> measure_persistence(const index_entry& entry, const params& build,
                                               const params& point, bench_index& built, const dataset& ds,
                                               const run_options& opt, const std::filesystem::path& dir) {
  if (!entry.open) return std::nullopt;
  std::filesystem::create_directories(dir);
  const std::filesystem::path file = dir / (entry.name + entry.file_extension);
  persist_row row;
  row.library = entry.library;
  row.index = entry.name;
  row.vectors = ds.base.rows();
  row.memory_bytes = built.memory_bytes();
  const std::size_t reps = std::max<std::size_t>(1, opt.repeat);

  std::vector<double> save, load, view, cold;
  for (std::size_t r = 0; r < reps; ++r) {
    bool saved = true;
    save.push_back(timed_s([&] { saved = built.save(file.string()); }));
    if (!saved) return std::nullopt;
  }
  row.file_bytes = std::filesystem::file_size(file);

  built.configure(point);
  const result_matrix want = built.search_all(ds.queries, opt.k, opt.threads);
  std::unique_ptr<bench_index> opened;
  for (std::size_t r = 0; r < reps; ++r) {
    opened.reset();
    load.push_back(timed_s([&] { opened = entry.open(ds, build, file.string(), false); }));
  }
  row.load_s = median(load);
  row.save_s = median(save);
  opened->configure(point);
  row.same_answers = same(opened->search_all(ds.queries, opt.k, opt.threads), want);
  opened.reset();

  bool viewable = true;
  try {
    for (std::size_t r = 0; r < reps; ++r) {
      std::unique_ptr<bench_index> v;
      view.push_back(timed_s([&] { v = entry.open(ds, build, file.string(), true); }) * 1e3);
      if (r == 0) {
        v->configure(point);
        row.same_answers = row.same_answers && same(v->search_all(ds.queries, opt.k, opt.threads), want);
      }
    }
    row.view_open_ms = median(view);
  } catch (const not_supported& e) {
    viewable = false;
    row.note = e.what();
  }

  // Cold: the file's pages dropped, then open and answer one query.
  row.cold_first_how = viewable ? "view" : "load";
  std::vector<neighbor> out(opt.k);
  for (std::size_t r = 0; r < reps; ++r) {
    evict(file);
    cold.push_back(timed_s([&] {
                     auto idx = entry.open(ds, build, file.string(), viewable);
                     idx->configure(point);
                     idx->search_one(ds.queries.row(0), opt.k, out);
                   }) *
                   1e3);
  }
  row.cold_first_ms = median(cold);
  return row;
}

void print_persist_table(const std::vector<persist_row>& rows) {
  std::printf("\n%-16s %-8s %10s %9s %9s %9s %10s %12s %6s\n", "index", "library", "file MB", "file/mem",
              "save s", "load s", "view ms", "cold 1st ms", "same");
  for (const persist_row& r : rows)
    std::printf("%-16s %-8s %10.1f %9.3f %9.3f %9.3f %10s %8s %-4s %6s\n", r.index.c_str(), r.library.c_str(),
                double(r.file_bytes) / 1e6, r.memory_bytes ? double(r.file_bytes) / double(r.memory_bytes) : 0.0,
                r.save_s, r.load_s, fmt(r.view_open_ms, "%.2f").c_str(), fmt(r.cold_first_ms).c_str(),
                r.cold_first_how.c_str(), r.same_answers ? "yes" : "NO");
}

void write_persist_csv(const std::filesystem::path& file, const std::vector<persist_row>& rows) {
  std::ofstream out(file);
  out << "library,index,vectors,file_bytes,memory_bytes,save_s,load_s,view_open_ms,cold_first_ms,cold_first_how,"
         "same_answers\n";
  for (const persist_row& r : rows)
    out << r.library << ',' << r.index << ',' << r.vectors << ',' << r.file_bytes << ',' << r.memory_bytes << ','
        << r.save_s << ',' << r.load_s << ',' << fmt(r.view_open_ms, "%.4f") << ','
        << fmt(r.cold_first_ms, "%.4f") << ',' << r.cold_first_how << ',' << (r.same_answers ? 1 : 0) << '\n';
}

std::string persist_summary(const std::vector<persist_row>& rows, const std::vector<index_entry>& entries) {
  if (rows.empty()) return "";
  std::ostringstream md;
  md << "\n## Saved indexes (--save)\n\n"
        "Save (annulus: atomic and fsynced), load into memory with the file in the page cache, open as a "
        "memory-mapped view, and open plus a first query with the file's pages dropped from the cache; "
        "medians of the repeats. Bytes per vector from the file.\n\n"
        "| index | library | bytes/vector (file) | file / memory_bytes | save s | load s | view open ms | "
        "cold open + 1st query ms | same answers |\n|---|---|---|---|---|---|---|---|---|\n";
  char buf[512];
  for (const persist_row& r : rows) {
    std::snprintf(buf, sizeof buf, "| %s | %s | %.0f | %.3f | %.3f | %.3f | %s | %s (%s) | %s |\n",
                  r.index.c_str(), r.library.c_str(), double(r.file_bytes) / double(std::max<std::size_t>(1, r.vectors)),
                  r.memory_bytes ? double(r.file_bytes) / double(r.memory_bytes) : 0.0, r.save_s, r.load_s,
                  fmt(r.view_open_ms, "%.2f").c_str(), fmt(r.cold_first_ms).c_str(), r.cold_first_how.c_str(),
                  r.same_answers ? "yes" : "**no**");
    md << buf;
  }
  // Ratios against the peers of the same annulus index, from this run.
  std::map<std::string, std::string> family;  // entry name -> the annulus index its comparisons go by
  for (const index_entry& e : entries) family[e.name] = e.compared_as();
  bool header = false;
  for (const persist_row& a : rows) {
    if (a.library != "annulus") continue;
    for (const persist_row& p : rows) {
      if (p.library == "annulus" || family[p.index] != family[a.index]) continue;
      if (!header) {
        md << "\nannulus / peer (below 1 is faster, or smaller, for annulus):\n\n"
              "| annulus | peer | load time | save time | file size | cold open + 1st query |\n|---|---|---|---|---|---|\n";
        header = true;
      }
      std::snprintf(buf, sizeof buf, "| %s | %s | %.2f | %.2f | %.2f | %s |\n", a.index.c_str(), p.index.c_str(),
                    a.load_s / p.load_s, a.save_s / p.save_s, double(a.file_bytes) / double(p.file_bytes),
                    a.cold_first_ms && p.cold_first_ms ? fmt(*a.cold_first_ms / *p.cold_first_ms, "%.3f").c_str()
                                                       : "n/a");
      md << buf;
    }
  }
  return md.str();
}

}  // namespace annulus::bench
