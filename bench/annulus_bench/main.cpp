// annulus-bench: recall / QPS / memory sweeps of annulus's indexes and their
// FAISS and hnswlib peers on one dataset, in one process, with the same
// threads. See --help and docs/benchmarks.md.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "advise.hpp"
#include "bench_index.hpp"
#include "dataset.hpp"
#include "peer_threads.hpp"
#include "peers.hpp"
#include "persist.hpp"
#include "report.hpp"
#include "report_html.hpp"
#include "runner.hpp"

namespace fs = std::filesystem;
using namespace annulus::bench;

namespace {

struct selection {
  const index_entry* entry;
  params build;
  std::vector<std::string> sweep;
  bool named = true;          // by the user, not through "all"
  bool default_sweep = true;  // not from --sweep: may stop early (run_options::stop_recall)
};

// "flat,hnsw:m=32,ef_construction=400" -> {flat: {}, hnsw: {m=32, ef_construction=400}}:
// a piece with '=' and no ':' continues the previous index's parameters.
std::vector<std::pair<std::string, std::string>> parse_index_list(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& piece : split(text, ',')) {
    const auto colon = piece.find(':');
    if (colon != std::string::npos) {
      out.emplace_back(piece.substr(0, colon), piece.substr(colon + 1));
    } else if (piece.find('=') != std::string::npos) {
      if (out.empty()) throw usage_error("--index: parameter '" + piece + "' before any index name");
      out.back().second += (out.back().second.empty() ? "" : ",") + piece;
    } else {
      out.emplace_back(piece, "");
    }
  }
  return out;
}

const index_entry& find_entry(const std::vector<index_entry>& all, const std::string& name,
                              const std::string& option) {
  for (const index_entry& e : all)
    if (e.name == name) return e;
  std::string known;
  for (const index_entry& e : all) known += (known.empty() ? "" : ", ") + e.name;
  throw usage_error(option + ": unknown index '" + name + "' (known: " + known + ")");
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

// One progress line on stderr: step i of n, elapsed, ETA. Rewritten in place
// on a terminal; one line per step into a log.
class progress_line {
 public:
  explicit progress_line(std::size_t steps) : steps_(steps), tty_(isatty(2)) {}
  void step(const std::string& what) {
    const double elapsed = seconds();
    const std::string eta =
        done_ ? ", ETA " + std::to_string(int(elapsed / double(done_) * double(steps_ - done_))) + " s" : "";
    std::fprintf(stderr, "%s[%zu/%zu] %s  (%.0f s elapsed%s)%s", tty_ ? "\r\033[K" : "", done_ + 1,
                 steps_, what.c_str(), elapsed, eta.c_str(), tty_ ? "" : "\n");
    ++done_;
  }
  /// Steps planned but not run (a sweep that stopped early).
  void skip(std::size_t n) { steps_ -= std::min(n, steps_ - done_); }
  void finish() { std::fprintf(stderr, "%sdone in %.0f s\n", tty_ ? "\r\033[K" : "", seconds()); }

 private:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  std::size_t steps_, done_ = 0;
  bool tty_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

int run(int argc, char** argv) {
  CLI::App app{"annulus-bench: recall, QPS, latency, build time and memory of annulus's indexes "
               "and their FAISS / hnswlib peers, on the same data, metric, k and threads."};
  std::string data, metric, index_list = "all", peers = "all", out_dir = "annulus-bench-out";
  std::vector<std::string> sweeps;
  run_options opt;
  std::size_t max_queries = 0, shards = 1;
  bool quick = false;
  app.add_option("--data", data, "texmex directory (base.fvecs, query.fvecs[, groundtruth.ivecs, "
                 "groundtruth_dist.fvecs]) or ann-benchmarks .hdf5 file, or synthetic:NxD (the default's "
                 "mixture at N x D, generated); default: a generated clustered set (100,000 x 128, "
                 "1,000 queries, fixed seed)");
  app.add_option("--metric", metric, "l2 | ip | cosine (default: the data's own, else l2)")
      ->check(CLI::IsMember({"l2", "ip", "cosine", "inner_product"}));
  app.add_option("--index", index_list, "annulus indexes, comma-separated, each optionally with "
                 "build parameters: flat,hnsw:m=32,ef_construction=400 (default: all)");
  app.add_option("--peers", peers, "none | all (the peers of the chosen indexes found at build "
                 "time) | a list like --index: faiss-flat,faiss-hnsw,hnswlib (default: all)");
  app.add_option("--sweep", sweeps, "override a search knob's default sweep: ef=10,20,40 "
                 "(repeatable, one per knob)");
  app.add_option("--k", opt.k, "neighbours per query (default 10)")->check(CLI::PositiveNumber);
  app.add_option("--threads", opt.threads, "threads for build and batch search; 0 = all cores "
                 "(default 0)");
  app.add_option("--queries", max_queries, "use only the first N queries (default: all)");
  app.add_option("--shards", shards, "also run each annulus index as a sharded_index of S shards "
                 "(round-robin, each with the index's build parameters), reported as INDEX-sS (default 1: no)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--out", out_dir, "output directory (default annulus-bench-out)");
  std::string html;
  app.add_option("--html", html, "where to write the interactive report page; every benchmark and --advise "
                 "run writes one (default OUT/report.html)");
  app.add_option("--repeat", opt.repeat, "single-query runs per setting, medians reported; the batch pass "
                 "(recall, qps_all) runs once (default 3)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--quick", quick, "small default dataset and short sweeps, for smoke runs");
  app.add_option("--save", opt.save_dir, "after each index's sweep, save it into this directory and open it "
                 "back: save, load, view-open and cold first-query times, file size (persist.csv)");
  app.add_option("--load", opt.load_dir, "open each index from the file a --save run wrote into this "
                 "directory instead of building it (build_s is then the load time)");
  std::string report;
  app.add_option("--report", report, "print a report on the dataset instead of benchmarking: "
                 "geometry (norm statistics, dot vs cosine / l2 top-k agreement; eval/geometry.hpp)")
      ->check(CLI::IsMember({"geometry"}));
  bool advise_mode = false;
  double target_recall = 0.95;
  std::string ram_budget = "inf", p99 = "inf", plan_n;
  app.add_flag("--advise", advise_mode, "recommend an index for this data instead of benchmarking: builds and "
               "sweeps candidates (eval/advisor.hpp) and ranks them against the targets below; writes OUT/advice.md");
  app.add_option("--target-recall", target_recall, "--advise: recall@k to reach (default 0.95)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--ram-budget", ram_budget, "--advise: index RAM at the planned count: 2GiB, 500GB, 1e9 (default: open)");
  app.add_option("--p99", p99, "--advise: one-query p99 latency at the planned count: 5ms, 500us (default: open)");
  app.add_option("--plan-n", plan_n, "--advise: vectors to plan for: 1e9, 2000000 (default: the data's rows)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  annulus::advisor_goals goals;  // parsed now, so a typo fails before any data is made
  for (const char* option : {"--target-recall", "--ram-budget", "--p99", "--plan-n"})
    if (!advise_mode && app.count(option)) throw usage_error(std::string(option) + " is a target for --advise");
  for (const char* option : {"--index", "--peers", "--sweep", "--shards", "--save", "--load", "--report"})
    if (advise_mode && app.count(option))
      throw usage_error(std::string(option) + " does not apply to --advise (it chooses its own candidates)");
  if (advise_mode) {
    if (!(target_recall > 0)) throw usage_error("--target-recall must be in (0, 1]");
    goals = {.k = opt.k, .target_recall = target_recall, .ram_budget_bytes = parse_bytes(ram_budget, "--ram-budget"),
             .p99_us = parse_duration_us(p99, "--p99"), .plan_n = plan_n.empty() ? 0 : parse_count(plan_n, "--plan-n"),
             .threads = opt.threads};
  }

  // Resolve every name and parameter before touching data: typos fail at once.
  const std::vector<index_entry> all = registry();
  std::vector<selection> chosen;
  auto add = [&](const std::string& name, const std::string& build_text, const std::string& option,
                 bool named = true) {
    const index_entry& e = find_entry(all, name, option);
    const params given = params::parse(build_text, name + " build parameters");
    chosen.push_back({&e, quick ? e.quick_build.merged(given) : given,
                      quick ? e.quick_sweep : e.sweep, named});
  };
  if (index_list == "all") {
    for (const index_entry& e : all)
      if (e.library == "annulus") add(e.name, "", "--index", false);
  } else {
    for (const auto& [name, build] : parse_index_list(index_list)) {
      if (find_entry(all, name, "--index").library != "annulus")
        throw usage_error("--index: '" + name + "' is a peer; name it in --peers");
      add(name, build, "--index");
    }
  }
  const std::size_t n_annulus = chosen.size();
  if (peers == "all") {
    // Each peer once, however many annulus indexes it is compared with
    // (hnsw and hnsw_sq8 share hnswlib and faiss-hnsw).
    auto chosen_already = [&](const index_entry& e) {
      return std::any_of(chosen.begin(), chosen.end(), [&](const selection& c) { return c.entry == &e; });
    };
    for (std::size_t i = 0; i < n_annulus; ++i)
      for (const index_entry& e : all)
        if (e.library != "annulus" && e.peer_of == chosen[i].entry->compared_as() && !chosen_already(e))
          add(e.name, "", "--peers");
  } else if (peers != "none") {
    for (const auto& [name, build] : parse_index_list(peers)) {
      if (find_entry(all, name, "--peers").library == "annulus")
        throw usage_error("--peers: '" + name + "' is an annulus index; name it in --index");
      add(name, build, "--peers");
    }
  }
  if (shards > 1)
    for (std::size_t i = 0; i < n_annulus; ++i) {
      selection sharded = chosen[i];
      sharded.build.set("shards", std::to_string(shards));
      chosen.push_back(std::move(sharded));
    }
  if (peers != "none" && all.size() == n_annulus)
    std::fprintf(stderr, "note: FAISS and hnswlib were not found at configure time: no peers\n");
  for (const std::string& s : sweeps) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) throw usage_error("--sweep: expected knob=v1,v2,... got '" + s + "'");
    const std::string knob = s.substr(0, eq);
    bool used = false;
    for (selection& c : chosen)
      if (c.entry->knob == knob) c.sweep = split(s.substr(eq + 1), ','), c.default_sweep = false, used = true;
    if (!used) throw usage_error("--sweep: no chosen index has the search parameter '" + knob + "'");
  }

  fs::create_directories(out_dir);
  dataset_request req;
  req.path = data;
  if (!metric.empty()) req.metric = parse_metric(metric);
  req.k = opt.k;
  req.max_queries = max_queries;
  req.quick = quick;
  req.out_dir = out_dir;
  req.threads = opt.threads;
  const dataset ds = load_dataset(req);
  std::fprintf(stderr, "dataset %s: %zu x %zu, %zu queries, %s\n", ds.name.c_str(), ds.base.rows(),
               ds.base.cols(), ds.queries.rows(), std::string(annulus::metric_name(ds.metric)).c_str());
  if (html.empty()) html = (fs::path(out_dir) / "report.html").string();
  if (fs::path(html).has_parent_path()) fs::create_directories(fs::path(html).parent_path());
  if (advise_mode) return run_advise(ds, goals, out_dir, html);
  if (report == "geometry") {
    std::printf("%s", annulus::geometry(ds.base.view(), ds.queries.view(), {.k = opt.k, .threads = opt.threads})
                          .summary().c_str());
    return 0;
  }

  // Indexes for another metric: skipped when they came with "all", an error when named.
  std::erase_if(chosen, [&](const selection& c) {
    const auto& m = c.entry->metrics;
    if (std::find(m.begin(), m.end(), ds.metric) != m.end()) return false;
    std::string can;
    for (const annulus::metric_kind k : m) can += (can.empty() ? "" : ", ") + std::string(annulus::metric_name(k));
    const std::string why = c.entry->name + " searches under " + can + ", not " +
                            std::string(annulus::metric_name(ds.metric));
    if (c.named) throw usage_error(why);
    std::fprintf(stderr, "note: %s: skipped\n", why.c_str());
    return true;
  });

  std::size_t steps = 0;
  for (const selection& c : chosen) steps += 1 + std::max<std::size_t>(1, c.sweep.size());
  progress_line progress(steps);
  std::vector<result_row> rows;
  std::vector<persist_row> persisted;
  for (const selection& c : chosen) {
    run_options entry_opt = opt;
    if (!c.default_sweep) entry_opt.stop_recall = entry_opt.stop_gain = -1;  // every point asked for
    auto r = run_entry(*c.entry, c.build, c.sweep, ds, entry_opt,
                       [&](const std::string& what, double) { progress.step(what); });
    // Steps counted but not run (values at or below k dropped, or past an
    // early stop): run_entry measures at most max(1, sweep size) points.
    progress.skip(std::max<std::size_t>(1, c.sweep.size()) - r.rows.size());
    rows.insert(rows.end(), r.rows.begin(), r.rows.end());
    persisted.insert(persisted.end(), r.persisted.begin(), r.persisted.end());
  }
  progress.finish();

  const std::string context =
      "Dataset " + ds.name + " (" + std::to_string(ds.base.rows()) + " x " +
      std::to_string(ds.base.cols()) + ", " + std::to_string(ds.queries.rows()) + " queries, " +
      std::string(annulus::metric_name(ds.metric)) + "), k = " + std::to_string(opt.k) +
      ", threads = " + std::to_string(annulus::resolve_threads(opt.threads)) + ", repeat = " +
      std::to_string(opt.repeat) + ". Machine: " + cpu_model() + ", " +
      std::to_string(std::thread::hardware_concurrency()) + " cores; annulus SIMD target " +
      annulus::kernels::simd_target().describe() + "; peer BLAS: " + blas_description() + ".";
  // What the run leaves out to finish in about two minutes on 2 cores, said
  // where its figures are read.
  char budget[32];
  std::snprintf(budget, sizeof budget, "%g", opt.single_budget_s);
  const std::string sizing =
      "How the run is sized (so that the default one ends in about two minutes on 2 cores): single-query timing "
      "stops after " + std::string(budget) + " s a run (at least " + std::to_string(opt.min_single_queries) +
      " queries), each such figure the median of " + std::to_string(opt.repeat) + " runs (--repeat); the batch "
      "pass (recall, qps_all) and builds are timed once; default sweeps stop at the first setting reaching recall " +
      std::to_string(opt.stop_recall).substr(0, 5) + " or after two steps that each gain less than " +
      std::to_string(opt.stop_gain).substr(0, 5) + " (a --sweep runs every value given), and ef or search_k values "
      "at or below k, which run as k, are dropped; each peer is built once. Unless given, the IVF indexes, "
      "annulus's and FAISS's alike, train on " + std::to_string(ivf_train_rows_per_list) + " rows a list, at least " +
      std::to_string(ivf_min_train_rows) + " (train_size; both libraries default to 256), and 8-bit IVF-PQ on "
      "both sides runs fewer k-means iterations per sub-quantizer than the libraries' defaults (pq_iterations): "
      "the build parameters in each row are the ones that ran.";
  print_table(rows);
  write_csv(fs::path(out_dir) / "results.csv", rows);
  write_summary(fs::path(out_dir) / "summary.md", rows, all, context + "\n\n" + sizing);
  if (!persisted.empty()) {
    print_persist_table(persisted);
    write_persist_csv(fs::path(out_dir) / "persist.csv", persisted);
    std::ofstream(fs::path(out_dir) / "summary.md", std::ios::app) << persist_summary(persisted, all);
  }
  const bool plotted = write_plot(fs::absolute(out_dir) / "recall_qps.png", rows);
  page_data page{.title = "annulus-bench: " + ds.name, .context = context,
                 .metric = std::string(annulus::metric_name(ds.metric)), .k = opt.k, .rows = ds.base.rows(),
                 .dim = ds.base.cols(), .queries = ds.queries.rows(),
                 .threads = annulus::resolve_threads(opt.threads), .goals = {.k = opt.k}, .curves = page_curves(rows, all)};
  write_html(html, page);
  std::printf("\n%s\nwrote %s/results.csv, %s/summary.md%s, %s\n", context.c_str(), out_dir.c_str(),
              out_dir.c_str(), plotted ? (", " + out_dir + "/recall_qps.png").c_str() : "", html.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  use_passive_openmp(argv);
  try {
    return run(argc, argv);
  } catch (const usage_error& e) {
    std::fprintf(stderr, "\nannulus-bench: %s\n", e.what());
  } catch (const annulus::error& e) {
    std::fprintf(stderr, "\nannulus-bench: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nannulus-bench: unexpected error: %s\n", e.what());
  }
  return 2;
}
