// Software prefetch of a run of cache lines: a hint that costs a load slot
// each and never faults (an address need not be valid). Callers choose how
// many lines from measurement: a few lines start the hardware's stream
// prefetcher, a whole long vector can crowd out the loads in flight.
#pragma once

#include <algorithm>
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

/// Calls body(i) for i = 0 .. n-1 in order, having called fetch(j) (a
/// prefetch of item j) for every j < min(n, i + 1 + ahead) first: the next
/// `ahead` items are always in flight, so their misses overlap instead of
/// queueing one at a time. A loop over candidates scattered in memory
/// (re-ranking, scoring a list of slots) with ahead = 1 hides one miss
/// behind each item's work; a longer window pays when each item's work is
/// short against a miss (measured per caller).
template <class Fetch, class Body>
inline void for_each_prefetched(std::size_t n, std::size_t ahead, const Fetch& fetch, const Body& body) {
  for (std::size_t j = 0; j < std::min(n, ahead); ++j) fetch(j);
  for (std::size_t i = 0; i < n; ++i) {
    if (i + ahead < n) fetch(i + ahead);
    body(i);
  }
}

}  // namespace annulus
