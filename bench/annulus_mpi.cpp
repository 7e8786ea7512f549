// annulus-mpi: a sharded index served over MPI (annulus/dist/mpi.hpp), and
// the in-process sharded_index it must match and be measured against.
//
//   annulus-mpi build --out DIR --shards S [--index hnsw:m=16] [--data PATH]
//   mpirun -np S*R annulus-mpi serve --index DIR --replicas R [--search ef=64] [--check]
//   annulus-mpi local --index DIR [--search ef=64] [--threads 2]
//
// serve: every rank opens its shard file; each replica group's root sends
// batches of --batch queries (batch b to group b mod R) for --rounds rounds;
// rank 0 prints QPS (all queries of a round / its wall time, median over
// rounds), p50 / p99 batch latency, recall@k against the data's ground
// truth, and per rank the share of the time it spent searching (its load).
// --check also loads the whole index in rank 0's process (sharded_index)
// and requires every result to be identical. local runs the same loop in
// one process over sharded_index: the peer of serve's figures.
// --die-rank R --die-after N make rank R exit abruptly after N batches: the
// test of how a job fails when a rank dies (tests/dist/).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <annulus/annulus.hpp>
#include <annulus/dist/mpi.hpp>
#include <annulus/index/sharded.hpp>

#include "annulus_bench/dataset.hpp"
#include "annulus_bench/params.hpp"

namespace fs = std::filesystem;
using namespace annulus;
using namespace annulus::bench;

namespace {

struct options {
  std::string out, dir, data, metric, index = "hnsw", search, partition = "round_robin";
  std::size_t shards = 2, replicas = 1, batch = 1000, k = 10, rounds = 3, threads = 1, queries = 0;
  bool check = false, load = false;
  int die_rank = -1;
  std::size_t die_after = 0;
};

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

// The test hook of --die-rank: says when, then exits without MPI_Finalize.
[[noreturn]] void die(int rank) {
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::fprintf(stderr, "annulus-mpi: rank %d exits abruptly at %.3f\n", rank, now);
  std::fflush(stderr);
  std::_Exit(3);
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, std::size_t(q * double(v.size())))];
}

// ---- the index types served: kind x metric ----

template <class F>
auto with_metric(metric_kind m, F&& f) {
  switch (m) {
    case metric_kind::l2: return f.template operator()<l2>();
    case metric_kind::inner_product: return f.template operator()<inner_product>();
    case metric_kind::cosine: return f.template operator()<cosine>();
  }
  throw usage_error("unknown metric");
}

// Calls f.template operator()<Index>() for the kind's index type.
template <class F>
auto with_index(const std::string& kind, metric_kind m, F&& f) {
  return with_metric(m, [&]<class M>() {
    if (kind == "flat") return f.template operator()<flat_index<M>>();
    if (kind == "hnsw") return f.template operator()<hnsw_index<M>>();
    if (kind == "ivf_flat") return f.template operator()<ivf_flat_index<M>>();
    if (kind == "ivf_pq") return f.template operator()<ivf_pq_index<M>>();
    throw usage_error("unknown index kind '" + kind + "' (flat, hnsw, ivf_flat, ivf_pq)");
  });
}

template <class Index>
typename Index::build_params build_params_of(const params& p, std::size_t rows) {
  typename Index::build_params b{};
  if constexpr (requires { b.ef_construction; }) {
    b.m = p.get_size("m", b.m);
    b.ef_construction = p.get_size("ef_construction", b.ef_construction);
    b.alpha = p.get_double("alpha", b.alpha);
  }
  if constexpr (requires { b.nlist; }) {
    b.nlist = ivf_list_count(p, rows, "--index");
    if constexpr (requires { b.nbits; }) {
      b.m = p.get_size("m", b.m);
      b.keep_vectors = p.get_size("refine", 4) > 0;
    }
  }
  if constexpr (requires { b.seed; }) b.seed = p.get_size("seed", b.seed);
  return b;
}

template <class Index>
typename Index::search_params search_params_of(const params& p) {
  typename Index::search_params s{};
  if constexpr (requires { s.ef; }) s.ef = p.get_size("ef", s.ef);
  if constexpr (requires { s.nprobe; }) s.nprobe = p.get_size("nprobe", s.nprobe);
  if constexpr (requires { s.refine_factor; }) s.refine_factor = p.get_size("refine", 4);
  p.require_all_used("--search");
  return s;
}

// The kind of the index saved in dir: shard 0's file header.
std::string saved_kind(const fs::path& dir, metric_kind& metric) {
  const mapped_file manifest(dir / "manifest.annulus");
  metric = serial::reader(manifest.bytes(), (dir / "manifest.annulus").string()).header().metric;
  const mapped_file shard(dir / "shard-00000.annulus");
  return serial::reader(shard.bytes(), (dir / "shard-00000.annulus").string()).header().kind;
}

// Computed ground truth is cached under annulus-mpi-out/<who>: one
// directory per rank, so replica roots do not write one file at once.
dataset load_queries(const options& o, metric_kind metric, const std::string& who = "local") {
  dataset_request req;
  req.path = o.data;
  req.metric = metric;
  req.k = o.k;
  req.max_queries = o.queries;
  req.out_dir = fs::path("annulus-mpi-out") / who;
  return load_dataset(req);
}

double recall(const dataset& ds, const std::vector<result_matrix>& batches, std::size_t batch, std::size_t k) {
  double hits = 0;
  for (std::size_t b = 0; b < batches.size(); ++b)
    for (std::size_t i = 0; i < batches[b].size(); ++i) {
      const std::size_t q = b * batch + i;
      for (const neighbor& n : batches[b][i])
        for (std::size_t j = 0; j < k; ++j)
          if (label_t(ds.truth(q, j)) == n.label) {
            ++hits;
            break;
          }
    }
  return hits / double(ds.queries.rows() * k);
}

// ---- build ----

int build(const options& o) {
  const dataset ds = load_queries(o, o.metric.empty() ? metric_kind::l2 : parse_metric(o.metric));
  const auto colon = o.index.find(':');
  const std::string kind = o.index.substr(0, colon);
  const params p = params::parse(colon == std::string::npos ? "" : o.index.substr(colon + 1), "--index");
  with_index(kind, ds.metric, [&]<class Index>() {
    using sharded = sharded_index<Index>;
    typename sharded::build_params bp{.shards = o.shards,
                                      .partition = o.partition == "label_hash" ? shard_partition::label_hash
                                                                               : shard_partition::round_robin,
                                      .shard = build_params_of<Index>(p, ds.base.rows() / o.shards)};
    p.require_all_used("--index");
    const auto t = clock_type::now();
    const sharded idx = sharded::build(ds.base.view(), bp, 0);
    const double secs = seconds_since(t);
    idx.save(o.out);
    std::printf("built %s: %zu shards of %s over %zu x %zu (%s) in %.1f s, saved to %s\n", kind.c_str(),
                o.shards, std::string(Index::index_name).c_str(), ds.base.rows(), ds.base.cols(),
                std::string(metric_name(ds.metric)).c_str(), secs, o.out.c_str());
  });
  return 0;
}

// ---- local: the in-process peer ----

int local(const options& o) {
  metric_kind metric;
  const std::string kind = saved_kind(o.dir, metric);
  const dataset ds = load_queries(o, metric);
  with_index(kind, metric, [&]<class Index>() {
    const auto idx = o.load ? sharded_index<Index>::load(o.dir) : sharded_index<Index>::view(o.dir);
    const auto sp = search_params_of<Index>(params::parse(o.search, "--search"));
    const std::size_t nq = ds.queries.rows(), batches = (nq + o.batch - 1) / o.batch;
    std::vector<double> round_qps, latencies;
    std::vector<result_matrix> results(batches);
    for (std::size_t r = 0; r < o.rounds; ++r) {
      const auto round = clock_type::now();
      for (std::size_t b = 0; b < batches; ++b) {
        const auto t = clock_type::now();
        results[b] = idx.search_batch(ds.queries.view().rows_slice(b * o.batch, std::min(o.batch, nq - b * o.batch)),
                                      o.k, sp, o.threads);
        latencies.push_back(seconds_since(t));
      }
      round_qps.push_back(double(nq) / seconds_since(round));
    }
    std::printf("local: %zu shards of %s in one process, %zu threads, batches of %zu: QPS %.0f (median of %zu rounds), "
                "batch latency p50 %.2f ms p99 %.2f ms, recall@%zu %.4f\n",
                idx.shard_count(), kind.c_str(), o.threads, o.batch, quantile(round_qps, 0.5), o.rounds,
                1e3 * quantile(latencies, 0.5), 1e3 * quantile(latencies, 0.99), o.k,
                recall(ds, results, o.batch, o.k));
  });
  return 0;
}

// ---- serve: over MPI ----

// Per rank, what rank 0 prints.
struct rank_stats {
  double busy = 0, wall = 0;
  double answered = 0;
};

template <class Index>
int serve_with(const options& o, int rank, int size, metric_kind metric, const std::string& kind) {
  auto shards = dist::mpi_shards<Index>::open(MPI_COMM_WORLD, o.dir, o.replicas,
                                              o.load ? dist::shard_open::load : dist::shard_open::view);
  shards.set_threads(o.threads);
  const auto sp = search_params_of<Index>(params::parse(o.search, "--search"));
  const std::size_t groups = shards.replicas();

  // Roots read the queries; batch b goes to group b mod R.
  dataset ds;
  std::size_t nq = 0, batches = 0;
  if (shards.root()) {
    ds = load_queries(o, metric, "rank-" + std::to_string(rank));
    nq = ds.queries.rows();
    batches = (nq + o.batch - 1) / o.batch;
  }
  std::vector<result_matrix> results;
  std::vector<double> latencies, round_secs;
  std::size_t sent = 0;
  for (std::size_t r = 0; r < o.rounds; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);  // rounds start together: a round's wall time is every group's
    const auto round = clock_type::now();
    if (shards.root()) {
      results.assign(batches, {});
      for (std::size_t b = shards.replica(); b < batches; b += groups) {
        if (rank == o.die_rank && sent == o.die_after) die(rank);
        const auto t = clock_type::now();
        results[b] = shards.search_batch(
            ds.queries.view().rows_slice(b * o.batch, std::min(o.batch, nq - b * o.batch)), o.k, sp);
        latencies.push_back(seconds_since(t));
        ++sent;
      }
      shards.stop();
    } else {
      while (shards.serve())
        if (rank == o.die_rank && ++sent == o.die_after) die(rank);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    round_secs.push_back(seconds_since(round));
  }

  // Figures to rank 0: every rank's load; every root's latencies and results.
  double measured = 0;  // the rounds' time, the same at every rank (they start and end at barriers)
  for (const double secs : round_secs) measured += secs;
  rank_stats mine{shards.busy_seconds(), measured, double(shards.queries_answered())};
  std::vector<rank_stats> all(static_cast<std::size_t>(size));
  MPI_Gather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, 0, MPI_COMM_WORLD);
  int count = int(latencies.size());
  std::vector<int> counts(static_cast<std::size_t>(size)), offsets(static_cast<std::size_t>(size));
  MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  int total = 0;
  for (int i = 0; i < size; ++i) offsets[std::size_t(i)] = std::exchange(total, total + counts[std::size_t(i)]);
  std::vector<double> every(static_cast<std::size_t>(total));
  MPI_Gatherv(latencies.data(), count, MPI_DOUBLE, every.data(), counts.data(), offsets.data(), MPI_DOUBLE, 0,
              MPI_COMM_WORLD);

  // Results of the last round: each batch from the root that answered it.
  const int shard_count = int(shards.shards());
  if (rank != 0 && shards.root())
    for (std::size_t b = shards.replica(); b < batches; b += groups)
      for (std::size_t i = 0; i < results[b].size(); ++i) {
        std::vector<neighbor> row(o.k, dist::detail::unfilled);
        std::copy(results[b][i].begin(), results[b][i].end(), row.begin());
        MPI_Send(row.data(), int(o.k * sizeof(neighbor)), MPI_BYTE, 0, int(b % 32768), MPI_COMM_WORLD);
      }
  if (rank != 0) return 0;
  for (std::size_t b = 0; b < batches; ++b) {
    const std::size_t g = b % groups;
    if (g == 0) continue;
    const std::size_t rows = std::min(o.batch, nq - b * o.batch);
    result_matrix m(rows, o.k);
    for (std::size_t i = 0; i < rows; ++i) {
      std::vector<neighbor> row(o.k);
      MPI_Recv(row.data(), int(o.k * sizeof(neighbor)), MPI_BYTE, int(g) * shard_count, int(b % 32768),
               MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      const std::size_t n = std::size_t(std::find(row.begin(), row.end(), dist::detail::unfilled) - row.begin());
      std::copy_n(row.begin(), n, m.row_storage(i).begin());
      m.set_count(i, n);
    }
    results[b] = std::move(m);
  }

  std::vector<double> round_qps;
  for (const double s : round_secs) round_qps.push_back(double(nq) / s);
  std::printf("serve: %zu shards x %zu replicas of %s over MPI (%d ranks, %zu threads each), batches of %zu: "
              "QPS %.0f (median of %zu rounds), batch latency p50 %.2f ms p99 %.2f ms, recall@%zu %.4f\n",
              shards.shards(), groups, kind.c_str(), size, o.threads, o.batch, quantile(round_qps, 0.5), o.rounds,
              1e3 * quantile(every, 0.5), 1e3 * quantile(every, 0.99), o.k, recall(ds, results, o.batch, o.k));
  for (int i = 0; i < size; ++i)
    std::printf("  rank %d (shard %d, replica %d): %.0f queries, searching %.0f%% of %.2f s\n", i, i % shard_count,
                i / shard_count, all[std::size_t(i)].answered, 100 * all[std::size_t(i)].busy / all[std::size_t(i)].wall,
                all[std::size_t(i)].wall);

  if (o.check) {
    const auto whole = sharded_index<Index>::load(o.dir);
    std::size_t differ = 0;
    for (std::size_t b = 0; b < batches; ++b) {
      const result_matrix expect = whole.search_batch(
          ds.queries.view().rows_slice(b * o.batch, std::min(o.batch, nq - b * o.batch)), o.k, sp, 0);
      for (std::size_t i = 0; i < expect.size(); ++i)
        if (!std::equal(expect[i].begin(), expect[i].end(), results[b][i].begin(), results[b][i].end())) ++differ;
    }
    std::printf("check: %zu of %zu queries differ from the in-process sharded_index over %s\n", differ, nq,
                o.dir.c_str());
    if (differ != 0) return 1;
  }
  return 0;
}

int serve(const options& o) {
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  // The index type comes from the files; a rank that cannot read them
  // still joins open() (as flat l2), which then fails on every rank.
  metric_kind metric = metric_kind::l2;
  std::string kind = "flat";
  try {
    kind = saved_kind(o.dir, metric);
  } catch (const std::exception&) {
  }
  return with_index(kind, metric, [&]<class Index>() { return serve_with<Index>(o, rank, size, metric, kind); });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"annulus-mpi: a sharded index built, served over MPI, or searched in one process"};
  app.require_subcommand(1);
  options o;
  auto* b = app.add_subcommand("build", "build a sharded_index and save it (one process)");
  b->add_option("--out", o.out, "directory to save into")->required();
  b->add_option("--shards", o.shards, "S")->check(CLI::Range(1, 1024));
  b->add_option("--partition", o.partition, "round_robin | label_hash")
      ->check(CLI::IsMember({"round_robin", "label_hash"}));
  b->add_option("--index", o.index, "kind[:build parameters]: flat, hnsw:m=16,ef_construction=200, ivf_flat:nlist=256, "
                                   "ivf_pq:nlist=256,m=16,refine=4");
  b->add_option("--metric", o.metric, "l2 | ip | cosine (default: the data's, else l2)");
  auto* s = app.add_subcommand("serve", "serve a saved sharded_index over MPI (run under mpirun)");
  auto* l = app.add_subcommand("local", "search a saved sharded_index in this process (the peer of serve)");
  for (auto* c : {b, s, l}) {
    c->add_option("--data", o.data, "texmex directory or .hdf5 (default: annulus-bench's generated set)");
    c->add_option("--queries", o.queries, "use only the first N queries (0 = all)");
  }
  for (auto* c : {s, l}) {
    c->add_option("--index", o.dir, "directory a build wrote")->required();
    c->add_option("--search", o.search, "search parameters: ef=64 | nprobe=16");
    c->add_option("--batch", o.batch, "queries per batch")->check(CLI::PositiveNumber);
    c->add_option("--k", o.k, "neighbours per query")->check(CLI::PositiveNumber);
    c->add_option("--rounds", o.rounds, "passes over the queries (medians reported)")->check(CLI::PositiveNumber);
    c->add_option("--threads", o.threads, "search threads per rank (serve) or in the process (local)");
    c->add_flag("--load", o.load, "load the shard files into memory instead of viewing them");
  }
  s->add_option("--replicas", o.replicas, "R: the job has S x R ranks")->check(CLI::PositiveNumber);
  s->add_flag("--check", o.check, "compare every result with the in-process sharded_index (rank 0)");
  s->add_option("--die-rank", o.die_rank, "test: this rank exits abruptly ...");
  s->add_option("--die-after", o.die_after, "... after this many batches");
  CLI11_PARSE(app, argc, argv);

  if (s->parsed()) {
    MPI_Init(&argc, &argv);
    int rc = 1, rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    try {
      rc = serve(o);
    } catch (const dist::startup_error& e) {
      // Every rank has it, with every failing rank's message: rank 0 prints it, all exit 1.
      if (rank == 0) std::fprintf(stderr, "annulus-mpi: %s\n", e.what());
      rc = 1;
    } catch (const std::exception& e) {
      // This rank alone: the others may wait for it in a collective, so the job ends here.
      std::fprintf(stderr, "annulus-mpi: rank %d: %s\n", rank, e.what());
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Finalize();
    return rc;
  }
  try {
    return b->parsed() ? build(o) : local(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "annulus-mpi: %s\n", e.what());
    return 1;
  }
}
