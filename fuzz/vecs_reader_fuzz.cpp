// libFuzzer harness for the texmex reader (include/annulus/io/vecs.hpp).
//
// Each input is written to a file and read every way a caller can: its shape
// for 1- and 4-byte values (inspect_vecs), the whole file as fvecs, ivecs and
// bvecs, and a row range of 4- and 1-byte rows chosen by input bytes 4 and 5
// (the first value of row 0, free to vary in a valid file).
//
// Expected: a read returns, or throws an annulus::error. A finding: any other
// exception, a crash, a sanitizer report, an allocation over -malloc_limit_mb,
// or a read that breaks the header's promises (checked below): a whole-file
// read has inspect_vecs's shape; fvecs and ivecs read the same bytes; a row
// range inside a readable file reads those rows, one outside it throws
// invalid_argument.
#include <annulus/io/vecs.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include "input_file.hpp"

namespace {

using annulus::fuzz::finding;

template <class F>
auto or_nullopt(F&& read) -> std::optional<decltype(read())> {
  try {
    return read();
  } catch (const annulus::error&) {
    return std::nullopt;
  }
}

template <class A, class B>
bool same_bytes(const annulus::matrix<A>& a, const annulus::matrix<B>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && sizeof(A) == sizeof(B) &&
         (a.size() == 0 || std::memcmp(a.data(), b.data(), a.size() * sizeof(A)) == 0);
}

// Bits 0-6 count rows; bit 7 counts down from SIZE_MAX (overflowing ranges).
std::size_t range_value(std::uint8_t b) {
  const std::size_t v = b & 0x7fu;
  return (b & 0x80u) ? std::numeric_limits<std::size_t>::max() - v : v;
}

// Rows [first, first + count) of the file, checked against the whole-file read.
template <class T, class Read>
void check_range(const annulus::fuzz::input_file& file, std::size_t first, std::size_t count,
                 const std::optional<annulus::matrix<T>>& whole, Read read_range) {
  const std::string what = "rows [" + std::to_string(first) + ", +" + std::to_string(count) +
                           ") of " + std::to_string(sizeof(T)) + "-byte values: ";
  try {
    const annulus::matrix<T> part = read_range(file.path(), first, count);
    if (!whole) return;  // a range read checks only its own rows
    if (first > whole->rows() || count > whole->rows() - first)
      finding(what + "read, but the file has " + std::to_string(whole->rows()) + " rows");
    if (!same_bytes(part, annulus::matrix<T>(whole->view().rows_slice(first, count))))
      finding(what + "differ from the same rows of the whole-file read");
  } catch (const annulus::invalid_argument&) {
    if (whole && first <= whole->rows() && count <= whole->rows() - first)
      finding(what + "refused as out of range; the file has " + std::to_string(whole->rows()) +
              " rows");
  } catch (const annulus::error&) {
    if (whole) finding(what + "failed, but the whole file reads");
  }
}

template <class T>
void check_shape(const char* what, const std::optional<annulus::matrix<T>>& m,
                 const std::optional<annulus::vecs_info>& info) {
  if (m && (!info || info->rows != m->rows() || info->dim != m->cols()))
    finding(std::string(what) + " read a " + std::to_string(m->rows()) + " x " +
            std::to_string(m->cols()) + " matrix that inspect_vecs does not describe");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const annulus::fuzz::input_file file("annulus-vecs-fuzz", "input.vecs");
  file.write(data, size);
  const auto& p = file.path();

  const auto info1 = or_nullopt([&] { return annulus::inspect_vecs(p, 1); });
  const auto info4 = or_nullopt([&] { return annulus::inspect_vecs(p, 4); });
  const auto f = or_nullopt([&] { return annulus::read_fvecs(p); });
  const auto i = or_nullopt([&] { return annulus::read_ivecs(p); });
  const auto b = or_nullopt([&] { return annulus::read_bvecs(p); });
  check_shape("read_fvecs", f, info4);
  check_shape("read_ivecs", i, info4);
  check_shape("read_bvecs", b, info1);
  if (f.has_value() != i.has_value() || (f && !same_bytes(*f, *i)))
    finding("read_fvecs and read_ivecs disagree about the same file");

  const std::size_t first = range_value(size > 4 ? data[4] : 0);
  const std::size_t count = range_value(size > 5 ? data[5] : 1);
  check_range<float>(file, first, count, f,
                     [](const auto& path, std::size_t r, std::size_t n) {
                       return annulus::read_fvecs(path, r, n);
                     });
  check_range<std::uint8_t>(file, first, count, b,
                            [](const auto& path, std::size_t r, std::size_t n) {
                              return annulus::read_bvecs(path, r, n);
                            });
  return 0;
}
