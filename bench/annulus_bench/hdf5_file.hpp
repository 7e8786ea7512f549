// Read-only access to the HDF5 files of ann-benchmarks (datasets `train`,
// `test`, `neighbors`, `distances`; a root attribute `distance`), through the
// HDF5 C API. Only what annulus-bench needs: 2-D numeric datasets converted to
// float or int32 on read, and string attributes of the root group.
// Every failure is a usage_error naming the file and the dataset.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <annulus/core/matrix.hpp>

namespace annulus::bench {

class hdf5_file {
 public:
  /// Opens `path` read-only. Throws usage_error if it is missing or not HDF5.
  explicit hdf5_file(const std::filesystem::path& path);
  ~hdf5_file();
  hdf5_file(const hdf5_file&) = delete;
  hdf5_file& operator=(const hdf5_file&) = delete;

  bool has(const std::string& dataset) const;
  /// A 2-D numeric dataset, converted to float / int32 by the library.
  matrix<float> read_float(const std::string& dataset) const;
  matrix<std::int32_t> read_int32(const std::string& dataset) const;
  /// A string attribute of the root group (fixed or variable length); nullopt when absent.
  std::optional<std::string> root_attribute(const std::string& name) const;

 private:
  template <class T>
  matrix<T> read(const std::string& dataset, std::int64_t mem_type) const;

  std::filesystem::path path_;
  std::int64_t id_ = -1;  // hid_t (int64_t since HDF5 1.10)
};

}  // namespace annulus::bench
