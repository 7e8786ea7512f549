// Recomputes the checksums of a saved index file after a test or a fuzzer
// changed its bytes, so that the change reaches the loaders' own checks of
// counts, ids, offsets and trees instead of stopping at a checksum. Anything
// implausible (a footer or table that does not fit the file) is left for the
// reader to refuse.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "annulus/core/checksum.hpp"

namespace annulus::testing {

/// `file`: the bytes of a file (any contiguous range of char or std::byte).
template <class Bytes>
void reseal(Bytes& file) {
  const std::size_t size = file.size();
  if (size < 96) return;
  auto* f = reinterpret_cast<unsigned char*>(file.data());
  std::uint64_t table, count;
  std::memcpy(&table, f + size - 32, 8);
  std::memcpy(&count, f + size - 24, 8);
  if (count > 1024 || table < 64 || table > size - 32 || (size - 32 - table) != count * 64) return;
  const auto bytes = [&](std::size_t at, std::size_t n) {
    return std::span<const std::byte>(reinterpret_cast<const std::byte*>(f + at), n);
  };
  for (std::uint64_t i = 0; i < count; ++i) {
    unsigned char* e = f + table + i * 64;
    std::uint64_t offset, length;
    std::memcpy(&offset, e + 32, 8);
    std::memcpy(&length, e + 40, 8);
    if (offset > table || length > table - offset) continue;
    const std::uint64_t sum = checksum(bytes(offset, length));
    std::memcpy(e + 48, &sum, 8);
  }
  checksum_stream s;
  s.add(bytes(0, 64));
  s.add(bytes(table, count * 64));
  const std::uint64_t sum = s.value();
  std::memcpy(f + size - 16, &sum, 8);
}

}  // namespace annulus::testing
