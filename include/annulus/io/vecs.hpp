// Reading and writing texmex vector files (.fvecs, .ivecs, .bvecs), the format
// of the SIFT, GIST and BIGANN benchmark sets.
//
// Format: each vector is a little-endian int32 dimension d followed by d values:
// float32 (.fvecs), int32 (.ivecs) or uint8 (.bvecs). Every row of a valid file
// has the same d, so row i starts at byte i * (4 + d * sizeof(value)); the row
// range readers seek there and read only the rows asked for.
//
// Ownership: readers return an owning matrix<T>; writers read a matrix_view
// that the caller keeps alive for the duration of the call. Nothing is kept
// between calls; each call opens and closes its own file.
//
// Errors (all derive from annulus::error; every message names the file):
//   annulus::error             I/O: the file is missing, a directory or not a
//                              regular file (FIFO, device), cannot be opened,
//                              read, written or renamed into place.
//   annulus::format_error      content: empty file ("no vectors"), truncated file,
//                              first dimension <= 0 or > vecs_max_dim ("not a vecs
//                              file?"), or a row whose dimension field differs from
//                              row 0 (every row read is checked). The message gives
//                              the byte offset of the fault.
//   annulus::invalid_argument  a row range past the end of the file; a matrix that
//                              cannot be written (0 rows, dimension not in
//                              1..vecs_max_dim); an element size of 0 or > 8.
// A failed write leaves no half file: the data goes to "<path>.part", which is
// renamed over <path> only once complete, and removed on any failure.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "annulus/core/error.hpp"
#include "annulus/core/matrix.hpp"

namespace annulus {

static_assert(std::endian::native == std::endian::little,
              "annulus/io/vecs.hpp copies texmex files (little-endian) byte for byte; "
              "a big-endian host would need byte swapping, which is not implemented");

/// Shape of a vecs file: `rows` vectors of `dim` values each.
struct vecs_info {
  std::size_t rows = 0;
  std::size_t dim = 0;
};

/// Largest dimension read or written; a larger first field means a foreign file.
inline constexpr std::size_t vecs_max_dim = std::size_t{1} << 20;

namespace detail {

template <class... A>
std::string vecs_msg(const std::filesystem::path& p, const A&... parts) {
  std::ostringstream s;
  s << '\'' << p.string() << "': ";
  (s << ... << parts);
  return s.str();
}

inline constexpr std::size_t vecs_chunk_bytes = std::size_t{8} << 20;  // I/O buffer size

// Opens `p`, checks its first dimension and its size for values of `elem`
// bytes, and returns its shape; `in` is left open.
inline vecs_info open_vecs(const std::filesystem::path& p, std::size_t elem, std::ifstream& in) {
  if (elem == 0 || elem > 8)
    throw invalid_argument(vecs_msg(p, "element size ", elem, " bytes is not 1..8"));
  std::error_code ec;
  const auto st = std::filesystem::status(p, ec);
  if (!std::filesystem::exists(st)) throw error(vecs_msg(p, "cannot open: no such file"));
  if (std::filesystem::is_directory(st)) throw error(vecs_msg(p, "cannot open: is a directory"));
  // A FIFO, socket or device has no size to check rows against (and a FIFO
  // nobody writes to blocks forever).
  if (!std::filesystem::is_regular_file(st)) throw error(vecs_msg(p, "cannot read: not a regular file"));
  in.open(p, std::ios::binary);
  if (!in) throw error(vecs_msg(p, "cannot open for reading"));
  const std::streamoff end = in.seekg(0, std::ios::end).tellg();
  if (end < 0) throw error(vecs_msg(p, "cannot determine the file size"));
  const auto size = static_cast<std::uint64_t>(end);
  if (size == 0)
    throw format_error(vecs_msg(p, "no vectors: the file is empty (0 bytes at byte offset 0)"));
  if (size < 4)
    throw format_error(vecs_msg(
        p, "truncated: the dimension field at byte offset 0 needs 4 bytes, the file has ", size));
  std::int32_t d = 0;
  if (!in.seekg(0).read(reinterpret_cast<char*>(&d), 4))
    throw error(vecs_msg(p, "read failed at byte offset 0"));
  if (d <= 0 || static_cast<std::size_t>(d) > vecs_max_dim)
    throw format_error(vecs_msg(p, "dimension field at byte offset 0 is ", d, ", expected 1..",
                                vecs_max_dim, ": not a vecs file?"));
  const std::uint64_t row = 4 + static_cast<std::uint64_t>(d) * elem;
  if (size % row != 0) {
    const std::uint64_t last = size / row * row;
    throw format_error(vecs_msg(p, "truncated: ", size, " bytes is not a whole number of rows of ",
                                row, " bytes (4 + ", d, " x ", elem,
                                "); the last row starts at byte offset ", last,
                                " and should end at ", last + row, ", the file ends at ", size));
  }
  return {static_cast<std::size_t>(size / row), static_cast<std::size_t>(d)};
}

// Rows [first, first + count) of a vecs file of T (count = nullopt: to the end),
// read in chunks of about vecs_chunk_bytes, each row's dimension field checked.
template <class T>
matrix<T> read_vecs(const std::filesystem::path& p, std::size_t first,
                    std::optional<std::size_t> count) {
  std::ifstream in;
  const vecs_info info = open_vecs(p, sizeof(T), in);
  const std::size_t n_rows = count.value_or(info.rows - first);
  if (first > info.rows || n_rows > info.rows - first)
    throw invalid_argument(vecs_msg(p, "rows [", first, ", ", first, " + ", n_rows,
                                    ") are past the end: the file has ", info.rows, " rows"));
  // open_vecs checked that the file really holds these rows. The output's
  // pages are committed only as rows pass their checks, and the first chunk
  // is checked before the output exists: a file with a valid first row and
  // a sparse hole after it costs one chunk, not its declared size.
  const std::size_t row = 4 + info.dim * sizeof(T);
  const std::size_t chunk = std::max<std::size_t>(1, vecs_chunk_bytes / row);
  std::vector<char> buf(std::min(chunk, n_rows) * row);
  matrix<T> out(0, info.dim);
  in.seekg(static_cast<std::streamoff>(static_cast<std::uint64_t>(first) * row));
  for (std::size_t done = 0; done < n_rows;) {
    const std::size_t n = std::min(chunk, n_rows - done);
    const std::uint64_t at = static_cast<std::uint64_t>(first + done) * row;
    if (!in.read(buf.data(), static_cast<std::streamsize>(n * row)))
      throw error(vecs_msg(p, "read failed at byte offset ", at));
    for (std::size_t i = 0; i < n; ++i) {
      std::int32_t d = 0;
      std::memcpy(&d, buf.data() + i * row, 4);
      if (d != static_cast<std::int32_t>(info.dim))
        throw format_error(vecs_msg(p, "inconsistent dimension: row ", first + done + i,
                                    " at byte offset ", at + i * row, " has dimension ", d,
                                    ", row 0 has ", info.dim));
    }
    if (done == 0) out = matrix<T>(n_rows, info.dim, matrix<T>::uninitialized);
    for (std::size_t i = 0; i < n; ++i)
      std::memcpy(out.row_ptr(done + i), buf.data() + i * row + 4, info.dim * sizeof(T));
    done += n;
  }
  return out;
}

// Writes every row of `m` to "<p>.part", then renames it to `p`.
template <class T>
void write_vecs(const std::filesystem::path& p, matrix_view<const T> m) {
  if (m.rows() == 0 || m.cols() == 0 || m.cols() > vecs_max_dim)
    throw invalid_argument(vecs_msg(
        p, "cannot write a ", m.rows(), " x ", m.cols(),
        " matrix: a vecs file needs at least one row and a dimension in 1..", vecs_max_dim));
  std::filesystem::path part = p;
  part += ".part";
  try {
    std::ofstream out(part, std::ios::binary | std::ios::trunc);
    if (!out) throw error(vecs_msg(part, "cannot open for writing"));
    const auto d = static_cast<std::int32_t>(m.cols());
    const std::size_t row = 4 + m.cols() * sizeof(T);
    const std::size_t chunk = std::max<std::size_t>(1, vecs_chunk_bytes / row);
    std::vector<char> buf(std::min(chunk, m.rows()) * row);
    for (std::size_t done = 0; done < m.rows();) {
      const std::size_t n = std::min(chunk, m.rows() - done);
      for (std::size_t i = 0; i < n; ++i) {
        std::memcpy(buf.data() + i * row, &d, 4);
        std::memcpy(buf.data() + i * row + 4, m.row_ptr(done + i), m.cols() * sizeof(T));
      }
      if (!out.write(buf.data(), static_cast<std::streamsize>(n * row)))
        throw error(
            vecs_msg(part, "write failed at byte offset ", static_cast<std::uint64_t>(done) * row));
      done += n;
    }
    out.close();
    if (!out) throw error(vecs_msg(part, "write failed while closing the file"));
    std::error_code ec;
    std::filesystem::rename(part, p, ec);
    if (ec)
      throw error(vecs_msg(p, "cannot rename '", part.string(), "' into place: ", ec.message()));
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(part, ignored);
    throw;
  }
}

}  // namespace detail

/// Shape of a vecs file whose values are `element_size` bytes (4: fvecs, ivecs;
/// 1: bvecs), from its first dimension field and its size; reads 4 bytes.
inline vecs_info inspect_vecs(const std::filesystem::path& p, std::size_t element_size) {
  std::ifstream in;
  return detail::open_vecs(p, element_size, in);
}

/// The whole file, one vector per row.
inline matrix<float> read_fvecs(const std::filesystem::path& p) {
  return detail::read_vecs<float>(p, 0, std::nullopt);
}
inline matrix<std::int32_t> read_ivecs(const std::filesystem::path& p) {
  return detail::read_vecs<std::int32_t>(p, 0, std::nullopt);
}
inline matrix<std::uint8_t> read_bvecs(const std::filesystem::path& p) {
  return detail::read_vecs<std::uint8_t>(p, 0, std::nullopt);
}

/// Rows [first_row, first_row + row_count) only; the rest of the file is not read.
inline matrix<float> read_fvecs(const std::filesystem::path& p, std::size_t first_row,
                                std::size_t row_count) {
  return detail::read_vecs<float>(p, first_row, row_count);
}
inline matrix<std::int32_t> read_ivecs(const std::filesystem::path& p, std::size_t first_row,
                                       std::size_t row_count) {
  return detail::read_vecs<std::int32_t>(p, first_row, row_count);
}
inline matrix<std::uint8_t> read_bvecs(const std::filesystem::path& p, std::size_t first_row,
                                       std::size_t row_count) {
  return detail::read_vecs<std::uint8_t>(p, first_row, row_count);
}

/// Writes every row of `m` (any stride), replacing `p` only once complete.
inline void write_fvecs(const std::filesystem::path& p, matrix_view<const float> m) {
  detail::write_vecs(p, m);
}
inline void write_ivecs(const std::filesystem::path& p, matrix_view<const std::int32_t> m) {
  detail::write_vecs(p, m);
}
inline void write_bvecs(const std::filesystem::path& p, matrix_view<const std::uint8_t> m) {
  detail::write_vecs(p, m);
}

}  // namespace annulus
