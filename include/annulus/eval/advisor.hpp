// Which index, with which parameters, for this data and these targets:
// measured, not guessed. advise() builds a set of candidate indexes on the
// user's data (or a sample of it), sweeps each one's search knob until it
// reaches the target recall, times every setting one query per call as a
// service calls it, and ranks the candidates against three targets at the
// item count the user plans for: recall@k, index RAM, and p99 latency.
//
//   annulus::advisor_goals goals{.target_recall = 0.95, .ram_budget_bytes = 2e9,
//                                .p99_us = 5000, .plan_n = 1e9};
//   annulus::advisor_report a = annulus::advise<annulus::l2>(sample, queries, goals);
//   std::puts(a.argument.c_str());   // two sentences: what to build and why
//   std::puts(a.table().c_str());    // the evidence, one row per candidate
//
// Extrapolation to plan_n is a model, said in words with every candidate:
// exact search grows linearly with n; an HNSW walk grows with log n at a
// fixed beam (a floor: the beam for the same recall grows too); an inverted
// file grown to sqrt(n) lists scans ~sqrt(n) vectors a query at a fixed
// nprobe. Bytes per vector are taken as constant. The measured figures are
// for the sample; the planned ones are estimates and the table says which is
// which.
//
// Cost: every candidate is built once on `base` (a few seconds each at
// 10^5 x 128 on 2 cores), and the exact answers once with flat_index; every
// setting runs every query. Pass a sample of 10^4..10^5 rows and 10^2..10^3
// queries. Threads: builds and the exact answers use goals.threads; timing
// runs on the calling thread. Not thread-safe to share an advisor_report
// being written; advise itself touches no global state.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/eval/percentile.hpp"
#include "annulus/eval/recall.hpp"
#include "annulus/index/flat.hpp"
#include "annulus/index/hnsw.hpp"
#include "annulus/index/ivf_flat.hpp"
#include "annulus/index/ivf_pq.hpp"
#include "annulus/index/ivf_pq_fast_scan.hpp"

namespace annulus {

/// What the user needs. Every target may be left open (infinity).
struct advisor_goals {
  std::size_t k = 10;            ///< neighbours per query, >= 1
  double target_recall = 0.95;   ///< recall@k to reach, in (0, 1]
  double ram_budget_bytes = std::numeric_limits<double>::infinity();  ///< index bytes at plan_n
  double p99_us = std::numeric_limits<double>::infinity();            ///< one-query p99 at plan_n, microseconds
  double plan_n = 0;             ///< items to plan for; 0 = the rows of base
  std::size_t threads = 0;       ///< builds and exact answers (0 = all cores)
};

/// One measured search setting of a candidate.
struct advisor_point {
  std::string search;  ///< "ef=64", "nprobe=16" ("" for flat)
  double recall = 0, qps = 0, p50_us = 0, p99_us = 0;
};

/// How a family's one-query latency is grown from the measured rows to the
/// planned count (advisor_growth_text says it in words).
enum class advisor_growth {
  linear,       ///< every vector read (exact search, and trees / LSH as a ceiling)
  logarithmic,  ///< graph hops ~ log n at a fixed beam (a floor)
  square_root   ///< inverted file grown to ~sqrt(n) lists, ~sqrt(n) vectors scanned a query
};

/// The growth model in words, as the advice and report.html print it.
inline const char* advisor_growth_text(advisor_growth g) {
  switch (g) {
    case advisor_growth::linear:
      return "time grows with n: exact search reads every vector (for trees and LSH, a ceiling)";
    case advisor_growth::logarithmic:
      return "HNSW hops grow ~log n at a fixed ef (a floor: the ef for the same recall grows too)";
    case advisor_growth::square_root:
      return "an inverted file grown to ~sqrt(n) lists scans ~sqrt(n) vectors a query at a fixed nprobe";
  }
  return "";
}

/// One candidate index: its sweep as measured, and its chosen setting judged
/// against the goals at plan_n.
struct advisor_candidate {
  std::string index;                ///< "hnsw", "ivf_pq", ...
  std::string build;                ///< its build parameters, "m=16,ef_construction=200"
  std::vector<advisor_point> sweep; ///< as measured (advise() stops at the first point reaching the target)
  advisor_growth growth = advisor_growth::linear;  ///< how its latency is grown to plan_n
  double bytes_per_vector = 0;      ///< measured (the index's own count / rows)
  double build_s = 0;               ///< measured, on goals.threads threads
  // Filled by rank_candidates:
  std::size_t chosen = 0;           ///< the point judged: the least p99 reaching the target, else near its best
  double planned_bytes = 0;         ///< bytes_per_vector * plan_n
  double planned_p99_us = 0;        ///< the chosen point's p99 grown to plan_n by `model`
  std::string model;                ///< how planned_p99_us was grown, in words
  bool meets_recall = false, meets_ram = false, meets_latency = false;

  const advisor_point& point() const { return sweep[chosen]; }
  bool meets_all() const { return meets_recall && meets_ram && meets_latency; }
  /// Targets missed, 0 to 3 (the first key of the ranking).
  int misses() const { return !meets_recall + !meets_ram + !meets_latency; }
};

/// The recommendation and its evidence.
struct advisor_report {
  advisor_goals goals;
  std::size_t rows = 0, dim = 0, queries = 0;
  double plan_n = 0;                      ///< goals.plan_n, or rows
  std::vector<advisor_candidate> ranked;  ///< those meeting every target first (by planned p99), then the rest
  bool found = false;                     ///< ranked.front() meets every target
  bool exact_suffices = false;            ///< flat meets every target: no ANN index needed
  std::string argument;                   ///< the recommendation, defended in two sentences
  std::string relax;                      ///< when nothing meets every target: what to relax, by how much

  /// The evidence as a markdown table, one row per candidate, ranked.
  std::string table() const;
};

/// Called before each step (a build or a measured setting): steps done so far,
/// the total planned (an upper bound: sweeps stop early), and what runs next.
using advisor_progress = std::function<void(std::size_t done, std::size_t total, const std::string& what)>;

namespace advisor_detail {

inline std::string bytes_text(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  int u = 0;
  while (b >= 1000 && u < 5) b /= 1000, ++u;
  std::ostringstream s;
  s.precision(b < 10 ? 2 : 3);
  s << b << ' ' << units[u];
  return s.str();
}

inline std::string us_text(double us) {
  std::ostringstream s;
  s.precision(3);
  if (us >= 1e6) s << us / 1e6 << " s";
  else if (us >= 1000) s << us / 1000 << " ms";
  else s << us << " us";
  return s.str();
}

// 20,000; 10^9; 2.5e+09.
inline std::string count_text(double n) {
  if (n >= 1e6 && std::abs(std::log10(n) - std::round(std::log10(n))) < 1e-9)
    return "10^" + std::to_string(int(std::round(std::log10(n))));
  std::ostringstream s;
  if (n >= 1e7) {
    s.precision(3);
    s << n;
    return s.str();
  }
  std::string digits = std::to_string(std::llround(n));
  for (int i = int(digits.size()) - 3; i > 0; i -= 3) digits.insert(std::size_t(i), ",");
  return digits;
}

inline double grown(double us, double n, double plan_n, advisor_growth g) {
  if (plan_n <= n) return us;  // planning for fewer: keep the measurement (an upper bound)
  switch (g) {
    case advisor_growth::linear: return us * plan_n / n;
    case advisor_growth::logarithmic: return us * std::log(plan_n) / std::log(std::max(n, 2.0));
    case advisor_growth::square_root: return us * std::sqrt(plan_n / n);
  }
  return us;
}

// "0.95", "0.995": a recall as given, no digits invented or cut.
inline std::string recall_text(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", r);
  return buf;
}

// "hnsw (m=16,ef_construction=200)", "flat".
inline std::string name_text(const advisor_candidate& c) {
  return c.index + (c.build.empty() ? "" : " (" + c.build + ")");
}


inline void check_goals(const advisor_goals& goals) {
  if (goals.k == 0) throw invalid_argument("advisor: k must be at least 1, got 0");
  if (!(goals.target_recall > 0 && goals.target_recall <= 1))
    throw invalid_argument("advisor: target_recall must be in (0, 1], got " + std::to_string(goals.target_recall));
  if (!(goals.ram_budget_bytes >= 0) || !(goals.p99_us >= 0) || !(goals.plan_n >= 0))
    throw invalid_argument("advisor: ram_budget_bytes, p99_us and plan_n must be >= 0 (infinity: open)");
}

}  // namespace advisor_detail

inline std::string advisor_report::table() const {
  using namespace advisor_detail;
  std::ostringstream t;
  t << "| rank | index | build | setting | recall | QPS | p99 (measured) | bytes/vector | build s | RAM at "
    << count_text(plan_n) << " | p99 at " << count_text(plan_n) << " | meets |\n"
    << "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (std::size_t i = 0; i < ranked.size(); ++i) {
    const advisor_candidate& c = ranked[i];
    const advisor_point& p = c.point();
    std::string meets = c.meets_all() ? "all" : "";
    if (!c.meets_all()) {
      if (!c.meets_recall) meets += "not recall";
      if (!c.meets_ram) meets += std::string(meets.empty() ? "" : ", ") + "not RAM";
      if (!c.meets_latency) meets += std::string(meets.empty() ? "" : ", ") + "not p99";
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", p.recall);
    t << "| " << i + 1 << " | " << c.index << " | " << c.build << " | " << (p.search.empty() ? "-" : p.search)
      << " | " << buf << " | " << std::llround(p.qps) << " | " << us_text(p.p99_us) << " | "
      << std::llround(c.bytes_per_vector) << " | ";
    std::snprintf(buf, sizeof buf, "%.2f", c.build_s);
    t << buf << " | " << bytes_text(c.planned_bytes) << " | " << us_text(c.planned_p99_us) << " | " << meets
      << " |\n";
  }
  return t.str();
}

/// Judges measured candidates against `goals` and ranks them, as advise()
/// does with its own; use it on measurements taken elsewhere (annulus-bench
/// ranks its curves with it). Each candidate needs index, build, growth,
/// bytes_per_vector and at least one sweep point; rank_candidates fills the
/// rest. A candidate's judged setting is its least-p99 point reaching the
/// target recall, else its least-p99 point within 0.005 of its best recall.
/// `rows`, `dim`, `queries`: the data the points were measured on (plan_n 0
/// plans for `rows`). An index named "flat" meeting every target ranks first
/// (exact_suffices). Throws invalid_argument on bad goals (as advise()), zero
/// rows, no candidates, a candidate without points, or a NaN or infinite
/// recall, p99 or bytes per vector.
inline advisor_report rank_candidates(std::vector<advisor_candidate> measured, const advisor_goals& goals,
                                      std::size_t rows, std::size_t dim, std::size_t queries) {
  using namespace advisor_detail;
  check_goals(goals);
  if (rows == 0 || measured.empty())
    throw invalid_argument("rank_candidates: needs measured rows and at least one candidate");
  for (const advisor_candidate& c : measured) {
    if (c.sweep.empty()) throw invalid_argument("rank_candidates: candidate " + name_text(c) + " has no measured point");
    for (const advisor_point& p : c.sweep)
      if (!std::isfinite(p.recall) || !std::isfinite(p.p99_us) || !std::isfinite(c.bytes_per_vector))
        throw invalid_argument("rank_candidates: candidate " + name_text(c) + " has a non-finite recall, p99 or size");
  }
  const double n = double(rows);
  advisor_report out;
  out.goals = goals;
  out.rows = rows;
  out.dim = dim;
  out.queries = queries;
  out.plan_n = goals.plan_n > 0 ? goals.plan_n : n;
  for (advisor_candidate& c : measured) {
    // The least p99 among the points reaching the target; else, short of it,
    // the least p99 within 0.005 of the best recall (past a plateau a wider
    // search only costs time).
    double best = 0;
    for (const advisor_point& q : c.sweep) best = std::max(best, q.recall);
    const double floor = best >= goals.target_recall ? goals.target_recall : best - 0.005;
    c.chosen = c.sweep.size();
    for (std::size_t i = 0; i < c.sweep.size(); ++i)
      if (c.sweep[i].recall >= floor && (c.chosen == c.sweep.size() || c.sweep[i].p99_us < c.sweep[c.chosen].p99_us))
        c.chosen = i;
    c.planned_bytes = c.bytes_per_vector * out.plan_n;
    c.planned_p99_us = grown(c.point().p99_us, n, out.plan_n, c.growth);
    c.model = advisor_growth_text(c.growth);
    c.meets_recall = c.point().recall >= goals.target_recall;
    c.meets_ram = c.planned_bytes <= goals.ram_budget_bytes;
    c.meets_latency = c.planned_p99_us <= goals.p99_us;
    out.ranked.push_back(std::move(c));
  }

  // Meeting every target first, fastest planned p99 first (then fewer bytes);
  // the rest by how many targets they miss, then by planned p99.
  std::stable_sort(out.ranked.begin(), out.ranked.end(), [](const advisor_candidate& a, const advisor_candidate& b) {
    if (a.misses() != b.misses()) return a.misses() < b.misses();
    if (a.planned_p99_us != b.planned_p99_us) return a.planned_p99_us < b.planned_p99_us;
    return a.planned_bytes < b.planned_bytes;
  });
  // Exact search that meets every target wins outright: no recall lost, no
  // build, nothing to tune (the seed's "when not to use ANN").
  const auto flat = std::find_if(out.ranked.begin(), out.ranked.end(),
                                 [](const advisor_candidate& c) { return c.index == "flat"; });
  out.exact_suffices = flat != out.ranked.end() && flat->meets_all();
  if (out.exact_suffices) std::rotate(out.ranked.begin(), flat, flat + 1);
  out.found = !out.ranked.empty() && out.ranked.front().meets_all();

  const std::string at = count_text(out.plan_n) + " vectors";
  auto describe = [&](const advisor_candidate& c) {
    std::ostringstream s;
    s << name_text(c) << ": " << std::llround(c.bytes_per_vector)
      << " B/vector, " << bytes_text(c.planned_bytes) << " for " << at << "; recall "
      << std::to_string(c.point().recall).substr(0, 5)
      << (c.point().search.empty() ? "" : " at " + c.point().search) << ", p99 " << us_text(c.point().p99_us)
      << " measured on " << count_text(n) << " rows, ~" << us_text(c.planned_p99_us) << " at " << at;
    return s.str();
  };
  std::ostringstream arg;
  if (out.exact_suffices) {
    arg << "Exact search is enough: " << describe(out.ranked.front())
        << ". An ANN index would only add build time, tuning and lost recall; revisit when the item count or the "
           "latency target changes.";
  } else if (out.found) {
    const advisor_candidate& best = out.ranked.front();
    arg << "Use " << describe(best) << ".";
    // The second sentence: why not the others, by the fastest one that fails.
    const advisor_candidate* faster = nullptr;
    for (const advisor_candidate& c : out.ranked)
      if (!c.meets_all() && c.meets_recall && c.planned_p99_us < best.planned_p99_us &&
          (!faster || c.planned_p99_us < faster->planned_p99_us))
        faster = &c;
    if (faster)
      arg << ' ' << name_text(*faster) << " would be faster (~" << us_text(faster->planned_p99_us)
          << ") but needs " << bytes_text(faster->planned_bytes) << (faster->meets_ram ? "" : ", over the RAM budget")
          << (faster->meets_latency ? "" : ", and misses the p99 target") << ".";
    else {
      // The fastest that reaches the recall; set it against the smallest other candidate.
      const advisor_candidate* small = nullptr;
      for (const advisor_candidate& c : out.ranked)
        if (&c != &best && (!small || c.planned_bytes < small->planned_bytes)) small = &c;
      arg << " It is the fastest candidate reaching recall " << recall_text(goals.target_recall);
      if (small && small->planned_bytes < best.planned_bytes)
        arg << "; the smallest, " << name_text(*small) << ", would take "
            << bytes_text(small->planned_bytes) << " but "
            << (small->meets_recall ? "~" + us_text(small->planned_p99_us) + " p99"
                                    : "reaches only recall " + std::to_string(small->point().recall).substr(0, 5));
      arg << ".";
    }
  } else {
    arg << "No candidate meets all three targets at " << at << ". Closest: " << describe(out.ranked.front()) << ".";
    // What to relax: the least change to one target that lets a candidate
    // meeting the other two through (rounded up: the printed figure suffices).
    std::ostringstream r;
    double best_recall = -1, least_bytes = std::numeric_limits<double>::infinity(),
           least_p99 = std::numeric_limits<double>::infinity();
    for (const advisor_candidate& c : out.ranked) {
      if (c.meets_ram && c.meets_latency) best_recall = std::max(best_recall, c.point().recall);
      if (c.meets_recall && c.meets_latency) least_bytes = std::min(least_bytes, c.planned_bytes);
      if (c.meets_recall && c.meets_ram) least_p99 = std::min(least_p99, c.planned_p99_us);
    }
    if (best_recall >= 0) r << "lower the target recall to " << std::to_string(best_recall).substr(0, 5);
    if (std::isfinite(least_bytes))
      r << (r.tellp() > 0 ? ", or " : "") << "raise the RAM budget to " << bytes_text(least_bytes * 1.005);
    if (std::isfinite(least_p99)) r << (r.tellp() > 0 ? ", or " : "") << "accept a p99 of " << us_text(least_p99 * 1.005);
    out.relax = r.tellp() > 0 ? "Relax one target: " + r.str() + "."
                              : "Relax two targets: no candidate meets even two of them.";
    arg << ' ' << out.relax;
  }
  out.argument = arg.str();
  return out;
}

/// Measures the candidates on `base` with `queries` and ranks them against
/// `goals` (see the header comment). Throws invalid_argument on k = 0, a
/// target recall outside (0, 1], a negative or NaN budget, p99 or plan_n,
/// fewer than 2 base rows or k > rows, no queries; dimension_mismatch when
/// queries and base differ in width; what the indexes' builds throw (NaN
/// and Inf rows, zero vectors under cosine), before measuring anything.
template <metric Metric>
advisor_report advise(matrix_view<const float> base, matrix_view<const float> queries, const advisor_goals& goals = {},
              const advisor_progress& progress = {}) {
  using namespace advisor_detail;
  check_goals(goals);
  if (base.rows() < 2 || goals.k > base.rows())
    throw invalid_argument("advise: needs at least 2 base rows and k <= rows, got " + std::to_string(base.rows()) +
                           " rows for k = " + std::to_string(goals.k));
  if (queries.rows() == 0) throw invalid_argument("advise: no queries");
  if (queries.cols() != base.cols())
    throw dimension_mismatch("advise: queries have " + std::to_string(queries.cols()) + " columns, base has " +
                             std::to_string(base.cols()));

  const std::size_t n = base.rows(), d = base.cols(), k = goals.k;

  // The exact answers, once.
  const auto exact_index = flat_index<Metric>::build(base, {}, goals.threads);
  const result_matrix exact = exact_index.search_batch(queries, k, {}, goals.threads);

  // Candidates: each a name, build parameters in words, a builder and a sweep.
  // IVF lists ~ 4 sqrt(n) (a power of two), at least 39 rows each to train.
  std::size_t nlist = 1;
  while (nlist * 2 <= 4 * std::sqrt(double(n)) && (nlist * 2) * 39 <= n) nlist *= 2;
  const std::vector<std::size_t> efs{10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024};
  std::vector<std::size_t> probes;
  for (std::size_t p = 1; p <= nlist; p *= 2) probes.push_back(p);

  struct plan {
    std::string index, build;
    advisor_growth g;
    std::function<void(advisor_candidate&)> run;  // builds, sweeps, fills the candidate
  };
  std::vector<plan> plans;
  std::size_t total = 0, done = 0;
  auto step = [&](const std::string& what) {
    if (progress) progress(done, total, what);
    ++done;
  };

  // Times `search(q, out)` over every query on this thread; recall against exact.
  auto measure = [&](const std::string& setting, auto&& search) {
    std::vector<double> lat(queries.rows());
    result_matrix got(queries.rows(), k);
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < queries.rows(); ++i) {
      const auto t = std::chrono::steady_clock::now();
      got.set_count(i, search(queries.row(i), got.row_storage(i)));
      lat[i] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t).count();
    }
    const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    advisor_point p;
    p.search = setting;
    p.recall = recall_at_k(got, exact, k);
    p.qps = double(queries.rows()) / std::max(total_s, 1e-9);
    p.p50_us = percentile(lat, 0.5);
    p.p99_us = percentile(lat, 0.99);
    return p;
  };
  // Builds with `make`, then sweeps `values` of the knob until the target.
  auto sweep_of = [&](advisor_candidate& c, auto&& make, const std::string& knob, const std::vector<std::size_t>& values,
                      auto&& params_for) {
    step("building " + c.index + " " + c.build);
    const auto t0 = std::chrono::steady_clock::now();
    const auto index = make();
    c.build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    c.bytes_per_vector = double(index.memory_bytes()) / double(n);
    for (std::size_t v : values.empty() ? std::vector<std::size_t>{0} : values) {
      const std::string setting = knob.empty() ? "" : knob + "=" + std::to_string(v);
      step(c.index + (setting.empty() ? "" : " " + setting));
      const auto params = params_for(v);
      c.sweep.push_back(measure(setting, [&](std::span<const float> q, std::span<neighbor> o) {
        return index.search(q, k, params, o);
      }));
      if (c.sweep.back().recall >= goals.target_recall) break;
    }
  };
  auto add = [&](std::string index, std::string build, advisor_growth g, std::size_t steps, auto&& body) {
    total += 1 + steps;
    plans.push_back({std::move(index), std::move(build), g, body});
  };

  add("flat", "", advisor_growth::linear, 1, [&](advisor_candidate& c) {
    sweep_of(c, [&] { return flat_index<Metric>::build(base, {}, goals.threads); }, "", {},
             [](std::size_t) { return typename flat_index<Metric>::search_params{}; });
  });
  for (std::size_t m : {8, 16, 32})
    add("hnsw", "m=" + std::to_string(m) + ",ef_construction=200", advisor_growth::logarithmic, efs.size(),
        [&, m](advisor_candidate& c) {
          using I = hnsw_index<Metric>;
          sweep_of(c, [&] { return I::build(base, {.m = m, .ef_construction = 200}, goals.threads); }, "ef", efs,
                   [](std::size_t ef) { return typename I::search_params{.ef = ef}; });
        });
  add("hnsw_sq8", "m=16,ef_construction=200", advisor_growth::logarithmic, efs.size(), [&](advisor_candidate& c) {
    using I = hnsw_sq8_index<Metric>;
    sweep_of(c, [&] { return I::build(base, {.m = 16, .ef_construction = 200}, goals.threads); }, "ef", efs,
             [](std::size_t ef) { return typename I::search_params{.ef = ef}; });
  });
  const std::string lists = "nlist=" + std::to_string(nlist);
  add("ivf_flat", lists, advisor_growth::square_root, probes.size(), [&](advisor_candidate& c) {
    using I = ivf_flat_index<Metric>;
    sweep_of(c, [&] { return I::build(base, {.nlist = nlist}, goals.threads); }, "nprobe", probes,
             [](std::size_t p) { return typename I::search_params{.nprobe = p}; });
  });
  if (n >= 256) {  // 8-bit codes train 256 centroids per sub-space
    // The default code with and without the vectors kept for re-ranking, and
    // a code four times as long without them: what RAM-tight serving can buy.
    std::vector<std::pair<std::size_t, std::size_t>> shapes{{default_pq_m(d), 0}, {default_pq_m(d), 10}};
    if (4 * default_pq_m(d) <= d / 2 && d % (4 * default_pq_m(d)) == 0) shapes.push_back({4 * default_pq_m(d), 0});
    for (const auto& shape : shapes) {
      const std::size_t m = shape.first, refine = shape.second;  // (clang 14 cannot capture bindings)
      add("ivf_pq", lists + ",m=" + std::to_string(m) + (refine ? ",refine=" + std::to_string(refine) : ""),
          advisor_growth::square_root, probes.size(), [&, m, refine](advisor_candidate& c) {
            using I = ivf_pq_index<Metric>;
            sweep_of(c, [&] { return I::build(base, {.nlist = nlist, .m = m, .keep_vectors = refine > 0}, goals.threads); },
                     "nprobe", probes,
                     [refine](std::size_t p) { return typename I::search_params{.nprobe = p, .refine_factor = refine}; });
          });
    }
  }
  if (n >= 16)
    add("ivf_pq_fs", lists + ",refine=20", advisor_growth::square_root, probes.size(), [&](advisor_candidate& c) {
      using I = ivf_pq_fs_index<Metric>;
      sweep_of(c, [&] { return I::build(base, {.nlist = nlist}, goals.threads); }, "nprobe", probes,
               [](std::size_t p) { return typename I::search_params{.nprobe = p, .refine_factor = 20}; });
    });

  std::vector<advisor_candidate> measured;
  for (const plan& p : plans) {
    advisor_candidate c;
    c.index = p.index;
    c.build = p.build;
    c.growth = p.g;
    p.run(c);
    measured.push_back(std::move(c));
  }
  if (progress) progress(total, total, "done");
  return rank_candidates(std::move(measured), goals, n, d, queries.rows());
}

}  // namespace annulus
