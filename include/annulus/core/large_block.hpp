// Large zero-filled memory blocks that never move, for index storage that is
// read at random (graph nodes). On Linux a block is mapped directly and, from
// 2 MiB up, aligned to 2 MiB and offered to transparent huge pages
// (madvise(MADV_HUGEPAGE)): a random walk over hundreds of MB then misses the
// TLB far less often. Pages are touched only when written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

#include "annulus/core/sizes.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace annulus {

class large_block {
 public:
  static constexpr std::size_t huge_page = std::size_t{2} << 20;

  large_block() = default;
  /// `bytes` of zeroed memory, 64-byte aligned at least. Throws std::bad_alloc.
  explicit large_block(std::size_t bytes) : bytes_(bytes) {
    if (bytes == 0) return;
    sizes::bytes(bytes, 1, "large_block");  // far below where rounding up could overflow
#if defined(__linux__)
    const bool huge = bytes >= huge_page;
    const std::size_t align = huge ? huge_page : 4096;
    const std::size_t length = round_up(bytes, align) + (huge ? huge_page : 0);
    void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    auto* raw = static_cast<std::byte*>(p);
    auto* start = reinterpret_cast<std::byte*>(round_up(reinterpret_cast<std::uintptr_t>(raw), align));
    // Give back the unaligned head and the tail beyond the rounded size.
    if (start != raw) ::munmap(raw, static_cast<std::size_t>(start - raw));
    mapped_ = round_up(bytes, align);
    if (raw + length != start + mapped_) ::munmap(start + mapped_, static_cast<std::size_t>(raw + length - (start + mapped_)));
    if (huge) ::madvise(start, mapped_, MADV_HUGEPAGE);  // a hint: failure is harmless
    data_ = start;
#else
    data_ = static_cast<std::byte*>(::operator new[](bytes, std::align_val_t{64}));
    std::memset(data_, 0, bytes);
#endif
  }
  large_block(large_block&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)),
        mapped_(std::exchange(o.mapped_, 0)) {}
  large_block& operator=(large_block&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
      mapped_ = std::exchange(o.mapped_, 0);
    }
    return *this;
  }
  large_block(const large_block&) = delete;
  large_block& operator=(const large_block&) = delete;
  ~large_block() { release(); }

  std::byte* data() const { return data_; }
  /// Bytes asked for.
  std::size_t size() const { return bytes_; }

 private:
  static constexpr std::uintptr_t round_up(std::uintptr_t x, std::uintptr_t a) { return (x + a - 1) / a * a; }
  void release() noexcept {
    if (!data_) return;
#if defined(__linux__)
    ::munmap(data_, mapped_);
#else
    ::operator delete[](data_, std::align_val_t{64});
#endif
    data_ = nullptr;
  }

  std::byte* data_ = nullptr;
  std::size_t bytes_ = 0;
  std::size_t mapped_ = 0;
};

}  // namespace annulus
