// Software prefetch of a run of cache lines: a hint that costs a load slot
// each and never faults (an address need not be valid). Callers choose how
// many lines from measurement: a few lines start the hardware's stream
// prefetcher, a whole long vector can crowd out the loads in flight.
#pragma once

#include <cstddef>

namespace annulus {

inline constexpr std::size_t cache_line_bytes = 64;

/// Starts fetching `lines` cache lines from p, for reading, into every cache level.
inline void prefetch_lines(const void* p, std::size_t lines) {
  const char* c = static_cast<const char*>(p);
  for (std::size_t i = 0; i < lines; ++i) __builtin_prefetch(c + cache_line_bytes * i, 0, 3);
}

/// The lines covering `bytes` bytes from an aligned start.
inline constexpr std::size_t lines_for(std::size_t bytes) {
  return (bytes + cache_line_bytes - 1) / cache_line_bytes;
}

}  // namespace annulus
