#include "runner.hpp"

#include "persist.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <malloc.h>
#include <unistd.h>

#include <annulus/eval/percentile.hpp>

namespace annulus::bench {
namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

struct single_run {
  double qps, p50_us, p99_us;
};

// One query per call on this thread, as a service calls it.
single_run time_single(bench_index& idx, const dataset& ds, const run_options& opt) {
  std::vector<neighbor> out(opt.k);
  std::vector<double> lat_us;
  lat_us.reserve(ds.queries.rows());
  const auto start = clock_type::now();
  for (std::size_t i = 0; i < ds.queries.rows(); ++i) {
    const auto t = clock_type::now();
    idx.search_one(ds.queries.row(i), opt.k, out);
    lat_us.push_back(seconds_since(t) * 1e6);
    if (i + 1 >= opt.min_single_queries && seconds_since(start) > opt.single_budget_s) break;
  }
  const double total = seconds_since(start);
  return {double(lat_us.size()) / total, percentile(lat_us, 0.5), percentile(lat_us, 0.99)};
}

}  // namespace

std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  return resident * std::size_t(sysconf(_SC_PAGESIZE));
}

entry_results run_entry(const index_entry& entry, const params& build, const std::vector<std::string>& sweep,
                        const dataset& ds, const run_options& opt, const progress_fn& progress) {
  params build_params = entry.default_build.merged(build);
  // The rows show what ran: an nlist too large for the data is lowered here,
  // once, with its note, and the index reads the lowered value; so is the
  // IVF training size: unless given, ivf_train_rows_per_list rows a list, at least
  // ivf_min_train_rows (the libraries' 256 a list cost the default run ~6 s
  // of k-means, annulus's and FAISS's alike), at most the rows.
  if (build_params.contains("nlist")) {
    const std::size_t nlist = ivf_list_count(build_params, ds.base.rows(), entry.name);
    const std::size_t train =
        std::min(ds.base.rows(), build_params.contains("train_size")
                                     ? build_params.get_size("train_size", 0)
                                     : std::max(ivf_min_train_rows, ivf_train_rows_per_list * nlist));
    build_params = build_params.merged(params::parse(
        "nlist=" + std::to_string(nlist) + ",train_size=" + std::to_string(train), entry.name));
  }
  // Parse every sweep point first: a typo fails before a long build.
  std::vector<params> points;
  for (const std::string& v : sweep) points.push_back(params::parse(entry.knob + "=" + v, entry.name));
  // A beam or candidate count below k runs as k (HNSW's ef, the forest's
  // search_k): in a default sweep such points repeat one another, so only the
  // largest of them is kept.
  if (opt.stop_recall >= 0 && (entry.knob == "ef" || entry.knob == "search_k")) {
    std::size_t below = 0;
    while (below + 1 < points.size() && points[below + 1].get_size(entry.knob, 0) <= opt.k) ++below;
    points.erase(points.begin(), points.begin() + std::ptrdiff_t(below));
  }
  if (points.empty()) points.emplace_back();

  const bool loading = !opt.load_dir.empty();
  const std::string file = opt.load_dir + "/" + entry.name + entry.file_extension;
  if (loading && !entry.open) throw usage_error("--load: " + entry.name + " cannot be opened from a file");
  progress((loading ? "loading " + file : "building " + entry.name) +
               (build_params.empty() ? "" : " " + build_params.str()),
           0);
  malloc_trim(0);  // return freed pages first, so the RSS delta is this index's
  const std::size_t rss_before = resident_bytes();
  const auto t0 = clock_type::now();
  const std::unique_ptr<bench_index> idx =
      loading ? entry.open(ds, build_params, file, false) : entry.build(ds, build_params, opt.threads);
  const double build_s = seconds_since(t0);  // with --load: the load
  const std::size_t rss_after = resident_bytes();
  // annulus-bench --shards (or shards=S): a sharded_index, its own curve.
  const std::size_t shards = build_params.get_size("shards", 1);
  build_params.require_all_used(entry.name + " build parameters");

  const double n = double(ds.base.rows());
  std::vector<result_row> rows;
  for (std::size_t p = 0; p < points.size(); ++p) {
    progress(entry.name + (points[p].empty() ? "" : " " + points[p].str()),
             double(p + 1) / double(points.size() + 1));
    idx->configure(points[p]);
    result_row r;
    r.dataset = ds.name;
    r.metric = std::string(metric_name(ds.metric));
    r.library = entry.library;
    r.index = shards > 1 ? entry.name + "-s" + std::to_string(shards) : entry.name;
    r.build_params = build_params.str() + (loading ? " (loaded)" : "");
    r.search_params = points[p].str();
    r.threads = resolve_threads(opt.threads);
    r.k = opt.k;
    r.build_s = build_s;
    r.bytes_per_vector = double(idx->memory_bytes()) / n;
    r.rss_bytes_per_vector = double(rss_after > rss_before ? rss_after - rss_before : 0) / n;

    // The single-query runs (their median is the headline figure), then one
    // batch pass over every query, warm, for recall and qps_all (repeating
    // it cost the default run ~15 s).
    std::vector<double> qps_1t, p50, p99;
    for (std::size_t rep = 0; rep < std::max<std::size_t>(1, opt.repeat); ++rep) {
      const single_run s = time_single(*idx, ds, opt);
      qps_1t.push_back(s.qps);
      p50.push_back(s.p50_us);
      p99.push_back(s.p99_us);
    }
    r.qps_1t = median(qps_1t);
    r.p50_us = median(p50);
    r.p99_us = median(p99);
    const auto t = clock_type::now();
    const result_matrix all = idx->search_all(ds.queries.view(), opt.k, opt.threads);
    r.qps_all = double(ds.queries.rows()) / seconds_since(t);
    r.recall = recall_at_k(all, ds.truth, ds.truth_dist, opt.k);
    rows.push_back(r);
    const bool reached = opt.stop_recall >= 0 && r.recall >= opt.stop_recall;
    // A plateau: two steps in a row that each add less than stop_gain.
    auto gain = [&](std::size_t i) { return rows[i].recall - rows[i - 1].recall; };
    const bool plateau = opt.stop_gain >= 0 && rows.size() >= 3 && gain(rows.size() - 1) < opt.stop_gain &&
                         gain(rows.size() - 2) < opt.stop_gain;
    if (reached || plateau) break;
  }
  entry_results out{std::move(rows), {}};
  if (!opt.save_dir.empty()) {
    progress("saving and opening " + entry.name, double(points.size()) / double(points.size() + 1));
    if (auto p = measure_persistence(entry, build_params, points.front(), *idx, ds, opt, opt.save_dir))
      out.persisted.push_back(*p);
  }
  return out;
}

}  // namespace annulus::bench
