#include "hdf5_file.hpp"

#include <hdf5.h>

#include <algorithm>
#include <new>
#include <system_error>
#include <type_traits>
#include <vector>

#include "params.hpp"

namespace annulus::bench {

static_assert(std::is_same_v<hid_t, std::int64_t>, "hdf5_file.hpp stores hid_t as int64_t");

namespace {

// Closes an HDF5 object id on scope exit.
struct handle {
  hid_t id;
  herr_t (*close)(hid_t);
  handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~handle() {
    if (id >= 0) close(id);
  }
  handle(const handle&) = delete;
  handle& operator=(const handle&) = delete;
  explicit operator bool() const { return id >= 0; }
};

}  // namespace

hdf5_file::hdf5_file(const std::filesystem::path& path) : path_(path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // failures become usage_errors, not stack dumps
  const std::string where = in_quotes(path) + ": ";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw usage_error(where + (std::filesystem::exists(path, ec) ? "not a regular file"
                                                                 : "no such file"));
  if (H5Fis_hdf5(path.c_str()) <= 0) throw usage_error(where + "not an HDF5 file (or unreadable)");
  id_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id_ < 0) throw usage_error(where + "cannot open the HDF5 file for reading");
}

hdf5_file::~hdf5_file() {
  if (id_ >= 0) H5Fclose(id_);
}

bool hdf5_file::has(const std::string& dataset) const {
  return H5Lexists(id_, dataset.c_str(), H5P_DEFAULT) > 0;
}

template <class T>
matrix<T> hdf5_file::read(const std::string& dataset, std::int64_t mem_type) const {
  const std::string where = in_quotes(path_) + ", dataset '" + dataset + "': ";
  if (!has(dataset)) throw usage_error(where + "missing (ann-benchmarks files have train, test, neighbors, distances)");
  const handle ds(H5Dopen2(id_, dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds) throw usage_error(where + "cannot open");
  const handle type(H5Dget_type(ds.id), H5Tclose);
  const H5T_class_t cls = type ? H5Tget_class(type.id) : H5T_NO_CLASS;
  if (cls != H5T_INTEGER && (cls != H5T_FLOAT || std::is_integral_v<T>))
    throw usage_error(where + (std::is_integral_v<T> ? "not integers" : "not numbers"));
  const handle space(H5Dget_space(ds.id), H5Sclose);
  if (!space || H5Sget_simple_extent_ndims(space.id) != 2)
    throw usage_error(where + "not a 2-D array");
  hsize_t dims[2] = {0, 0};
  H5Sget_simple_extent_dims(space.id, dims, nullptr);
  if (dims[0] == 0 || dims[1] == 0)
    throw usage_error(where + "empty (" + std::to_string(dims[0]) + " x " +
                      std::to_string(dims[1]) + ")");
  // The declared shape is checked before anything is allocated: its size in
  // memory (sizes:: refuses overflow), and against what the file stores. A
  // chunked dataset may be compressed, but embeddings do not shrink 16-fold;
  // a 42 KB file declaring gigabytes of unwritten chunks is refused here
  // instead of costing gigabytes of fill values.
  std::size_t bytes = 0;
  try {
    bytes = sizes::array_bytes(dims[0], dims[1], sizeof(T), "a " + std::to_string(dims[0]) + " x " +
                                                              std::to_string(dims[1]) + " array");
  } catch (const annulus::error& e) {
    throw usage_error(where + e.what());
  }
  // The storage size is the file's own claim (a contiguous dataset's header
  // names an address and a length): it must fit in the file's real size,
  // else an 8 KB file could claim gigabytes of storage.
  const std::uint64_t stored = H5Dget_storage_size(ds.id);
  std::error_code ec;
  const std::uint64_t file_bytes = std::filesystem::file_size(path_, ec);
  if (ec || stored > file_bytes)
    throw usage_error(where + "claims " + std::to_string(stored) + " bytes of storage, the file holds " +
                      (ec ? std::string("an unknown number") : std::to_string(file_bytes)));
  const std::size_t element = type ? H5Tget_size(type.id) : 0;
  std::uint64_t declared = 0;
  try {
    declared = sizes::array_bytes(dims[0], dims[1], std::max<std::size_t>(element, 1), "stored values");
  } catch (const annulus::error& e) {
    throw usage_error(where + e.what());
  }
  if (stored == 0 || declared / 16 > stored)
    throw usage_error(where + "declares " + std::to_string(dims[0]) + " x " + std::to_string(dims[1]) +
                      " values (" + std::to_string(declared) + " bytes) but stores " + std::to_string(stored) +
                      " bytes: unwritten or implausibly compressed data");
  try {
    matrix<T> out(dims[0], dims[1], matrix<T>::uninitialized);
    if (H5Dread(ds.id, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
      throw usage_error(where + "read failed");
    return out;
  } catch (const std::bad_alloc&) {
    throw usage_error(where + "out of memory reading " + std::to_string(bytes) + " bytes");
  }
}

matrix<float> hdf5_file::read_float(const std::string& dataset) const {
  return read<float>(dataset, H5T_NATIVE_FLOAT);
}

matrix<std::int32_t> hdf5_file::read_int32(const std::string& dataset) const {
  return read<std::int32_t>(dataset, H5T_NATIVE_INT32);
}

std::optional<std::string> hdf5_file::root_attribute(const std::string& name) const {
  if (H5Aexists(id_, name.c_str()) <= 0) return std::nullopt;
  const std::string where = in_quotes(path_) + ", attribute '" + name + "': ";
  const handle attr(H5Aopen(id_, name.c_str(), H5P_DEFAULT), H5Aclose);
  const handle type(attr ? H5Aget_type(attr.id) : -1, H5Tclose);
  if (!type || H5Tget_class(type.id) != H5T_STRING) throw usage_error(where + "not a string");
  // One string: H5Aread writes every element, and the buffers below hold one
  // (four strings overflowed them, found with the fuzzer's seeds).
  const handle space(H5Aget_space(attr.id), H5Sclose);
  const hssize_t count = space ? H5Sget_simple_extent_npoints(space.id) : -1;
  if (count != 1) throw usage_error(where + "holds " + std::to_string(count) + " values, expected one string");
  const handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_cset(mem.id, H5Tget_cset(type.id));
  if (H5Tis_variable_str(type.id) > 0) {  // h5py writes Python str attributes like this
    H5Tset_size(mem.id, H5T_VARIABLE);
    char* text = nullptr;
    if (H5Aread(attr.id, mem.id, &text) < 0 || text == nullptr)
      throw usage_error(where + "read failed");
    std::string out(text);
    H5free_memory(text);
    return out;
  }
  const std::size_t size = H5Tget_size(type.id);
  std::vector<char> text(size + 1, '\0');
  H5Tset_size(mem.id, size + 1);
  H5Tset_strpad(mem.id, H5T_STR_NULLTERM);
  if (H5Aread(attr.id, mem.id, text.data()) < 0) throw usage_error(where + "read failed");
  return std::string(text.data());
}

}  // namespace annulus::bench
