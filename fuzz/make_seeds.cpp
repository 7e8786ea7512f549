// Writes the fuzzers' seed corpora: small valid files, made at build time so
// no binary is committed.
//
//   annulus_fuzz_seeds VECS_DIR HDF5_DIR
//
// VECS_DIR: fvecs, ivecs and bvecs files of a few rows (written by annulus's
// own writers). HDF5_DIR: ann-benchmarks files (train, test, neighbors,
// distances, a root attribute "distance"), each reaching another branch of the
// loader: shipped truth checked, truth computed (none shipped, or too few
// neighbours), variable- and fixed-length strings, contiguous and chunked
// storage, float64 and int64 datasets converted on read.
#include <hdf5.h>

#include <annulus/io/vecs.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// A fixed, spread-out value per cell: no generator, so every build writes the same bytes.
float value(std::size_t row, std::size_t col, std::size_t salt) {
  return float((row * 37 + col * 11 + salt * 7 + row * col * 5) % 23) * 0.25f - 2.5f;
}

annulus::matrix<float> rows_of(std::size_t n, std::size_t d, std::size_t salt) {
  annulus::matrix<float> m(n, d);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j) m(i, j) = value(i, j, salt);
  return m;
}

void write_vecs_seeds(const fs::path& dir) {
  fs::create_directories(dir);
  annulus::write_fvecs(dir / "five-by-three.fvecs", rows_of(5, 3, 0));
  annulus::write_fvecs(dir / "one-by-one.fvecs", rows_of(1, 1, 1));
  annulus::matrix<std::int32_t> ids(4, 10);
  for (std::size_t i = 0; i < ids.size(); ++i) ids.data()[i] = std::int32_t(i * 7 % 13) - 1;
  annulus::write_ivecs(dir / "four-by-ten.ivecs", ids);
  annulus::matrix<std::uint8_t> bytes(6, 8);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes.data()[i] = std::uint8_t(i * 41);
  annulus::write_bvecs(dir / "six-by-eight.bvecs", bytes);
}

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("HDF5: ") + what);
}

// Writes a 2-D dataset of `values` (row-major, stored as `file_type`) from memory of `mem_type`.
void write_dataset(hid_t file, const char* name, hid_t file_type, hid_t mem_type,
                   const void* values, hsize_t rows, hsize_t cols, bool chunked) {
  const hsize_t dims[2] = {rows, cols};
  const hid_t space = H5Screate_simple(2, dims, nullptr);
  const hid_t props = H5Pcreate(H5P_DATASET_CREATE);
  if (chunked) {
    const hsize_t chunk[2] = {std::min<hsize_t>(rows, 4), cols};
    H5Pset_chunk(props, 2, chunk);
  }
  const hid_t ds = H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, props, H5P_DEFAULT);
  check(ds >= 0, name);
  check(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0, name);
  H5Dclose(ds);
  H5Pclose(props);
  H5Sclose(space);
}

// The root attribute "distance", as h5py writes a str (variable length) or fixed length.
void write_distance(hid_t file, const std::string& text, bool variable_length) {
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, variable_length ? H5T_VARIABLE : text.size());
  H5Tset_cset(type, H5T_CSET_UTF8);
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t attr = H5Acreate2(file, "distance", type, space, H5P_DEFAULT, H5P_DEFAULT);
  check(attr >= 0, "distance");
  const char* c = text.c_str();
  check(H5Awrite(attr, type, variable_length ? static_cast<const void*>(&c) : c) >= 0, "distance");
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
}

struct truth {
  std::vector<std::int32_t> ids;
  std::vector<float> dist;  // true Euclidean, as ann-benchmarks stores it
};

// Exact l2 neighbours, `k` per query, by sorting all distances.
truth exact_l2(const annulus::matrix<float>& base, const annulus::matrix<float>& queries,
               std::size_t k) {
  truth t;
  for (std::size_t q = 0; q < queries.rows(); ++q) {
    std::vector<double> d(base.rows());
    for (std::size_t i = 0; i < base.rows(); ++i)
      for (std::size_t j = 0; j < base.cols(); ++j)
        d[i] += double(base(i, j) - queries(q, j)) * double(base(i, j) - queries(q, j));
    std::vector<std::int32_t> order(base.rows());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return d[a] < d[b]; });
    for (std::size_t j = 0; j < k; ++j) {
      t.ids.push_back(order[j]);
      t.dist.push_back(float(std::sqrt(d[order[j]])));
    }
  }
  return t;
}

struct hdf5_seed {
  const char* file;
  const char* distance;
  bool variable_length, chunked, wide_types;  // chunked files use the latest format
  std::size_t truth_k;  // 0: no neighbors / distances
};

void write_hdf5_seed(const fs::path& dir, const hdf5_seed& s) {
  const annulus::matrix<float> train = rows_of(24, 4, 2), test = rows_of(3, 4, 5);
  const hid_t access = H5Pcreate(H5P_FILE_ACCESS);
  if (s.chunked) H5Pset_libver_bounds(access, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  const hid_t file = H5Fcreate((dir / s.file).c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access);
  H5Pclose(access);
  check(file >= 0, s.file);
  write_distance(file, s.distance, s.variable_length);
  const hid_t float_type = s.wide_types ? H5T_IEEE_F64LE : H5T_IEEE_F32LE;
  write_dataset(file, "train", float_type, H5T_NATIVE_FLOAT, train.data(), train.rows(),
                train.cols(), s.chunked);
  write_dataset(file, "test", float_type, H5T_NATIVE_FLOAT, test.data(), test.rows(), test.cols(),
                s.chunked);
  if (s.truth_k != 0) {
    const truth t = exact_l2(train, test, s.truth_k);
    write_dataset(file, "neighbors", s.wide_types ? H5T_STD_I64LE : H5T_STD_I32LE,
                  H5T_NATIVE_INT32, t.ids.data(), test.rows(), s.truth_k, s.chunked);
    write_dataset(file, "distances", float_type, H5T_NATIVE_FLOAT, t.dist.data(), test.rows(),
                  s.truth_k, s.chunked);
  }
  check(H5Fclose(file) >= 0, s.file);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s VECS_DIR HDF5_DIR\n", argv[0]);
    return 2;
  }
  try {
    write_vecs_seeds(argv[1]);
    const fs::path hdf5_dir = argv[2];
    fs::create_directories(hdf5_dir);
    for (const hdf5_seed& s : {
             // Shipped truth for k = 10, checked against the data.
             hdf5_seed{"euclidean.hdf5", "euclidean", true, false, false, 10},
             // Too few shipped neighbours for k = 10: truth computed; chunked, wider types.
             hdf5_seed{"euclidean-chunked-k5.hdf5", "euclidean", false, true, true, 5},
             // Cosine, no shipped truth: zero rows refused, truth computed.
             hdf5_seed{"angular.hdf5", "angular", false, false, false, 0},
         })
      write_hdf5_seed(hdf5_dir, s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "annulus_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
