// Out-of-memory on demand, for tests of what a call does when an allocation
// fails. alloc_failure.cpp (linked into annulus_tests only) replaces every
// form of the global operator new and delete (plain, array, aligned, nothrow,
// sized): they allocate with malloc, and while a fail_allocation_at is alive
// they count the allocations made and fail from the chosen one on (the
// throwing forms throw std::bad_alloc, the nothrow forms return nullptr).
// Off, the check is one relaxed atomic load per allocation.
//
//   for (std::size_t n = 0;; ++n) {
//     annulus::testing::fail_allocation_at fail(n);  // the n-th allocation from now fails
//     try { idx.add(rows); } catch (const std::bad_alloc&) { /* idx must be as before */ continue; }
//     if (!fail.failed()) break;                     // done without reaching allocation n
//   }
//
// Memory that does not come from operator new is not counted: malloc called
// directly, and mmap (core/large_block.hpp maps its blocks itself). Only one
// fail_allocation_at may be alive at a time; allocations on every thread
// count, so arm it around single-threaded calls for repeatable numbers.
#pragma once

#include <cstddef>
#include <limits>

namespace annulus::testing {

class fail_allocation_at {
 public:
  /// Never fail: only count.
  static constexpr std::size_t never = std::numeric_limits<std::size_t>::max();

  /// Allocation number n from now (0 = the next one) fails, and with
  /// `every_later` (the default) so does each one after it until this scope
  /// ends: a rollback that allocates fails too, as it would out of memory.
  explicit fail_allocation_at(std::size_t n, bool every_later = true);
  ~fail_allocation_at();
  fail_allocation_at(const fail_allocation_at&) = delete;
  fail_allocation_at& operator=(const fail_allocation_at&) = delete;

  /// Allocations asked for since this scope began (the failed ones included).
  std::size_t made() const;
  /// Whether an allocation failed in this scope.
  bool failed() const;
};

}  // namespace annulus::testing
