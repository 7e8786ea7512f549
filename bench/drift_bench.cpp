// Two ways a served index decays, measured while it decays (issue 19).
//
// ivfpq  An IVF-PQ index trained on distribution A serves through
//        live_index; items from a shifted distribution B stream in, a batch
//        a round. Each round: recall@10 at a fixed nprobe against the exact
//        truth over the live items (queries drawn in proportion to the item
//        mix), single-thread QPS, the estimate of a sampling recall_monitor
//        (its alert callback prints the round it fires in), and the health
//        figures that name the cause. Then rebuild() retrains while the main
//        thread keeps searching (the "rebuilding" row), and the "after" row.
// churn  hnsw_index under churn: each round removes a random 10% of the live
//        labels and adds as many fresh vectors. Arms, all in one run on the
//        same operations: annulus (removed slots reused by adds), annulus
//        with compact() after each round's removals (where hnsw_index has
//        it), and hnswlib (markDelete and addPoint, Debian's 0.6.2). Each
//        round: recall@10, QPS, live nodes unreachable from the entry point,
//        the share of layer-0 links naming a removed node, memory. Then a
//        fresh build of the final live set as the reference.
//
//   annulus-drift-bench [--scenario ivfpq|churn|all] [--out DIR] [--quick] [--threads T]
//       ivfpq knobs: [--n0 N] [--step N] [--rounds R] [--queries Q] [--nlist L] [--pq-m M]
//                    [--nprobe P] [--refine F] [--shift S]
//       churn knobs: [--churn-n N] [--churn-rounds R]
// Writes DIR/drift-ivfpq.csv, DIR/drift-churn.csv and, with gnuplot on PATH,
// DIR/drift-ivfpq.png and DIR/drift-churn.png.
#include <annulus/annulus.hpp>
#include <annulus/eval/drift.hpp>
#include <annulus/eval/synthetic.hpp>
#include <annulus/index/live.hpp>

#ifdef ANNULUS_HAVE_HNSWLIB
#include <hnswlib/hnswlib.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace annulus;
using clock_type = std::chrono::steady_clock;
constexpr std::size_t k = 10;

double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

struct options {
  std::string scenario = "all";
  std::filesystem::path out;
  bool quick = false;
  std::size_t threads = 0;
  // ivfpq (0 = the size's default)
  std::size_t n0 = 0, step = 0, rounds = 0, queries = 0, nlist = 0, pq_m = 16, nprobe = 0, refine = 2;
  float shift = 3.0f;
  // churn
  std::size_t churn_n = 0, churn_rounds = 20;
};

std::string csv_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

/// Exact top-k of every query by one-query scans (as the monitor's truth is
/// taken: the batch path's GEMM distances can lose a neighbour far from the origin).
result_matrix exact_truth(const flat_index<l2>& truth, const matrix<float>& queries, std::size_t threads) {
  result_matrix out(queries.rows(), k);
  parallel_for(queries.rows(), threads,
               [&](std::size_t i, std::size_t) {
                 out.set_count(i, truth.search(queries.row(i), k, {}, out.row_storage(i)));
               });
  return out;
}

/// |returned ∩ true top-k| / k.
template <class Labels>
double hits_over_k(const Labels& got, std::span<const neighbor> want) {
  std::size_t hits = 0;
  for (const neighbor& t : want)
    hits += std::any_of(got.begin(), got.end(), [&](label_t l) { return l == t.label; });
  return double(hits) / double(k);
}

std::string mib(std::size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", double(bytes) / double(1 << 20));
  return buf;
}

bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

void run_gnuplot(const std::filesystem::path& script, const std::filesystem::path& png) {
  const std::string cmd = "gnuplot '" + script.string() + "' 2>&1";
  if (std::system(cmd.c_str()) == 0)
    std::printf("wrote %s\n", png.string().c_str());
  else
    std::printf("gnuplot failed: no %s\n", png.string().c_str());
}

// ============================== scenario ivfpq ==============================

struct ivf_row {
  std::string phase;  // before, during, rebuilding, after
  std::size_t round = 0, b_items = 0;
  double b_share = 0, recall = 0, qps = 0;
  recall_estimate est;
  double scan_cost = 0, error_ratio = 0, pq_error_ratio = 0, crowding = 0;
  std::string verdict;
};

void scenario_ivfpq(const options& o) {
  const std::size_t dim = 32;
  const std::size_t n0 = o.n0 ? o.n0 : o.quick ? 10000 : 40000;
  const std::size_t step = o.step ? o.step : o.quick ? 400 : 1250;
  const std::size_t rounds = o.rounds ? o.rounds : 8;
  const std::size_t nq = o.queries ? o.queries : 2000;
  // Chosen so that recall starts near 0.92 and ends the rounds near 0.78 (at either size).
  const std::size_t nlist = o.nlist ? o.nlist : o.quick ? 64 : 128;
  const std::size_t nprobe = o.nprobe ? o.nprobe : o.quick ? 4 : 8;
  const ivf_pq_index<l2>::build_params bp{.nlist = nlist, .m = o.pq_m, .keep_vectors = true};
  const ivf_pq_index<l2>::search_params sp{.nprobe = nprobe, .refine_factor = o.refine};
  const double alert_below = 0.85;

  std::printf("\n## Scenario ivfpq: IVF-PQ trained on A, shifted B streamed in\n\n");
  std::printf("dim %zu; A: %zu items (32-cluster mixture); B: the same kind of mixture, other centres, every\n"
              "coordinate + %.2f; %zu B items a round for %zu rounds; %zu queries a round, B's share = B's item\n"
              "share; nlist %zu, m %zu (8 bits), keep_vectors; search nprobe %zu, refine_factor %zu; recall@%zu\n"
              "against exact scans of the live items; QPS on one thread, best of 3 passes; monitor: sample_rate\n"
              "0.05, window 100, alert below %.2f; live_index::rebuild on %zu threads (0 = all).\n\n",
              dim, n0, double(o.shift), step, rounds, nq, nlist, o.pq_m, nprobe, o.refine, k, alert_below,
              o.threads);

  const gaussian_mixture A(dim, {.clusters = 32, .norm_ratio = 1, .seed = 11});
  const gaussian_mixture B(dim, {.clusters = 32, .norm_ratio = 1, .seed = 12});
  auto shifted = [&](matrix<float> m) {
    for (std::size_t i = 0; i < m.rows(); ++i)
      for (float& x : m.row(i)) x += o.shift;
    return m;
  };
  const matrix<float> a = A.sample(n0, 1), b = shifted(B.sample(step * rounds, 2));
  const matrix<float> qa = A.sample(nq, 3), qb = shifted(B.sample(nq, 4));

  auto t = clock_type::now();
  live_index<ivf_pq_index<l2>> live(ivf_pq_index<l2>::build(a.view(), bp, o.threads));
  const double build_s = seconds_since(t);
  flat_index<l2> truth = flat_index<l2>::build(a.view());

  // The monitor's callback runs on its worker: it prints at once and notes the round.
  std::atomic<std::size_t> round_now{0};
  std::mutex alert_mutex;
  std::vector<std::size_t> alert_rounds;
  std::vector<label_t> a_labels(n0);
  std::iota(a_labels.begin(), a_labels.end(), label_t{0});
  monitored served(live, a.view(), a_labels,
                   {.k = k, .sample_rate = 0.05, .window = 100, .alert_below = alert_below, .min_samples = 50,
                    .on_alert = [&](const recall_estimate& e) {
                      const std::size_t r = round_now.load();
                      std::printf("monitor alert (round %zu): recall estimate %.3f [%.3f, %.3f] over %zu samples, "
                                  "below %.2f\n",
                                  r, e.recall, e.low, e.high, e.samples, alert_below);
                      std::fflush(stdout);
                      std::lock_guard lock(alert_mutex);
                      alert_rounds.push_back(r);
                    }});

  std::vector<ivf_row> rows;
  std::size_t b_items = 0;
  matrix<float> q(nq, dim);
  auto queries_for_mix = [&] {
    const double share = double(b_items) / double(n0 + b_items);
    const std::size_t from_b = std::size_t(share * double(nq) + 0.5);
    // Interleaved, so the monitor's rolling window sees the mix throughout a pass.
    std::size_t ib = 0, ia = 0;
    for (std::size_t i = 0; i < nq; ++i) {
      const bool take_b = (i + 1) * from_b / nq > i * from_b / nq;  // exactly from_b of nq, spread evenly
      std::copy_n(take_b ? qb.row_ptr(ib++) : qa.row_ptr(ia++), dim, q.row_ptr(i));
    }
    return share;
  };
  // One single-thread pass through the monitored wrapper: recall and seconds.
  std::vector<std::vector<neighbor>> got(nq);
  auto pass = [&](const result_matrix& want) {
    const auto t0 = clock_type::now();
    for (std::size_t i = 0; i < nq; ++i) got[i] = served.search(q.row(i), k, sp);
    const double s = seconds_since(t0);
    double r = 0;
    for (std::size_t i = 0; i < nq; ++i) {
      std::vector<label_t> labels;
      for (const neighbor& nb : got[i]) labels.push_back(nb.label);
      r += hits_over_k(labels, want[i]);
    }
    return std::pair{r / double(nq), s};
  };
  // QPS: the best of three unobserved passes (this machine is shared: the best is the least disturbed).
  auto best_qps = [&] {
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
      std::size_t sink = 0;
      const auto t0 = clock_type::now();
      for (std::size_t i = 0; i < nq; ++i) sink += live.search(q.row(i), k, sp).size();
      best = std::max(best, double(nq) / seconds_since(t0));
      if (sink == 0) std::printf("no results at all\n");
    }
    return best;
  };
  auto fill_health = [&](ivf_row& row) {
    const health_report h = live.snapshot()->health();
    row.scan_cost = h.figure("scan_cost_ratio");
    row.error_ratio = h.figure("error_ratio");
    row.pq_error_ratio = h.figure("pq_error_ratio");
    row.crowding = h.figure("crowding_ratio");
    row.verdict = h.verdict;
  };
  auto measure = [&](std::string phase, std::size_t round) {
    ivf_row row;
    row.phase = std::move(phase), row.round = round, row.b_items = b_items;
    row.b_share = queries_for_mix();
    const result_matrix want = exact_truth(truth, q, o.threads);
    row.recall = pass(want).first;
    row.qps = best_qps();
    served.flush();
    row.est = served.estimate();
    fill_health(row);
    rows.push_back(row);
  };

  measure("before", 0);
  double add_s = 0;
  for (std::size_t r = 1; r <= rounds; ++r) {
    round_now = r;
    std::vector<label_t> labels(step);
    std::iota(labels.begin(), labels.end(), label_t(n0 + b_items));
    const auto rows_b = b.view().rows_slice(b_items, step);
    t = clock_type::now();
    served.add(rows_b, labels, o.threads);  // the live index and the monitor's mirror
    add_s += seconds_since(t);
    truth.add(rows_b, labels);
    b_items += step;
    measure("during", r);
  }

  // Rebuild on a background thread while this one keeps serving the last
  // round's queries: what a service sees during a retrain.
  round_now = rounds + 1;
  ivf_row during;
  during.phase = "rebuilding", during.round = rounds + 1, during.b_items = b_items;
  during.b_share = queries_for_mix();
  const result_matrix want = exact_truth(truth, q, o.threads);
  std::atomic<bool> rebuilt{false};
  std::exception_ptr failure;
  double rebuild_s = 0;
  t = clock_type::now();
  std::thread rebuilder([&] {
    try {
      live.rebuild(bp, o.threads);
    } catch (...) {
      failure = std::current_exception();
    }
    rebuild_s = seconds_since(t);
    rebuilt = true;
  });
  std::size_t passes = 0, served_queries = 0;
  double recall_sum = 0, search_s = 0;
  while (!rebuilt.load() || passes == 0) {
    const auto [recall, s] = pass(want);
    recall_sum += recall, search_s += s, ++passes, served_queries += nq;
  }
  rebuilder.join();
  if (failure) std::rethrow_exception(failure);
  during.recall = recall_sum / double(passes);
  during.qps = double(served_queries) / search_s;
  served.flush();
  during.est = served.estimate();
  fill_health(during);  // the rebuilt index's
  rows.push_back(during);
  round_now = rounds + 2;
  measure("after", rounds + 2);

  // The table.
  std::printf("\n| phase | round | B items | B share | recall@%zu | QPS | monitor [low, high] | scan_cost_ratio | "
              "error_ratio | pq_error_ratio | crowding_ratio | verdict |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|\n",
              k);
  for (const ivf_row& r : rows)
    std::printf("| %s | %zu | %zu | %.3f | %.3f | %.0f | %.3f [%.3f, %.3f] | %.2f | %.2f | %.2f | %.2f | %s |\n",
                r.phase.c_str(), r.round, r.b_items, r.b_share, r.recall, r.qps, r.est.recall, r.est.low, r.est.high,
                r.scan_cost, r.error_ratio, r.pq_error_ratio, r.crowding, r.verdict.c_str());
  std::printf("\n(After the rebuild the drift ratios compare the rebuilt index's own adds with its training sample, "
              "hence about 1. The rebuilding row: %zu passes of the queries on this thread while the rebuild ran on "
              "others; its health and monitor columns are read after the swap.)\n",
              passes);
  std::printf("build %.2f s; adds %.2f s in all; rebuild %.2f s (while searching); monitor: %zu samples checked, "
              "%zu dropped, %zu stale\n",
              build_s, add_s, rebuild_s, served.estimate().checked, served.estimate().dropped,
              served.estimate().stale);

  std::string fired = "never";
  {
    std::lock_guard lock(alert_mutex);
    if (!alert_rounds.empty()) {
      fired = "in round";
      for (std::size_t r : alert_rounds) fired += " " + std::to_string(r);
    }
  }
  const ivf_row& first = rows.front();
  const ivf_row& last_during = rows[rows.size() - 3];
  const ivf_row& after = rows.back();
  std::printf("\nsummary ivfpq: recall@%zu %.3f before -> %.3f after %zu B items (%.0f%% of the items) -> %.3f after "
              "a %.1f s rebuild; QPS %.0f -> %.0f -> %.0f; monitor alert (below %.2f) fired %s; last verdict before "
              "the rebuild: %s\n",
              k, first.recall, last_during.recall, b_items, 100 * last_during.b_share, after.recall, rebuild_s,
              first.qps, last_during.qps, after.qps, alert_below, fired.c_str(), last_during.verdict.c_str());

  if (o.out.empty()) return;
  const std::filesystem::path csv = o.out / "drift-ivfpq.csv";
  {
    std::ofstream f(csv);
    f << "step,phase,round,b_items,b_share,recall,qps,monitor_recall,monitor_low,monitor_high,monitor_samples,"
         "scan_cost_ratio,error_ratio,pq_error_ratio,crowding_ratio,verdict\n";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const ivf_row& r = rows[i];
      f << i << ',' << r.phase << ',' << r.round << ',' << r.b_items << ',' << r.b_share << ',' << r.recall << ','
        << r.qps << ',' << r.est.recall << ',' << r.est.low << ',' << r.est.high << ',' << r.est.samples << ','
        << r.scan_cost << ',' << r.error_ratio << ',' << r.pq_error_ratio << ',' << r.crowding << ','
        << csv_quote(r.verdict) << '\n';
    }
  }
  std::printf("wrote %s\n", csv.string().c_str());
  if (!have_gnuplot()) {
    std::printf("skipped plot: no gnuplot\n");
    return;
  }
  const std::filesystem::path png = o.out / "drift-ivfpq.png", gp = o.out / "drift-ivfpq.gp";
  {
    std::ofstream f(gp);
    f << "set terminal pngcairo size 1000,800 noenhanced\nset output '" << png.string() << "'\n"
      << "set datafile separator ','\nset multiplot layout 2,1 title 'IVF-PQ trained on A, B streamed in, then "
         "rebuild (nprobe "
      << nprobe << ")'\nset grid\nset key bottom left\nset xtics rotate by -30\n"
      << "set ylabel 'recall@" << k << "'\nset yrange [*:1.01]\n"
      << "set arrow 1 from graph 0, first " << alert_below << " to graph 1, first " << alert_below
      << " nohead dt 2 lc rgb 'red'\n"
      << "plot '" << csv.string() << "' skip 1 using 1:6:xtic(stringcolumn(2).' '.stringcolumn(4)) with linespoints "
      << "lw 2 title 'measured (exact truth)', '' skip 1 using 1:8:9:10 with yerrorbars title 'monitor estimate, 95%'\n"
      << "unset arrow 1\nset ylabel 'queries per second, 1 thread'\nset yrange [0:*]\nset xlabel 'phase, B items'\n"
      << "plot '" << csv.string() << "' skip 1 using 1:7:xtic(stringcolumn(2).' '.stringcolumn(4)) with linespoints "
      << "lw 2 title 'QPS'\nunset multiplot\n";
  }
  run_gnuplot(gp, png);
}

// ============================== scenario churn ==============================

struct churn_row {
  churn_row(std::string a, std::size_t r) : arm(std::move(a)), round(r) {}
  std::string arm;
  std::size_t round = 0, live = 0;
  double recall = 0, returned = 0, qps = 0;
  double unreachable_live = 0, tombstones = 0, tomb_link_share = 0;
  std::size_t memory = 0;
  std::size_t memory_mid = 0;  // after the round's removals (and compact), before its adds
  double update_s = 0;
};

/// Recall, mean results returned and single-thread QPS of `search(i) -> labels` over the queries.
template <class Search>
void measure_search(churn_row& row, const matrix<float>& queries, const result_matrix& want, std::size_t reps,
                    Search&& search) {
  double r = 0, returned = 0;
  for (std::size_t i = 0; i < queries.rows(); ++i) {
    const std::vector<label_t> got = search(i);
    r += hits_over_k(got, want[i]);
    returned += double(got.size());
  }
  row.recall = r / double(queries.rows());
  row.returned = returned / double(queries.rows());
  // The best of `reps` passes: this machine is shared, the best pass is the least disturbed.
  std::size_t sink = 0;
  for (std::size_t rep = 0; rep < reps; ++rep) {
    const auto t = clock_type::now();
    for (std::size_t i = 0; i < queries.rows(); ++i) sink += search(i).size();
    row.qps = std::max(row.qps, double(queries.rows()) / seconds_since(t));
  }
  if (sink == 0) std::printf("%s round %zu: no results at all\n", row.arm.c_str(), row.round);
}

using hnsw = hnsw_index<l2>;
constexpr hnsw::build_params hnsw_build{.m = 16, .ef_construction = 200, .seed = 7};
constexpr hnsw::search_params hnsw_search{.ef = 64};

void annulus_figures(churn_row& row, const hnsw& idx) {
  const health_report h = idx.health();
  row.live = h.live;
  row.unreachable_live = h.figure("unreachable_live");
  row.tombstones = h.figure("tombstones");
  row.tomb_link_share = h.figure("tombstone_link_share");
  row.memory = idx.memory_bytes();
}

template <class Index>
constexpr bool has_compact = requires(Index& i) { i.compact(); };

#ifdef ANNULUS_HAVE_HNSWLIB
using peer_index = hnswlib::HierarchicalNSW<float>;

/// hnswlib's heap, from its own fields: the level-0 block (max_elements_ x
/// size_data_per_element_: links, vector, label), the upper-layer link lists
/// (size_links_per_element_ a level of each node above 0), the per-slot
/// pointer, level and mutex arrays, the fixed 65536 update mutexes, and the
/// label map at 32 bytes a node (24-byte node plus allocator header) plus
/// 8 bytes a bucket. Visited lists (2 bytes a slot per searching thread) are
/// not counted.
std::size_t peer_memory(const peer_index& p) {
  std::size_t upper = 0;
  for (std::size_t i = 0; i < p.cur_element_count; ++i)
    if (p.element_levels_[i] > 0) upper += p.size_links_per_element_ * std::size_t(p.element_levels_[i]);
  return p.max_elements_ * (p.size_data_per_element_ + sizeof(void*) + sizeof(int) + sizeof(std::mutex)) + upper +
         p.link_list_update_locks_.size() * sizeof(std::mutex) + p.label_lookup_.size() * 32 +
         p.label_lookup_.bucket_count() * sizeof(void*);
}

/// The same walk as annulus's health(): breadth-first over layer-0 links from
/// the entry point; live nodes not reached, and the share of links that name a
/// deleted node.
void peer_figures(churn_row& row, const peer_index& p) {
  const std::size_t n = p.cur_element_count;
  std::vector<char> seen(n, 0);
  std::vector<hnswlib::tableint> queue;
  std::size_t links = 0, to_deleted = 0, deleted = 0, unreachable_live = 0;
  if (n > 0) {
    queue.push_back(p.enterpoint_node_);
    seen[p.enterpoint_node_] = 1;
  }
  for (std::size_t head = 0; head < queue.size(); ++head) {
    hnswlib::linklistsizeint* ll = p.get_linklist0(queue[head]);
    const std::size_t count = p.getListCount(ll);
    const auto* next = reinterpret_cast<const hnswlib::tableint*>(ll + 1);
    for (std::size_t j = 0; j < count; ++j) {
      if (next[j] >= n) continue;
      if (!seen[next[j]]) seen[next[j]] = 1, queue.push_back(next[j]);
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    const bool dead = p.isMarkedDeleted(hnswlib::tableint(i));
    deleted += dead;
    if (!dead && !seen[i]) ++unreachable_live;
    hnswlib::linklistsizeint* ll = p.get_linklist0(hnswlib::tableint(i));
    const std::size_t count = p.getListCount(ll);
    const auto* next = reinterpret_cast<const hnswlib::tableint*>(ll + 1);
    links += count;
    for (std::size_t j = 0; j < count; ++j) to_deleted += next[j] < n && p.isMarkedDeleted(next[j]);
  }
  row.live = n - deleted;
  row.unreachable_live = double(unreachable_live);
  row.tombstones = double(deleted);
  row.tomb_link_share = links ? double(to_deleted) / double(links) : 0;
  row.memory = peer_memory(p);
}

void peer_add(peer_index& p, const matrix<float>& rows, std::span<const label_t> labels, std::size_t threads) {
  // Only 0.6.2's markDelete: deleted slots are never reused, so it grows; to
  // exactly what it holds (no headroom), the least memory it can have.
  if (p.cur_element_count + rows.rows() > p.max_elements_) p.resizeIndex(p.cur_element_count + rows.rows());
  const std::size_t t = std::max<std::size_t>(1, threads ? threads : std::thread::hardware_concurrency());
  std::vector<std::thread> workers;
  for (std::size_t w = 0; w < t; ++w)
    workers.emplace_back([&, w] {
      for (std::size_t i = w; i < rows.rows(); i += t) p.addPoint(rows.row_ptr(i), labels[i]);
    });
  for (auto& th : workers) th.join();
}

std::vector<label_t> peer_search(const peer_index& p, const float* q) {
  auto heap = p.searchKnn(q, k);
  std::vector<label_t> out;
  while (!heap.empty()) out.push_back(label_t(heap.top().second)), heap.pop();
  return out;
}
#endif

void scenario_churn(const options& o) {
  const std::size_t dim = 32, nq = 500;
  const std::size_t n = o.churn_n ? o.churn_n : o.quick ? 3000 : 20000;
  const std::size_t rounds = o.churn_rounds ? o.churn_rounds : 20;
  const std::size_t per_round = n / 10;
  const std::size_t reps = o.quick ? 2 : 4;

  std::printf("\n## Scenario churn: HNSW, remove and add 10%% a round\n\n");
  std::printf("%zu clustered vectors (dim %zu); %zu rounds, each removing a random %zu live labels and adding %zu\n"
              "fresh ones from the same distribution; m 16, ef_construction 200, ef 64; recall@%zu of %zu queries\n"
              "against exact scans of the live set; QPS on one thread (best of %zu passes); adds on %zu threads\n"
              "(0 = all).\n\n",
              n, dim, rounds, per_round, per_round, k, nq, reps, o.threads);

  const gaussian_mixture mix(dim, {.clusters = 32, .seed = 21});
  const matrix<float> base = mix.sample(n, 1), pool = mix.sample(rounds * per_round, 2), queries = mix.sample(nq, 3);
  std::vector<label_t> live_labels(n);
  std::iota(live_labels.begin(), live_labels.end(), label_t{0});
  flat_index<l2> truth = flat_index<l2>::build(base.view());

  auto t = clock_type::now();
  hnsw plain = hnsw::build(base.view(), hnsw_build, o.threads);
  const double build_s = seconds_since(t);
  std::optional<hnsw> compacted;
  if constexpr (has_compact<hnsw>) compacted.emplace(hnsw::build(base.view(), hnsw_build, o.threads));
#ifdef ANNULUS_HAVE_HNSWLIB
  hnswlib::L2Space space(dim);
  peer_index peer(&space, n, 16, 200, 7);
  {
    std::vector<label_t> l(n);
    std::iota(l.begin(), l.end(), label_t{0});
    t = clock_type::now();
    peer_add(peer, base, l, o.threads);
  }
  const double peer_build_s = seconds_since(t);
  peer.setEf(hnsw_search.ef);
#endif

  std::vector<churn_row> rows;
  std::mt19937_64 rng(2024);
  double compact_s = 0;
  for (std::size_t r = 0; r <= rounds; ++r) {
    std::vector<label_t> gone, fresh;
    matrix<float> adds(per_round, dim);
    if (r > 0) {
      // The same operations for every arm: removals drawn from the live set, fresh labels counting on.
      std::shuffle(live_labels.begin(), live_labels.end(), rng);
      gone.assign(live_labels.end() - std::ptrdiff_t(per_round), live_labels.end());
      live_labels.resize(live_labels.size() - per_round);
      for (std::size_t i = 0; i < per_round; ++i) {
        fresh.push_back(label_t(n + (r - 1) * per_round + i));
        std::copy_n(pool.row_ptr((r - 1) * per_round + i), dim, adds.row_ptr(i));
      }
      live_labels.insert(live_labels.end(), fresh.begin(), fresh.end());
      for (label_t l : gone) truth.remove(l);
      truth.add(adds.view(), fresh);
    }
    const result_matrix want = exact_truth(truth, queries, o.threads);

    // Generic, so that the compact() call is only compiled where hnsw_index has it.
    auto annulus_arm = [&](auto& idx, const char* name, bool compact) {
      churn_row row{name, r};
      t = clock_type::now();
      if (r > 0) {
        for (label_t l : gone) idx.remove(l);
        if constexpr (requires { idx.compact(o.threads, n); }) {
          if (compact) {
            const auto tc = clock_type::now();
            idx.compact(o.threads, n);  // room for the size the round's adds restore
            compact_s += seconds_since(tc);
          }
        }
        row.memory_mid = idx.memory_bytes();
        idx.add(adds.view(), fresh, o.threads);
      }
      row.update_s = seconds_since(t);
      measure_search(row, queries, want, reps, [&](std::size_t i) {
        std::vector<label_t> out;
        for (const neighbor& nb : idx.search(queries.row(i), k, hnsw_search)) out.push_back(nb.label);
        return out;
      });
      annulus_figures(row, idx);
      rows.push_back(row);
    };
    annulus_arm(plain, "annulus", false);
    if (compacted) annulus_arm(*compacted, "annulus+compact", true);
#ifdef ANNULUS_HAVE_HNSWLIB
    {
      churn_row row{"hnswlib", r};
      t = clock_type::now();
      if (r > 0) {
        for (label_t l : gone) peer.markDelete(hnswlib::labeltype(l));
        row.memory_mid = peer_memory(peer);
        peer_add(peer, adds, fresh, o.threads);
      }
      row.update_s = seconds_since(t);
      measure_search(row, queries, want, reps, [&](std::size_t i) { return peer_search(peer, queries.row_ptr(i)); });
      peer_figures(row, peer);
      rows.push_back(row);
    }
#endif
  }

  // The reference: a fresh build of the final live set.
  matrix<float> final_rows(live_labels.size(), dim);
  for (std::size_t i = 0; i < live_labels.size(); ++i) {
    const std::vector<float> v = truth.get(live_labels[i]);
    std::copy(v.begin(), v.end(), final_rows.row_ptr(i));
  }
  const result_matrix want = exact_truth(truth, queries, o.threads);
  {
    churn_row row{"annulus fresh build", rounds};
    t = clock_type::now();
    const hnsw fresh = hnsw::build_with_labels(final_rows.view(), live_labels, hnsw_build, o.threads);
    row.update_s = seconds_since(t);
    measure_search(row, queries, want, reps, [&](std::size_t i) {
      std::vector<label_t> out;
      for (const neighbor& nb : fresh.search(queries.row(i), k, hnsw_search)) out.push_back(nb.label);
      return out;
    });
    annulus_figures(row, fresh);
    rows.push_back(row);
  }
#ifdef ANNULUS_HAVE_HNSWLIB
  {
    churn_row row{"hnswlib fresh build", rounds};
    peer_index fresh(&space, live_labels.size(), 16, 200, 7);
    t = clock_type::now();
    peer_add(fresh, final_rows, live_labels, o.threads);
    row.update_s = seconds_since(t);
    fresh.setEf(hnsw_search.ef);
    measure_search(row, queries, want, reps, [&](std::size_t i) { return peer_search(fresh, queries.row_ptr(i)); });
    peer_figures(row, fresh);
    rows.push_back(row);
  }
#endif

  std::printf("| arm | round | live | recall@%zu | returned | QPS | unreachable_live | tombstones | "
              "tombstone_link_share | memory MiB | after removals MiB | update s |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|\n",
              k);
  for (const churn_row& r : rows)
    std::printf("| %s | %zu | %zu | %.4f | %.2f | %.0f | %.0f | %.0f | %.4f | %.2f | %s | %.3f |\n", r.arm.c_str(),
                r.round, r.live, r.recall, r.returned, r.qps, r.unreachable_live, r.tombstones, r.tomb_link_share,
                double(r.memory) / double(1 << 20),
                r.memory_mid ? mib(r.memory_mid).c_str() : "-",
                r.update_s);
  std::printf("\n");
  if constexpr (!has_compact<hnsw>) std::printf("compact: not available (hnsw_index has no compact())\n");
#ifndef ANNULUS_HAVE_HNSWLIB
  std::printf("hnswlib: not built\n");
#else
  std::printf("hnswlib memory: from its fields (level-0 block max_elements_ x size_data_per_element_, upper link lists,"
              " per-slot pointer/level/mutex arrays, 65536 update mutexes, label map at 32 B a node + 8 B a bucket; "
              "visited lists not counted); resized to exactly what it holds when an add would overflow. "
              "annulus memory: memory_bytes(). 'returned' = mean results a search gave (k = %zu). "
              "'update s': the round's removals, compact and adds; for the fresh builds, the build.\n",
              k);
#endif
  std::printf("final health verdict: annulus: %s", plain.health().verdict.c_str());
  if (compacted) std::printf("; annulus+compact: %s", compacted->health().verdict.c_str());
  std::printf("\nbuild: annulus %.2f s", build_s);
#ifdef ANNULUS_HAVE_HNSWLIB
  std::printf(", hnswlib %.2f s", peer_build_s);
#endif
  if constexpr (has_compact<hnsw>) std::printf("; compact() %.2f s in all", compact_s);
  std::printf("\n");

  // Summary: first and last round of each arm.
  std::printf("\nsummary churn (%zu rounds of 10%%):", rounds);
  auto first_last = [&](const std::string& arm) {
    const churn_row *f = nullptr, *l = nullptr;
    for (const churn_row& r : rows)
      if (r.arm == arm) {
        if (!f) f = &r;
        l = &r;
      }
    if (!f) return;
    std::printf(" %s recall %.3f -> %.3f, unreachable %.0f -> %.0f, memory %.1f -> %.1f MiB;", arm.c_str(), f->recall,
                l->recall, f->unreachable_live, l->unreachable_live, double(f->memory) / double(1 << 20),
                double(l->memory) / double(1 << 20));
  };
  first_last("annulus");
  if constexpr (has_compact<hnsw>) first_last("annulus+compact");
  else std::printf(" compact: not available;");
  first_last("hnswlib");
#ifndef ANNULUS_HAVE_HNSWLIB
  std::printf(" hnswlib: not built;");
#endif
  for (const churn_row& r : rows)
    if (r.arm.find("fresh") != std::string::npos)
      std::printf(" %s recall %.3f, memory %.1f MiB;", r.arm.c_str(), r.recall, double(r.memory) / double(1 << 20));
  std::printf("\n");

  if (o.out.empty()) return;
  const std::filesystem::path csv = o.out / "drift-churn.csv";
  {
    std::ofstream f(csv);
    f << "arm,round,live,recall,returned,qps,unreachable_live,tombstones,tombstone_link_share,memory_bytes,"
         "memory_after_removals_bytes,update_s\n";
    for (const churn_row& r : rows)
      f << r.arm << ',' << r.round << ',' << r.live << ',' << r.recall << ',' << r.returned << ',' << r.qps << ','
        << r.unreachable_live << ',' << r.tombstones << ',' << r.tomb_link_share << ',' << r.memory << ','
        << r.memory_mid << ',' << r.update_s << '\n';
  }
  std::printf("wrote %s\n", csv.string().c_str());
  if (!have_gnuplot()) {
    std::printf("skipped plot: no gnuplot\n");
    return;
  }
  // gnuplot reads one data block per arm: write them beside the CSV.
  const std::filesystem::path dat = o.out / "drift-churn.dat", gp = o.out / "drift-churn.gp",
                              png = o.out / "drift-churn.png";
  std::vector<std::string> arms;
  for (const churn_row& r : rows)
    if (r.arm.find("fresh") == std::string::npos && std::find(arms.begin(), arms.end(), r.arm) == arms.end())
      arms.push_back(r.arm);
  {
    std::ofstream f(dat);
    for (const std::string& arm : arms) {
      f << "# " << arm << "\n";
      for (const churn_row& r : rows)
        if (r.arm == arm)
          f << r.round << ' ' << r.recall << ' ' << r.unreachable_live << ' ' << double(r.memory) / double(1 << 20)
            << ' ' << r.qps << '\n';
      f << "\n\n";
    }
  }
  {
    std::ofstream f(gp);
    f << "set terminal pngcairo size 1000,1250 noenhanced\nset output '" << png.string() << "'\n"
      << "set multiplot layout 4,1 title 'HNSW under churn: remove and add " << per_round << " of " << n
      << " a round'\nset grid\nset key outside right\n";
    const char* panels[][2] = {
        {"2", "recall@10"}, {"3", "unreachable live nodes"}, {"4", "memory MiB"}, {"5", "QPS, 1 thread"}};
    for (const auto& [col, label] : panels) {
      if (col[0] == '5') f << "set xlabel 'round'\n";
      f << "set ylabel '" << label << "'\nplot ";
      for (std::size_t i = 0; i < arms.size(); ++i)
        f << (i ? ", " : "") << "'" << dat.string() << "' index " << i << " using 1:" << col
          << " with linespoints title '" << arms[i] << "'";
      f << "\n";
    }
    f << "unset multiplot\n";
  }
  run_gnuplot(gp, png);
}

int usage(const char* why) {
  std::fprintf(stderr,
               "%s\nusage: annulus-drift-bench [--scenario ivfpq|churn|all] [--out DIR] [--quick] [--threads T]\n"
               "  ivfpq: [--n0 N] [--step N] [--rounds R] [--queries Q] [--nlist L] [--pq-m M] [--nprobe P] "
               "[--refine F] [--shift S]\n  churn: [--churn-n N] [--churn-rounds R]\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    auto count = [&] { return std::size_t(std::stoull(value())); };
    try {
      if (a == "--scenario") o.scenario = value();
      else if (a == "--out") o.out = value();
      else if (a == "--quick") o.quick = true;
      else if (a == "--threads") o.threads = count();
      else if (a == "--n0") o.n0 = count();
      else if (a == "--step") o.step = count();
      else if (a == "--rounds") o.rounds = count();
      else if (a == "--queries") o.queries = count();
      else if (a == "--nlist") o.nlist = count();
      else if (a == "--pq-m") o.pq_m = count();
      else if (a == "--nprobe") o.nprobe = count();
      else if (a == "--refine") o.refine = count();
      else if (a == "--shift") o.shift = std::stof(value());
      else if (a == "--churn-n") o.churn_n = count();
      else if (a == "--churn-rounds") o.churn_rounds = count();
      else if (a == "--help" || a == "-h") return usage("");
      else return usage(("unknown option " + a).c_str());
    } catch (const std::exception& e) {
      return usage(e.what());
    }
  }
  if (o.scenario != "ivfpq" && o.scenario != "churn" && o.scenario != "all") return usage("bad --scenario");
  if (!o.out.empty()) std::filesystem::create_directories(o.out);
  std::printf("# annulus-drift-bench%s\n", o.quick ? " (quick)" : "");
  const auto t = clock_type::now();
  try {
    if (o.scenario != "churn") scenario_ivfpq(o);
    if (o.scenario != "ivfpq") scenario_churn(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "annulus-drift-bench: %s\n", e.what());
    return 1;
  }
  std::printf("\ntotal %.1f s\n", seconds_since(t));
}
