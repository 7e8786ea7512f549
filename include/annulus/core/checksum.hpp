// Checksums of saved index files: XXH3, 64 bits (xxHash, libxxhash-dev),
// compiled into the including program (XXH_INLINE_ALL): no library to link.
//
// Why XXH3 and not CRC32C: loading must keep up with peers that checksum
// nothing (hnswlib's loadIndex is a raw read), so the hash has to run near
// memory speed. XXH3 does on every target through its own SIMD paths
// (SSE2, AVX2, AVX-512, NEON, chosen at compile time) and gives the same
// value on all of them, so a file written on one CPU verifies on any other;
// CRC32C runs at memory speed only with the SSE4.2 or ARMv8 CRC instruction,
// which needs run-time dispatch, and at 1-2 GB/s without it. Both catch
// every bit flip a 64-bit (XXH3) or 32-bit (CRC) check can; XXH3 is not a
// cryptographic hash either: it detects damage, not tampering.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <span>

// With AVX-512 enabled, GCC 12 warns (-Wmaybe-uninitialized, a false
// positive inside its own intrinsics) wherever xxHash's AVX-512 loop is
// inlined: every program that includes an index. Its AVX2 loop gives the
// same hashes at a speed far above what a disk or the page cache delivers.
#if defined(__AVX512F__) && !defined(XXH_VECTOR)
#define XXH_VECTOR 2  // XXH_AVX2
#endif
#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#define ANNULUS_DEFINED_XXH_INLINE_ALL
#endif
#include <xxhash.h>
#ifdef ANNULUS_DEFINED_XXH_INLINE_ALL
#undef XXH_INLINE_ALL
#undef ANNULUS_DEFINED_XXH_INLINE_ALL
#endif

namespace annulus {

/// XXH3-64 of `bytes` (seed 0).
inline std::uint64_t checksum(std::span<const std::byte> bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

/// XXH3-64 over bytes that arrive in pieces: the same value as checksum()
/// of the pieces joined.
class checksum_stream {
 public:
  checksum_stream() {
    XXH3_INITSTATE(&state_);
    XXH3_64bits_reset(&state_);
  }
  void add(std::span<const std::byte> bytes) { XXH3_64bits_update(&state_, bytes.data(), bytes.size()); }
  std::uint64_t value() const { return XXH3_64bits_digest(&state_); }
  void reset() { XXH3_64bits_reset(&state_); }

 private:
  XXH3_state_t state_;
};

}  // namespace annulus
