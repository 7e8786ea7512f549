// annulus-bench's data loading: the generated default, texmex directories and
// ann-benchmarks HDF5 files, their ground truth and its cache, and the errors.
#include "annulus_bench/dataset.hpp"
#include "annulus_bench/params.hpp"

#include <hdf5.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using annulus::matrix;
using annulus::metric_kind;
using annulus::bench::dataset_request;
using annulus::bench::load_dataset;
using annulus::bench::usage_error;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;

namespace {

struct temp_dir : annulus::testing::temp_dir {
  temp_dir() : annulus::testing::temp_dir("annulus_dataset_test") {}
};

matrix<float> random_matrix(std::size_t rows, std::size_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  matrix<float> m(rows, cols);
  for (std::size_t i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

double exact_distance(metric_kind m, std::span<const float> a, std::span<const float> b) {
  double dot = 0, l2 = 0, na = 0, nb = 0;
  for (std::size_t j = 0; j < a.size(); ++j) {
    dot += double(a[j]) * b[j];
    l2 += (double(a[j]) - b[j]) * (double(a[j]) - b[j]);
    na += double(a[j]) * a[j];
    nb += double(b[j]) * b[j];
  }
  if (m == metric_kind::l2) return l2;
  if (m == metric_kind::inner_product) return -dot;
  return 1 - dot / std::sqrt(na * nb);
}

// Every base row of one query, closest first (in double: the reference).
std::vector<std::pair<double, std::int32_t>> brute_force(const matrix<float>& base,
                                                         std::span<const float> q, metric_kind m) {
  std::vector<std::pair<double, std::int32_t>> all;
  for (std::size_t i = 0; i < base.rows(); ++i)
    all.emplace_back(exact_distance(m, q, base.row(i)), std::int32_t(i));
  std::sort(all.begin(), all.end());
  return all;
}

// Exact truth of every query, `k` neighbours, in annulus's convention.
std::pair<matrix<std::int32_t>, matrix<float>> exact_truth(const matrix<float>& base,
                                                           const matrix<float>& queries,
                                                           std::size_t k, metric_kind m) {
  matrix<std::int32_t> ids(queries.rows(), k);
  matrix<float> dist(queries.rows(), k);
  for (std::size_t q = 0; q < queries.rows(); ++q) {
    const auto all = brute_force(base, queries.row(q), m);
    for (std::size_t j = 0; j < k; ++j) ids(q, j) = all[j].second, dist(q, j) = float(all[j].first);
  }
  return {std::move(ids), std::move(dist)};
}

// Checks the first `k` truth ids and distances of query q against brute force.
void check_exact(const annulus::bench::dataset& ds, std::size_t q, std::size_t k) {
  const auto all = brute_force(ds.base, ds.queries.row(q), ds.metric);
  for (std::size_t j = 0; j < k; ++j) {
    CHECK(ds.truth(q, j) == all[j].second);
    CHECK(ds.truth_dist(q, j) == Approx(all[j].first).epsilon(1e-4).margin(1e-4));
  }
}

template <class T>
bool equal(const matrix<T>& a, const matrix<T>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::equal(a.data(), a.data() + a.size(), b.data());
}

std::vector<fs::path> files_ending(const fs::path& dir, const std::string& suffix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(e.path());
  }
  return out;
}

// An ann-benchmarks file: train, test, neighbors (int32), distances, and the
// root attribute `distance` as h5py writes a str (variable length) or fixed length.
void write_hdf5(const fs::path& p, const matrix<float>& train, const matrix<float>& test,
                const matrix<std::int32_t>& neighbors, const matrix<float>& distances,
                const std::string& distance, bool variable_length_attribute = true) {
  const hid_t f = H5Fcreate(p.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(f >= 0);
  auto put = [&](const char* name, hid_t file_type, hid_t mem_type, const void* data,
                 std::size_t rows, std::size_t cols) {
    const hsize_t dims[2] = {rows, cols};
    const hid_t space = H5Screate_simple(2, dims, nullptr);
    const hid_t ds = H5Dcreate2(f, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(ds);
    H5Sclose(space);
  };
  put("train", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, train.data(), train.rows(), train.cols());
  put("test", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, test.data(), test.rows(), test.cols());
  put("neighbors", H5T_STD_I32LE, H5T_NATIVE_INT32, neighbors.data(), neighbors.rows(),
      neighbors.cols());
  put("distances", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, distances.data(), distances.rows(),
      distances.cols());
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_cset(type, H5T_CSET_UTF8);
  const hid_t space = H5Screate(H5S_SCALAR);
  const char* text = distance.c_str();
  H5Tset_size(type, variable_length_attribute ? H5T_VARIABLE : distance.size());
  const hid_t attr = H5Acreate2(f, "distance", type, space, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(H5Awrite(attr, type, variable_length_attribute ? static_cast<const void*>(&text)
                                                         : static_cast<const void*>(text)) >= 0);
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
  H5Fclose(f);
}

// A texmex directory; ground truth written when given.
void write_texmex(const fs::path& dir, const matrix<float>& base, const matrix<float>& queries,
                  const matrix<std::int32_t>* ids = nullptr, const matrix<float>* dist = nullptr) {
  fs::create_directories(dir);
  annulus::write_fvecs(dir / "base.fvecs", base);
  annulus::write_fvecs(dir / "query.fvecs", queries);
  if (ids) annulus::write_ivecs(dir / "groundtruth.ivecs", *ids);
  if (dist) annulus::write_fvecs(dir / "groundtruth_dist.fvecs", *dist);
}

}  // namespace

TEST_CASE("parse_metric knows annulus's and ann-benchmarks' names", "[bench][dataset]") {
  using annulus::bench::parse_metric;
  CHECK(parse_metric("l2") == metric_kind::l2);
  CHECK(parse_metric("euclidean") == metric_kind::l2);
  CHECK(parse_metric("ip") == metric_kind::inner_product);
  CHECK(parse_metric("dot") == metric_kind::inner_product);
  CHECK(parse_metric("cosine") == metric_kind::cosine);
  CHECK(parse_metric("Angular") == metric_kind::cosine);
  CHECK_THROWS_WITH(parse_metric("hamming"), Contains("hamming"));
}

TEST_CASE("the quick default dataset is deterministic, exact and cached", "[bench][dataset]") {
  temp_dir out;
  dataset_request req;
  req.quick = true;
  req.out_dir = out.path;
  req.threads = 2;
  const auto a = load_dataset(req);
  REQUIRE(a.name == "default-quick");
  REQUIRE(a.metric == metric_kind::l2);
  REQUIRE(a.base.rows() == 20000);
  REQUIRE(a.base.cols() == 64);
  REQUIRE(a.queries.rows() == 200);
  REQUIRE(a.truth.rows() == 200);
  REQUIRE(a.truth.cols() == 100);  // more than k, for tie-aware recall
  REQUIRE(a.truth_dist.cols() == 100);
  for (std::size_t q : {0, 97, 199}) check_exact(a, q, 100);

  const auto ids_files = files_ending(out.path, "-gt.ivecs");
  REQUIRE(ids_files.size() == 1);
  REQUIRE(files_ending(out.path, "-gt_dist.fvecs").size() == 1);

  SECTION("a second load gives the same data") {
    const auto b = load_dataset(req);
    CHECK(equal(a.base, b.base));
    CHECK(equal(a.queries, b.queries));
    CHECK(equal(a.truth, b.truth));
    CHECK(equal(a.truth_dist, b.truth_dist));
  }
  SECTION("the cached ground truth is read, not recomputed") {
    matrix<std::int32_t> ids = annulus::read_ivecs(ids_files[0]);
    std::swap(ids(0, 0), ids(0, 1));  // a mark only a read of the cache can show
    annulus::write_ivecs(ids_files[0], ids);
    const auto b = load_dataset(req);
    CHECK(b.truth(0, 0) == a.truth(0, 1));
    CHECK(b.truth(0, 1) == a.truth(0, 0));
  }
  SECTION("max_queries takes the first queries and their truth") {
    req.max_queries = 50;
    const auto b = load_dataset(req);
    REQUIRE(b.queries.rows() == 50);
    REQUIRE(b.truth.rows() == 50);
    CHECK(std::equal(b.queries.data(), b.queries.data() + b.queries.size(), a.queries.data()));
    CHECK(std::equal(b.truth.data(), b.truth.data() + b.truth.size(), a.truth.data()));
    CHECK(files_ending(out.path, "-gt.ivecs").size() == 1);  // the same cache served
  }
  SECTION("another metric gets its own exact truth") {
    req.metric = metric_kind::inner_product;
    const auto b = load_dataset(req);
    CHECK(equal(a.base, b.base));
    CHECK(b.metric == metric_kind::inner_product);
    for (std::size_t q : {0, 150}) check_exact(b, q, 20);
    CHECK(files_ending(out.path, "-gt.ivecs").size() == 2);
  }
}

TEST_CASE("texmex directories", "[bench][dataset]") {
  temp_dir tmp;
  const fs::path dir = tmp / "tiny";
  dataset_request req;
  req.path = dir.string();
  req.out_dir = tmp / "out";
  req.k = 3;
  const auto base = random_matrix(10, 4, 1), queries = random_matrix(5, 4, 2);

  SECTION("without ground truth: computed, exact, cached in the directory") {
    write_texmex(dir, base, queries);
    const auto ds = load_dataset(req);
    CHECK(ds.name == "tiny");
    REQUIRE(ds.truth.rows() == 5);
    REQUIRE(ds.truth.cols() == 10);  // max(100, k), capped at the base size
    for (std::size_t q = 0; q < 5; ++q) check_exact(ds, q, 10);
    CHECK(files_ending(dir, "-gt.ivecs").size() == 1);
    CHECK(files_ending(dir, "-gt_dist.fvecs").size() == 1);
  }
  SECTION("shipped ground truth is used under l2, ignored under cosine") {
    const auto [ids, dist] = exact_truth(base, queries, 6, metric_kind::l2);
    write_texmex(dir, base, queries, &ids, &dist);
    req.max_queries = 4;
    const auto ds = load_dataset(req);
    REQUIRE(ds.truth.rows() == 4);
    REQUIRE(ds.truth.cols() == 6);
    CHECK(std::equal(ds.truth.data(), ds.truth.data() + ds.truth.size(), ids.data()));
    CHECK(std::equal(ds.truth_dist.data(), ds.truth_dist.data() + ds.truth_dist.size(), dist.data()));
    CHECK(files_ending(dir, "-gt.ivecs").empty());
    CHECK(!fs::exists(req.out_dir));

    req.metric = metric_kind::cosine;
    const auto c = load_dataset(req);
    REQUIRE(c.truth.cols() == 10);
    for (std::size_t q = 0; q < 4; ++q) check_exact(c, q, 10);
  }
  SECTION("shipped ids without distances get computed distances") {
    const auto [ids, dist] = exact_truth(base, queries, 6, metric_kind::l2);
    write_texmex(dir, base, queries, &ids);
    const auto ds = load_dataset(req);
    for (std::size_t q = 0; q < 5; ++q) check_exact(ds, q, 6);
  }
  SECTION("mismatched dimensions") {
    write_texmex(dir, base, random_matrix(5, 3, 2));
    CHECK_THROWS_MATCHES(load_dataset(req), usage_error,
                         Catch::Matchers::Message("'" + dir.string() +
                                                  "': base vectors have 4 dimensions, queries have 3"));
  }
  SECTION("ground truth for another number of queries") {
    const auto [ids, dist] = exact_truth(base, random_matrix(3, 4, 3), 6, metric_kind::l2);
    write_texmex(dir, base, queries, &ids);
    CHECK_THROWS_AS(load_dataset(req), usage_error);
    CHECK_THROWS_WITH(load_dataset(req), Contains("ground truth has 3 rows, there are 5 queries"));
  }
  SECTION("ground truth distances that do not fit the data") {
    auto [ids, dist] = exact_truth(base, queries, 6, metric_kind::l2);
    for (std::size_t i = 0; i < dist.size(); ++i) dist.data()[i] += 5.f;
    write_texmex(dir, base, queries, &ids, &dist);
    CHECK_THROWS_WITH(load_dataset(req), Contains("do not match"));
  }
  SECTION("k larger than the base") {
    write_texmex(dir, base, queries);
    req.k = 20;
    CHECK_THROWS_MATCHES(load_dataset(req), usage_error,
                         Catch::Matchers::Message("k = 20 is larger than the 10 base vectors"));
  }
  SECTION("a zero vector under cosine") {
    auto zero = queries;
    std::fill_n(zero.row_ptr(2), 4, 0.f);
    write_texmex(dir, base, zero);
    req.metric = metric_kind::cosine;
    CHECK_THROWS_WITH(load_dataset(req), Contains("query row 2 is a zero vector"));
  }
  SECTION("a missing directory or file") {
    CHECK_THROWS_WITH(load_dataset(req), Contains(dir.string()) && Contains("no such file"));
    fs::create_directories(dir);
    annulus::write_fvecs(dir / "base.fvecs", base);
    CHECK_THROWS_AS(load_dataset(req), usage_error);
    CHECK_THROWS_WITH(load_dataset(req), Contains("query.fvecs"));
  }
}

TEST_CASE("ann-benchmarks HDF5 files", "[bench][dataset]") {
  temp_dir tmp;
  const fs::path file = tmp / "tiny-4-euclidean.hdf5";
  dataset_request req;
  req.path = file.string();
  req.out_dir = tmp / "out";
  req.k = 3;
  const auto train = random_matrix(12, 4, 5), test = random_matrix(3, 4, 6);

  SECTION("euclidean: true distances are squared") {
    auto [ids, dist] = exact_truth(train, test, 5, metric_kind::l2);
    for (std::size_t i = 0; i < dist.size(); ++i) dist.data()[i] = std::sqrt(dist.data()[i]);
    write_hdf5(file, train, test, ids, dist, "euclidean");
    const auto ds = load_dataset(req);
    CHECK(ds.name == "tiny-4-euclidean");
    CHECK(ds.metric == metric_kind::l2);
    CHECK(equal(ds.base, train));
    CHECK(equal(ds.queries, test));
    CHECK(equal(ds.truth, ids));
    for (std::size_t q = 0; q < 3; ++q) check_exact(ds, q, 5);
    CHECK(!fs::exists(req.out_dir));  // nothing computed

    req.max_queries = 2;
    CHECK(load_dataset(req).truth.rows() == 2);

    SECTION("another metric recomputes the truth") {
      req.metric = metric_kind::inner_product;
      const auto ip = load_dataset(req);
      REQUIRE(ip.truth.cols() == 12);
      for (std::size_t q = 0; q < 2; ++q) check_exact(ip, q, 12);
    }
  }
  SECTION("angular: 1 - cos is kept (fixed-length attribute)") {
    const auto [ids, dist] = exact_truth(train, test, 5, metric_kind::cosine);
    write_hdf5(file, train, test, ids, dist, "angular", false);
    const auto ds = load_dataset(req);
    CHECK(ds.metric == metric_kind::cosine);
    CHECK(equal(ds.truth, ids));
    CHECK(equal(ds.truth_dist, dist));
  }
  SECTION("dot: a stored similarity is negated") {
    auto [ids, dist] = exact_truth(train, test, 5, metric_kind::inner_product);
    for (std::size_t i = 0; i < dist.size(); ++i) dist.data()[i] = -dist.data()[i];
    write_hdf5(file, train, test, ids, dist, "dot");
    const auto ds = load_dataset(req);
    CHECK(ds.metric == metric_kind::inner_product);
    for (std::size_t q = 0; q < 3; ++q) check_exact(ds, q, 5);
  }
  SECTION("errors") {
    const auto [ids, dist] = exact_truth(train, random_matrix(2, 4, 7), 5, metric_kind::l2);
    write_hdf5(file, train, test, ids, dist, "euclidean");
    CHECK_THROWS_WITH(load_dataset(req), Contains("ground truth has 2 rows, there are 3 queries"));
    write_hdf5(file, train, test, ids, dist, "jaccard");
    CHECK_THROWS_WITH(load_dataset(req), Contains("jaccard"));
    annulus::write_fvecs(file, train);  // not HDF5
    CHECK_THROWS_WITH(load_dataset(req), Contains("not an HDF5 file"));
  }
  // Issue 15: shipped truth was taken unchecked.
  SECTION("ground truth that is not this data's, or padding where neighbours belong") {
    auto [ids, dist] = exact_truth(train, test, 5, metric_kind::l2);
    for (std::size_t i = 0; i < dist.size(); ++i) dist.data()[i] = std::sqrt(dist.data()[i]);
    // Other base rows than the true neighbours of query 0, with their own
    // distances stored: consistent with itself, wrong for the data.
    auto wrong = ids;
    auto wrong_dist = dist;
    for (std::size_t j = 0; j < 5; ++j) {
      wrong(0, j) = std::int32_t((ids(0, j) + 1) % 12);
      double sum = 0;
      for (std::size_t c = 0; c < 4; ++c) {
        const double diff = double(test(0, c)) - train(std::size_t(wrong(0, j)), c);
        sum += diff * diff;
      }
      wrong_dist(0, j) = float(std::sqrt(sum));
    }
    write_hdf5(file, train, test, wrong, wrong_dist, "euclidean");
    CHECK_THROWS_WITH(load_dataset(req), Contains(file.string()) && Contains("not the exact neighbours"));
    auto padded = ids;
    for (std::size_t j = 1; j < 5; ++j) padded(1, j) = -1;
    write_hdf5(file, train, test, padded, dist, "euclidean");
    CHECK_THROWS_WITH(load_dataset(req), Contains("row 1 holds 1 neighbours before its padding, k = 3"));
    auto negative = ids;
    negative(2, 4) = -7;
    write_hdf5(file, train, test, negative, dist, "euclidean");
    CHECK_THROWS_WITH(load_dataset(req), Contains("names id -7"));
  }
}

// Issue 15: a 2 KB file declaring a 2^31 x 2^31 float dataset got a 0-byte
// buffer that H5Dread wrote into; a 42 KB file declaring gigabytes of
// unwritten chunks cost 2.36 GB and 9 s. Both are refused from the header,
// naming the file, before anything is allocated.
TEST_CASE("HDF5 files whose declared sizes are hostile", "[bench][dataset]") {
  temp_dir tmp;
  const fs::path file = tmp / "hostile.hdf5";
  dataset_request req;
  req.path = file.string();
  req.k = 3;
  const auto declare = [&](hsize_t rows, hsize_t cols) {
    const hid_t f = H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t dims[2] = {rows, cols}, chunk[2] = {1, std::min<hsize_t>(cols, 1024)};
    const hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(plist, 2, chunk);  // chunked: no storage until written
    for (const char* name : {"train", "test"}) {
      const hid_t space = H5Screate_simple(2, dims, nullptr);
      const hid_t ds = H5Dcreate2(f, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, plist, H5P_DEFAULT);
      REQUIRE(ds >= 0);
      H5Dclose(ds);
      H5Sclose(space);
    }
    H5Pclose(plist);
    H5Fclose(f);
  };
  declare(hsize_t{1} << 31, hsize_t{1} << 31);
  CHECK(fs::file_size(file) < 100'000);
  CHECK_THROWS_WITH(load_dataset(req), Contains(file.string()) && Contains("train") && Contains("overflows"));
  declare(100'000, 6'000);
  CHECK_THROWS_WITH(load_dataset(req), Contains(file.string()) && Contains("train") &&
                                           Contains("declares 100000 x 6000 values"));
}
