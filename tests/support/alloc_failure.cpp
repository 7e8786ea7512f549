// The replaced global allocation functions behind support/alloc_failure.hpp.
// All of them allocate with malloc / aligned_alloc and free with free, so
// every pairing of new and delete forms is consistent, under the sanitizers
// too (ASan then sees malloc and free, and still checks every access).
#include "support/alloc_failure.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {

std::atomic<bool> armed{false};           // the only thing read while off
std::atomic<std::size_t> made_count{0};   // allocations while armed
std::atomic<std::size_t> fail_from{0};    // the first failing allocation number
std::atomic<bool> sticky{true};
std::atomic<bool> failed_flag{false};

// Whether this allocation should fail (counts it while armed).
bool should_fail() noexcept {
  if (!armed.load(std::memory_order_relaxed)) return false;
  const std::size_t n = made_count.fetch_add(1, std::memory_order_relaxed);
  const std::size_t from = fail_from.load(std::memory_order_relaxed);
  if (n < from || (n != from && !sticky.load(std::memory_order_relaxed))) return false;
  failed_flag.store(true, std::memory_order_relaxed);
  return true;
}

void* raw_allocate(std::size_t size, std::size_t align) noexcept {
  if (size == 0) size = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(size);
  return std::aligned_alloc(align, (size + align - 1) / align * align);
}

// operator new's contract: retry through the new_handler, else throw.
void* allocate_or_throw(std::size_t size, std::size_t align) {
  if (should_fail()) throw std::bad_alloc();
  for (;;) {
    if (void* p = raw_allocate(size, align)) return p;
    const std::new_handler handler = std::get_new_handler();
    if (!handler) throw std::bad_alloc();
    handler();
  }
}

void* allocate_or_null(std::size_t size, std::size_t align) noexcept {
  try {
    return allocate_or_throw(size, align);
  } catch (...) {
    return nullptr;
  }
}

}  // namespace

namespace annulus::testing {

fail_allocation_at::fail_allocation_at(std::size_t n, bool every_later) {
  made_count.store(0, std::memory_order_relaxed);
  fail_from.store(n, std::memory_order_relaxed);
  sticky.store(every_later, std::memory_order_relaxed);
  failed_flag.store(false, std::memory_order_relaxed);
  armed.store(true, std::memory_order_seq_cst);
}
fail_allocation_at::~fail_allocation_at() { armed.store(false, std::memory_order_seq_cst); }
std::size_t fail_allocation_at::made() const { return made_count.load(std::memory_order_relaxed); }
bool fail_allocation_at::failed() const { return failed_flag.load(std::memory_order_relaxed); }

}  // namespace annulus::testing

constexpr std::size_t plain = alignof(std::max_align_t);

void* operator new(std::size_t size) { return allocate_or_throw(size, plain); }
void* operator new[](std::size_t size) { return allocate_or_throw(size, plain); }
void* operator new(std::size_t size, std::align_val_t a) { return allocate_or_throw(size, std::size_t(a)); }
void* operator new[](std::size_t size, std::align_val_t a) { return allocate_or_throw(size, std::size_t(a)); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return allocate_or_null(size, plain); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return allocate_or_null(size, plain); }
void* operator new(std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate_or_null(size, std::size_t(a));
}
void* operator new[](std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate_or_null(size, std::size_t(a));
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
