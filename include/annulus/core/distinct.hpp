// Exact duplicate rows: real embedding sets hold many (re-uploads, empty
// documents, default images), and a training step that counts each copy
// as a separate point skews toward them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "annulus/core/matrix.hpp"

namespace annulus {

/// The first row of each distinct value of `m`, in row order: rows whose
/// bytes equal an earlier row's are left out (so -0.f and 0.f differ, and
/// one pass of hashing plus a compare on each hash match decides).
inline std::vector<std::size_t> distinct_rows(matrix_view<const float> m) {
  const std::size_t bytes = m.cols() * sizeof(float);
  std::vector<std::size_t> out;
  std::unordered_multimap<std::uint64_t, std::size_t> seen(m.rows());
  for (std::size_t i = 0; i < m.rows(); ++i) {
    const auto* p = reinterpret_cast<const unsigned char*>(m.row_ptr(i));
    std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
    for (std::size_t b = 0; b < bytes; ++b) h = (h ^ p[b]) * 0x100000001b3ULL;
    const auto [first, last] = seen.equal_range(h);
    bool copy = false;
    for (auto e = first; e != last && !copy; ++e)
      copy = std::memcmp(m.row_ptr(e->second), p, bytes) == 0;
    if (copy) continue;
    seen.emplace(h, i);
    out.push_back(i);
  }
  return out;
}

}  // namespace annulus
