// Recomputes the checksums of a saved index file after a test or a fuzzer
// changed its bytes, so that the change reaches the loaders' own checks of
// counts, ids, offsets and trees instead of stopping at a checksum. Anything
// implausible (a footer or table that does not fit the file) is left for the
// reader to refuse. Also: where a section starts, and setting one record
// field (then resealing), for tests that damage one value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <utility>

#include "annulus/core/checksum.hpp"
#include "annulus/core/serialize.hpp"

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

/// Where section `name` of a saved file starts and how many bytes it has
/// (from its table entry), or {npos, 0}.
inline std::pair<std::size_t, std::size_t> section_of(const std::string& file, const std::string& name) {
  const std::pair<std::size_t, std::size_t> none{std::string::npos, 0};
  if (file.size() < 96) return none;
  std::uint64_t table, count;
  std::memcpy(&table, file.data() + file.size() - 32, 8);
  std::memcpy(&count, file.data() + file.size() - 24, 8);
  if (count > 1024 || table < 64 || table > file.size() - 32 || (file.size() - 32 - table) != count * 64) return none;
  for (std::uint64_t i = 0; i < count; ++i) {
    const char* e = file.data() + table + i * 64;
    if (std::string(e, strnlen(e, 32)) != name) continue;
    std::uint64_t offset, length;
    std::memcpy(&offset, e + 32, 8);
    std::memcpy(&length, e + 40, 8);
    if (offset > table || length > table - offset) return none;
    return {offset, length};
  }
  return none;
}
/// Where section `name` starts, or npos.
inline std::size_t section_at(const std::string& file, const std::string& name) {
  return section_of(file, name).first;
}

/// Sets field `key` of record section `section` to `value` (64 bits) and
/// reseals the file. Returns false, changing nothing, if either is missing.
inline bool set_field(std::string& file, const std::string& section, const std::string& key, std::uint64_t value) {
  const auto [at, length] = section_of(file, section);
  if (at == std::string::npos) return false;
  constexpr std::size_t field = serial::field_bytes, name = serial::key_bytes;
  for (std::size_t f = at; f + field <= at + length; f += field) {
    if (std::string(file.data() + f, strnlen(file.data() + f, name)) == key) {
      std::memcpy(file.data() + f + name, &value, 8);
      reseal(file);
      return true;
    }
  }
  return false;
}

}  // namespace annulus::testing
