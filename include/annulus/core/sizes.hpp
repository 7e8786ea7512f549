// Sizes computed from numbers nobody has checked yet (a file's header, a
// caller's capacity, k): one audited place for the products and the limits,
// so no reader or constructor multiplies untrusted numbers by hand.
//
// Every function here throws before anything is allocated:
//   capacity_error  the product overflows size_t, or exceeds what one
//                   allocation may ask for (max_allocation_bytes);
//   format_error    a file declares more bytes than it holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "annulus/core/error.hpp"

namespace annulus::sizes {

/// The largest single allocation annulus asks for: 2^48 bytes (256 TiB),
/// beyond any machine's memory and far inside what size_t and ptrdiff_t
/// hold, so an over-large request is refused by a message, not by
/// std::length_error or an allocator that overcommits.
inline constexpr std::size_t max_allocation_bytes = std::size_t{1} << 48;

/// a x b, or capacity_error naming `what` if it overflows size_t.
inline std::size_t product(std::size_t a, std::size_t b, std::string_view what) {
  std::size_t out = 0;
  if (__builtin_mul_overflow(a, b, &out))
    throw capacity_error(std::string(what) + ": " + std::to_string(a) + " x " + std::to_string(b) +
                         " overflows a 64-bit size");
  return out;
}

/// Bytes of `count` elements of `element_size` bytes each, at most
/// max_allocation_bytes; capacity_error naming `what` otherwise.
inline std::size_t bytes(std::size_t count, std::size_t element_size, std::string_view what) {
  const std::size_t n = product(count, element_size, what);
  if (n > max_allocation_bytes)
    throw capacity_error(std::string(what) + ": " + std::to_string(count) + " elements of " +
                         std::to_string(element_size) + " bytes are " + std::to_string(n) +
                         " bytes, more than the " + std::to_string(max_allocation_bytes) +
                         " one allocation may take");
  return n;
}

/// Bytes of a rows x cols array of `element_size`-byte elements.
inline std::size_t array_bytes(std::size_t rows, std::size_t cols, std::size_t element_size,
                               std::string_view what) {
  return bytes(product(rows, cols, what), element_size, what);
}

/// format_error unless `declared` bytes fit in the `available` bytes a file
/// really holds (`what` names the file and the part).
inline void fits_in_file(std::uint64_t declared, std::uint64_t available, std::string_view what) {
  if (declared > available)
    throw format_error(std::string(what) + " declares " + std::to_string(declared) +
                       " bytes, the file holds " + std::to_string(available));
}

}  // namespace annulus::sizes
