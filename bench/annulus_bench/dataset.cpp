#include "dataset.hpp"

#include <annulus/eval/synthetic.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "hdf5_file.hpp"
#include "params.hpp"

namespace annulus::bench {

namespace fs = std::filesystem;

metric_kind parse_metric(const std::string& text) {
  std::string t = text;
  for (char& c : t) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (t == "l2" || t == "euclidean") return metric_kind::l2;
  if (t == "ip" || t == "inner_product" || t == "dot") return metric_kind::inner_product;
  if (t == "cosine" || t == "angular") return metric_kind::cosine;
  throw usage_error("unknown metric '" + text + "': expected l2, ip or cosine");
}

namespace {

// A source's data before its ground truth is settled.
struct source {
  dataset ds;                        // name, metric, base, every query
  matrix<std::int32_t> truth;        // shipped ground truth for truth_metric (empty: none)
  matrix<float> truth_dist;          // its distances as stored (empty: none)
  metric_kind truth_metric = metric_kind::l2;
  std::string truth_file;            // for messages
  std::vector<fs::path> cache_dirs;  // computed truth is looked for and written here, in order
};

// Runs f, turning annulus's exceptions into usage errors with the same message.
template <class F>
auto or_usage_error(const std::string& prefix, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const annulus::error& e) {
    throw usage_error(prefix + e.what());
  }
}

template <class T>
matrix<T> first_rows(const matrix<T>& m, std::size_t n) {
  return matrix<T>(m.view().rows_slice(0, std::min(n, m.rows())));
}

// The metric's distance in annulus's convention (cosine: 1 - cos, normalising here).
float distance(metric_kind m, const float* a, const float* b, std::size_t d) {
  switch (m) {
    case metric_kind::l2: return kernels::l2sq(a, b, d);
    case metric_kind::inner_product: return -kernels::dot(a, b, d);
    case metric_kind::cosine:
      return float(1.0 - double(kernels::dot(a, b, d)) /
                             std::sqrt(double(kernels::norm_sq(a, d)) * kernels::norm_sq(b, d)));
  }
  return 0;
}

// ---- The embedded default: a Gaussian mixture with uneven cluster sizes and norms ----

source make_mixture(const dataset_request& req, std::size_t n, std::size_t dim, std::size_t nq, std::string name) {
  const gaussian_mixture mixture(dim, {.clusters = 64, .norm_ratio = 8.0, .seed = 20240611});
  source src;
  src.ds.name = std::move(name);
  src.ds.metric = req.metric.value_or(metric_kind::l2);
  src.ds.base = mixture.sample(n, 1);  // queries from another stream: none is in the base
  src.ds.queries = mixture.sample(nq, 2);
  if (!req.out_dir.empty()) src.cache_dirs.push_back(req.out_dir);
  return src;
}

source make_default(const dataset_request& req) {
  if (req.quick) return make_mixture(req, 20000, 64, 200, "default-quick");
  return make_mixture(req, 100000, 128, 1000, "default");
}

// "synthetic:NxD": the default's mixture at another size (1,000 queries),
// generated, not stored: for the effect of memory latency at 10^6 and more.
source make_synthetic(const dataset_request& req, std::string_view spec) {
  const std::string text(spec);
  const auto bad = [&] {
    return usage_error("--data " + in_quotes("synthetic:" + text) +
                       ": expected synthetic:NxD with N >= 1000 rows and D in 1..65536, e.g. synthetic:1000000x128");
  };
  const std::size_t x = text.find('x');
  if (x == std::string::npos) throw bad();
  std::size_t n = 0, d = 0;
  try {
    std::size_t used = 0;
    n = std::stoull(text.substr(0, x), &used);
    if (used != x) throw bad();
    d = std::stoull(text.substr(x + 1), &used);
    if (used != text.size() - x - 1) throw bad();
  } catch (const std::logic_error&) {
    throw bad();
  }
  if (n < 1000 || n > (std::size_t{1} << 32) || d == 0 || d > 65536) throw bad();
  return make_mixture(req, n, d, 1000, "synthetic-" + text);
}

// ---- Files: a texmex directory, an ann-benchmarks HDF5 file ----

source load_directory(const fs::path& dir, const dataset_request& req) {
  source src;
  src.ds.name = (fs::absolute(dir).lexically_normal() / "").parent_path().filename().string();
  src.ds.metric = req.metric.value_or(metric_kind::l2);
  src.ds.base = or_usage_error("", [&] { return read_fvecs(dir / "base.fvecs"); });
  src.ds.queries = or_usage_error("", [&] { return read_fvecs(dir / "query.fvecs"); });
  // The shipped truth is for l2 (squared distances), so read only under l2.
  const fs::path ids = dir / "groundtruth.ivecs", dists = dir / "groundtruth_dist.fvecs";
  if (src.ds.metric == metric_kind::l2 && fs::exists(ids)) {
    src.truth = or_usage_error("", [&] { return read_ivecs(ids); });
    if (fs::exists(dists)) src.truth_dist = or_usage_error("", [&] { return read_fvecs(dists); });
    src.truth_file = in_quotes(ids);
  }
  src.cache_dirs.push_back(dir);
  if (!req.out_dir.empty()) src.cache_dirs.push_back(req.out_dir);
  return src;
}

source load_hdf5(const fs::path& path, const dataset_request& req) {
  const hdf5_file file(path);
  std::optional<metric_kind> file_metric;
  if (const auto attr = file.root_attribute("distance")) {
    try {
      file_metric = parse_metric(*attr);
    } catch (const usage_error&) {
      throw usage_error(in_quotes(path) + ": distance '" + *attr +
                        "' is not supported (euclidean, angular and dot are)");
    }
  }
  source src;
  src.ds.name = path.stem().string();
  src.ds.metric = req.metric.value_or(file_metric.value_or(metric_kind::l2));
  src.ds.base = file.read_float("train");
  src.ds.queries = file.read_float("test");
  // The file's truth is used only for the metric it was made for.
  if (file_metric == src.ds.metric && file.has("neighbors")) {
    src.truth = file.read_int32("neighbors");
    if (file.has("distances")) src.truth_dist = file.read_float("distances");
    src.truth_metric = *file_metric;
    src.truth_file = in_quotes(path) + " (neighbors)";
  }
  if (!req.out_dir.empty()) src.cache_dirs.push_back(req.out_dir);
  return src;
}

source load_source(const dataset_request& req) {
  if (req.path.empty()) return make_default(req);
  if (req.path.rfind("synthetic:", 0) == 0) return make_synthetic(req, std::string_view(req.path).substr(10));
  const fs::path p(req.path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) return load_directory(p, req);
  if (!fs::exists(p, ec)) throw usage_error(in_quotes(p) + ": no such file or directory");
  std::string ext = p.extension().string();
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".hdf5" || ext == ".h5") return load_hdf5(p, req);
  throw usage_error(in_quotes(p) + ": expected a directory holding base.fvecs and query.fvecs, "
                                "or an ann-benchmarks .hdf5 file");
}

// ---- Shipped ground truth ----

// Distances of each truth id to its query (+inf for negative padding ids).
matrix<float> distances_of(const dataset& ds, const matrix<std::int32_t>& ids) {
  matrix<float> out(ids.rows(), ids.cols());
  for (std::size_t q = 0; q < ids.rows(); ++q)
    for (std::size_t j = 0; j < ids.cols(); ++j)
      out(q, j) = ids(q, j) < 0 ? INFINITY
                                : distance(ds.metric, ds.queries.row_ptr(q),
                                           ds.base.row_ptr(std::size_t(ids(q, j))), ds.base.cols());
  return out;
}

// Brings stored distances into annulus's convention. Files differ: texmex
// stores squared l2, ann-benchmarks true Euclidean (square it) and 1 - cos for
// angular (as is); an inner-product file may store the similarity (negate it).
// A few entries are checked against computed distances to tell which; none
// fitting means the truth is not for this data.
void convert_truth_distances(const dataset& ds, const std::string& file, matrix<float>& stored) {
  using transform = float (*)(float);
  std::vector<transform> candidates = {[](float x) { return x; }};
  if (ds.metric == metric_kind::l2) candidates.push_back([](float x) { return x * x; });
  if (ds.metric == metric_kind::inner_product) candidates.push_back([](float x) { return -x; });
  struct sample { float stored, computed; };
  std::vector<sample> samples;
  const std::size_t rows = stored.rows(), step = std::max<std::size_t>(1, rows / 8);
  for (std::size_t q = 0; q < rows; q += step)
    for (std::size_t j : {std::size_t{0}, stored.cols() - 1})
      if (ds.truth(q, j) >= 0)
        samples.push_back({stored(q, j), distance(ds.metric, ds.queries.row_ptr(q),
                                                  ds.base.row_ptr(std::size_t(ds.truth(q, j))),
                                                  ds.base.cols())});
  double scale = 1e-30;
  for (const sample& s : samples) scale = std::max(scale, double(std::abs(s.computed)));
  for (transform t : candidates) {
    const bool fits = std::all_of(samples.begin(), samples.end(), [&](const sample& s) {
      return std::abs(double(t(s.stored)) - s.computed) <= 1e-3 * std::abs(s.computed) + 1e-4 * scale;
    });
    if (!fits) continue;
    for (std::size_t i = 0; i < stored.size(); ++i) stored.data()[i] = t(stored.data()[i]);
    return;
  }
  throw usage_error(file + ": the stored distances do not match the data under " +
                    std::string(metric_name(ds.metric)) + " (first query, first neighbour: stored " +
                    std::to_string(samples.at(0).stored) + ", computed " +
                    std::to_string(samples.at(0).computed) + ")");
}

// Every row names k real base vectors first (negative ids pad a row's end
// only, and -1 is the one padding value files use).
void check_truth_rows(const dataset& ds, const matrix<std::int32_t>& truth, const std::string& file,
                      std::size_t k) {
  for (std::size_t q = 0; q < truth.rows(); ++q)
    for (std::size_t j = 0; j < truth.cols(); ++j) {
      const std::int32_t id = truth(q, j);
      if (id < -1)
        throw usage_error(file + ": ground truth row " + std::to_string(q) + " names id " +
                          std::to_string(id) + "; ids are base rows, or -1 for padding");
      if (id == -1 && j < k)
        throw usage_error(file + ": ground truth row " + std::to_string(q) + " holds " + std::to_string(j) +
                          " neighbours before its padding, k = " + std::to_string(k) + " needs " +
                          std::to_string(k) + " (the base has " + std::to_string(ds.base.rows()) + ")");
    }
}

// Up to 8 queries, spread over the set, searched exactly here: the shipped
// neighbours' distances must be the true k smallest. Catches truth made for
// other data, another metric or a shuffled base at a fraction of a second.
void check_truth_sample(const dataset& ds, const matrix<std::int32_t>& truth, const std::string& file,
                        std::size_t k) {
  const std::size_t n = ds.base.rows(), d = ds.base.cols();
  const std::size_t step = std::max<std::size_t>(1, truth.rows() / 8);
  std::vector<float> all(n), shipped(k);
  for (std::size_t q = 0; q < truth.rows(); q += step) {
    const float* query = ds.queries.row_ptr(q);
    for (std::size_t i = 0; i < n; ++i) all[i] = distance(ds.metric, query, ds.base.row_ptr(i), d);
    std::partial_sort(all.begin(), all.begin() + std::ptrdiff_t(k), all.end());
    for (std::size_t j = 0; j < k; ++j)
      shipped[j] = distance(ds.metric, query, ds.base.row_ptr(std::size_t(truth(q, j))), d);
    std::sort(shipped.begin(), shipped.end());
    const double scale = std::max(std::abs(double(all[0])), std::abs(double(all[k - 1])));
    for (std::size_t j = 0; j < k; ++j)
      if (std::abs(double(shipped[j]) - all[j]) > 1e-3 * std::abs(double(all[j])) + 1e-4 * scale + 1e-6)
        throw usage_error(file + ": ground truth for query " + std::to_string(q) +
                          " is not the exact neighbours of this data under " +
                          std::string(metric_name(ds.metric)) + ": its " + std::to_string(j + 1) +
                          "-th closest is at distance " + std::to_string(shipped[j]) + ", the true one at " +
                          std::to_string(all[j]));
  }
}

// Checks the shipped truth against the queries and takes it; false if it cannot
// serve (made for another metric, or fewer than k neighbours).
bool take_shipped_truth(source& src, std::size_t k) {
  dataset& ds = src.ds;
  if (src.truth.empty() || src.truth_metric != ds.metric) return false;
  if (src.truth.rows() != ds.queries.rows())
    throw usage_error(src.truth_file + ": ground truth has " + std::to_string(src.truth.rows()) +
                      " rows, there are " + std::to_string(ds.queries.rows()) + " queries");
  if (!src.truth_dist.empty() &&
      (src.truth_dist.rows() != src.truth.rows() || src.truth_dist.cols() != src.truth.cols()))
    throw usage_error(src.truth_file + ": ground-truth distances are " +
                      std::to_string(src.truth_dist.rows()) + " x " +
                      std::to_string(src.truth_dist.cols()) + ", ids are " +
                      std::to_string(src.truth.rows()) + " x " + std::to_string(src.truth.cols()));
  for (std::size_t i = 0; i < src.truth.size(); ++i)
    if (src.truth.data()[i] >= std::int64_t(ds.base.rows()))
      throw usage_error(src.truth_file + ": ground truth names base row " +
                        std::to_string(src.truth.data()[i]) + ", there are " +
                        std::to_string(ds.base.rows()) + " base vectors");
  if (src.truth.cols() < k) return false;
  check_truth_rows(ds, src.truth, src.truth_file, k);
  check_truth_sample(ds, src.truth, src.truth_file, k);
  ds.truth = std::move(src.truth);
  if (src.truth_dist.empty()) {
    ds.truth_dist = distances_of(ds, ds.truth);
  } else {
    convert_truth_distances(ds, src.truth_file, src.truth_dist);
    ds.truth_dist = std::move(src.truth_dist);
  }
  return true;
}

// ---- Computed ground truth and its cache ----

// Names the cache after the base and the full query set, so edited data or
// another generator never reuses stale truth.
std::string fingerprint(const matrix<float>& a, const matrix<float>& b) {
  std::uint64_t h = mix64(a.rows() * 1000003 + a.cols()) ^ mix64(b.rows());
  for (const matrix<float>* m : {&a, &b})
    for (std::size_t i = 0; i < m->size(); ++i) {
      std::uint32_t w;
      std::memcpy(&w, m->data() + i, 4);
      h = (h ^ w) * 0x100000001b3ULL;
    }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%08llx", static_cast<unsigned long long>(mix64(h) >> 32));
  return hex;
}

template <class M>
result_matrix exact_search(const dataset& ds, std::size_t k, std::size_t threads) {
  return flat_index<M>::build(ds.base).search_batch(ds.queries, k, {}, threads);
}

void compute_truth(dataset& ds, std::size_t k, std::size_t threads) {
  std::fprintf(stderr, "computing exact ground truth for %zu queries (%zu neighbours, %s) ... ",
               ds.queries.rows(), k, std::string(metric_name(ds.metric)).c_str());
  std::fflush(stderr);
  const auto start = std::chrono::steady_clock::now();
  result_matrix r;
  try {
    r = or_usage_error("", [&] {
      switch (ds.metric) {
        case metric_kind::l2: return exact_search<l2>(ds, k, threads);
        case metric_kind::inner_product: return exact_search<inner_product>(ds, k, threads);
        case metric_kind::cosine: return exact_search<cosine>(ds, k, threads);
      }
      throw usage_error("unknown metric");
    });
  } catch (...) {
    std::fprintf(stderr, "failed\n");
    throw;
  }
  ds.truth = matrix<std::int32_t>(r.size(), k);
  ds.truth_dist = matrix<float>(r.size(), k);
  std::fill_n(ds.truth.data(), ds.truth.size(), -1);
  std::fill_n(ds.truth_dist.data(), ds.truth_dist.size(), INFINITY);
  for (std::size_t q = 0; q < r.size(); ++q)
    for (std::size_t j = 0; j < r[q].size(); ++j) {
      ds.truth(q, j) = std::int32_t(r[q][j].label);
      ds.truth_dist(q, j) = r[q][j].distance;
    }
  std::fprintf(stderr, "done in %.1f s\n",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

// Cached truth for the first ds.queries.rows() queries, k neighbours each; false if none fits.
bool read_cache(dataset& ds, const std::vector<fs::path>& dirs, const std::string& stem,
                std::size_t k) {
  for (const fs::path& dir : dirs) {
    const fs::path ids = dir / (stem + "-gt.ivecs"), dists = dir / (stem + "-gt_dist.fvecs");
    std::error_code ec;
    if (!fs::exists(ids, ec) || !fs::exists(dists, ec)) continue;
    try {
      matrix<std::int32_t> t = read_ivecs(ids);
      matrix<float> td = read_fvecs(dists);
      if (t.cols() != k || td.cols() != k || t.rows() != td.rows() || t.rows() < ds.queries.rows())
        continue;  // made for fewer queries: computed again, and replaced
      ds.truth = first_rows(t, ds.queries.rows());
      ds.truth_dist = first_rows(td, ds.queries.rows());
      return true;
    } catch (const annulus::error&) {  // damaged: computed again
    }
  }
  return false;
}

void write_cache(const dataset& ds, const std::vector<fs::path>& dirs, const std::string& stem) {
  std::string why = "no directory to write to";
  for (const fs::path& dir : dirs) {
    try {
      fs::create_directories(dir);
      write_ivecs(dir / (stem + "-gt.ivecs"), ds.truth);
      write_fvecs(dir / (stem + "-gt_dist.fvecs"), ds.truth_dist);
      return;
    } catch (const std::exception& e) {  // annulus::error or filesystem_error: try the next
      why = e.what();
    }
  }
  std::fprintf(stderr, "note: the ground truth is not cached: %s\n", why.c_str());
}

}  // namespace

dataset load_dataset(const dataset_request& req) {
  if (req.k == 0) throw usage_error("k must be at least 1, got 0");
  source src = load_source(req);
  dataset& ds = src.ds;
  const std::string where = req.path.empty() ? ds.name + ": " : in_quotes(req.path) + ": ";
  if (ds.base.cols() != ds.queries.cols())
    throw usage_error(where + "base vectors have " + std::to_string(ds.base.cols()) +
                      " dimensions, queries have " + std::to_string(ds.queries.cols()));
  if (ds.queries.rows() == 0) throw usage_error(where + "no query vectors; expected at least 1");
  if (req.k > ds.base.rows())
    throw usage_error("k = " + std::to_string(req.k) + " is larger than the " +
                      std::to_string(ds.base.rows()) + " base vectors");
  or_usage_error(where, [&] {
    check::finite("base", ds.base);
    check::finite("query", ds.queries);
    if (ds.metric == metric_kind::cosine) {
      check::nonzero_rows("base", ds.base);
      check::nonzero_rows("query", ds.queries);
    }
  });

  const std::size_t nq = req.max_queries ? std::min(req.max_queries, ds.queries.rows())
                                         : ds.queries.rows();
  if (take_shipped_truth(src, req.k)) {
    ds.queries = first_rows(ds.queries, nq);
    ds.truth = first_rows(ds.truth, nq);
    ds.truth_dist = first_rows(ds.truth_dist, nq);
    return std::move(ds);
  }
  // k_gt > k so that tie-aware recall sees ties at the k-th distance.
  const std::size_t k_gt = std::min(std::max<std::size_t>(100, req.k), ds.base.rows());
  const std::string stem = ds.name + "-" + std::string(metric_name(ds.metric)) + "-k" +
                           std::to_string(k_gt) + "-" + fingerprint(ds.base, ds.queries);
  ds.queries = first_rows(ds.queries, nq);
  if (!read_cache(ds, src.cache_dirs, stem, k_gt)) {
    compute_truth(ds, k_gt, req.threads);
    write_cache(ds, src.cache_dirs, stem);
  }
  return std::move(ds);
}

}  // namespace annulus::bench
